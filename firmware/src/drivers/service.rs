//! systemd integration: readiness, watchdog and status through `sd_notify`, harmless when the
//! daemon is not run by systemd (no `NOTIFY_SOCKET`).

use crate::hal::Supervisor;
use sd_notify::NotifyState;

/// Talks to systemd when `NOTIFY_SOCKET` is set; does nothing otherwise.
#[derive(Debug, Default)]
pub struct SdNotify {
    enabled: bool,
}

impl SdNotify {
    /// Notifies systemd if the daemon runs under it (`Type=notify`).
    pub fn from_env() -> Self {
        let enabled = std::env::var_os("NOTIFY_SOCKET").is_some();
        if let Some(w) = sd_notify::watchdog_enabled() {
            tracing::info!("systemd watchdog every {w:?}");
        }
        Self { enabled }
    }

    fn send(&self, state: &[NotifyState]) {
        if self.enabled {
            if let Err(e) = sd_notify::notify(state) {
                tracing::warn!("sd_notify: {e}");
            }
        }
    }
}

impl Supervisor for SdNotify {
    fn ready(&mut self) {
        self.send(&[NotifyState::Ready]);
    }
    fn watchdog(&mut self) {
        self.send(&[NotifyState::Watchdog]);
    }
    fn status(&mut self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }
    fn stopping(&mut self) {
        self.send(&[NotifyState::Stopping]);
    }
}

/// A daemon's exit: its error (with its causes, `{:#}`) to the log and to stderr under the
/// program's `name`, and the exit status.
pub fn exit_status<E: std::fmt::Display>(
    name: &str,
    result: Result<(), E>,
) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("{name}: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Logging for the daemons: to stderr at `info` (`-v` debug, `-vv` trace; `RUST_LOG` wins),
/// without timestamps under journald (it stamps lines itself).
pub fn init_logging(verbose: u8) {
    let level = ["info", "debug", "trace"][usize::from(verbose.min(2))];
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.without_time().init();
    } else {
        builder.init();
    }
}
