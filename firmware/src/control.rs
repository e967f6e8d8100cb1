//! Requests to the running daemon from outside its loop: stop and reload (signals), and the site
//! link's lockdown, remote unlocks and events to record. Flags and queues only: the loop reads
//! them and acts through the gate, so tests and the simulator drive the same path.

use crate::records::audit::EventKind;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Requests to the running daemon: stop (SIGTERM/SIGINT) and reload (SIGHUP). Signal handlers
/// set the flags; the main loop reads them, so tests and the simulator drive the same path.
#[derive(Debug, Clone, Default)]
pub struct Control {
    stop: Arc<AtomicBool>,
    reload: Arc<AtomicBool>,
    /// From the site link (`site`): lockdown, remote unlocks and events to record.
    site: Arc<SiteRequests>,
}

/// What the site link asks of the door loop (it never touches the lock or the log itself).
#[derive(Debug, Default)]
struct SiteRequests {
    lockdown: AtomicBool,
    unlock: std::sync::Mutex<Option<String>>,
    notes: std::sync::Mutex<Vec<Note>>,
}

/// An event for the door loop to record on the site link's behalf.
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    /// What happened.
    pub kind: EventKind,
    /// Who asked (commands).
    pub by: Option<String>,
    /// Why.
    pub reason: String,
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
    /// Asks the door loop to record an event.
    pub fn note(&self, kind: EventKind, by: Option<String>, reason: String) {
        if let Ok(mut n) = self.site.notes.lock() {
            n.push(Note { kind, by, reason });
        }
    }
    /// Takes the events to record.
    pub fn take_notes(&self) -> Vec<Note> {
        self.site
            .notes
            .lock()
            .map(|mut n| std::mem::take(&mut *n))
            .unwrap_or_default()
    }
}
