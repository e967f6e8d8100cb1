//! Requests to the running daemon from outside its loop: stop and reload (signals), lockdown and
//! the simulator's remote unlocks. Flags only: the loop reads them and acts through the gate, so
//! tests and the simulator drive the same path. (The site link is another process: it reaches
//! the door through the control API, never through these.)

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Requests to the running daemon: stop (SIGTERM/SIGINT) and reload (SIGHUP). Signal handlers
/// set the flags; the main loop reads them, so tests and the simulator drive the same path.
#[derive(Debug, Clone, Default)]
pub struct Control {
    stop: Arc<AtomicBool>,
    reload: Arc<AtomicBool>,
    /// Lockdown (the control API and signed site commands) and the simulator's unlocks.
    site: Arc<SiteRequests>,
}

/// Lockdown and a pending remote unlock.
#[derive(Debug, Default)]
struct SiteRequests {
    lockdown: AtomicBool,
    unlock: std::sync::Mutex<Option<String>>,
}

impl Control {
    /// Asks the daemon to stop.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst)
    }
    /// Asks the daemon to reload its config and gallery.
    pub fn request_reload(&self) {
        self.reload.store(true, Ordering::SeqCst)
    }
    /// Whether a stop was asked for.
    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
    /// Takes a pending reload request.
    pub fn take_reload(&self) -> bool {
        self.reload.swap(false, Ordering::SeqCst)
    }
    /// The stop flag, for a signal handler to set.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }
    /// The reload flag, for a signal handler to set.
    pub fn reload_flag(&self) -> Arc<AtomicBool> {
        self.reload.clone()
    }

    /// Puts the door in lockdown (no face unlocks) or lifts it.
    pub fn set_lockdown(&self, on: bool) {
        self.site.lockdown.store(on, Ordering::SeqCst)
    }
    /// Whether the door is in lockdown.
    pub fn lockdown(&self) -> bool {
        self.site.lockdown.load(Ordering::SeqCst)
    }
    /// Asks for one momentary unlock on behalf of `by`.
    pub fn request_remote_unlock(&self, by: String) {
        if let Ok(mut u) = self.site.unlock.lock() {
            *u = Some(by);
        }
    }
    /// Takes a pending remote unlock request: who asked.
    pub fn take_remote_unlock(&self) -> Option<String> {
        self.site.unlock.lock().ok().and_then(|mut u| u.take())
    }
}
