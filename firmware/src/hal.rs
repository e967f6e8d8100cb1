//! The hardware seams: small, fallible traits for the camera, the lock output, the door inputs,
//! the clock and the service manager, so the daemon runs unchanged on the Pi, in the simulator
//! and in tests.
//!
//! Each trait has at least two implementations: the real driver (`hw`, behind the `hw` feature)
//! and the simulator (`facegate-sim`).

use image::RgbImage;
use std::time::{Duration, Instant, SystemTime};

/// What went wrong with the camera, in terms the daemon acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CameraErrorKind {
    /// No frame came in time: the device stalls. The daemon re-opens it.
    Timeout,
    /// The device is gone (unplugged) or cannot be opened. The daemon re-opens it with backoff.
    Disconnected,
    /// One frame could not be decoded; the next may be fine. The daemon skips it.
    BadFrame,
    /// Frames come but do not change (a driver or sensor hang): the daemon re-opens the camera.
    Frozen,
    /// Anything else; treated like `Disconnected`.
    Other,
}

/// A camera error: its kind and a message for the log.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct CameraError {
    /// What the daemon should do about it.
    pub kind: CameraErrorKind,
    /// What happened, for the log.
    pub message: String,
}

impl CameraError {
    /// An error of `kind` saying `message`.
    pub fn new(kind: CameraErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// A source of colour frames (a V4L2 camera, or the simulator's scripted frames).
pub trait FrameSource {
    /// Blocks until the next frame and writes it into `frame` (resized as needed; the buffer is
    /// reused from frame to frame). Must return within a bounded time (a timeout error if not).
    fn next_frame(&mut self, frame: &mut RgbImage) -> Result<(), CameraError>;

    /// Closes and opens the device again after an error.
    fn reopen(&mut self) -> Result<(), CameraError>;

    /// The driver's sequence number of the last frame, if it has one (V4L2 does): a number that
    /// stops advancing means a frozen stream.
    fn sequence(&self) -> Option<u64> {
        None
    }
}

// A boxed camera is a camera (the optional NIR camera is one, of whatever type).
impl<T: FrameSource + ?Sized> FrameSource for Box<T> {
    fn next_frame(&mut self, frame: &mut RgbImage) -> Result<(), CameraError> {
        (**self).next_frame(frame)
    }
    fn reopen(&mut self) -> Result<(), CameraError> {
        (**self).reopen()
    }
    fn sequence(&self) -> Option<u64> {
        (**self).sequence()
    }
}

/// The two states of the door lock. The electrical meaning (which level, which relay contact)
/// belongs to the driver and the wiring, never to the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockState {
    /// The door is locked: the safe state.
    Locked,
    /// The door is unlocked.
    Unlocked,
}

/// The lock output could not be driven.
#[derive(Debug, Clone, thiserror::Error)]
#[error("lock output: {0}")]
pub struct LockError(pub String);

/// The output that locks and unlocks the door (a GPIO pin driving a relay).
pub trait LockOutput {
    /// Drives the output to `state`.
    fn set(&mut self, state: LockState) -> Result<(), LockError>;
}

/// The door's inputs at one moment. Every field is optional hardware.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DoorInputs {
    /// The request-to-exit button is pressed.
    pub exit_button: bool,
    /// The door contact says the door is open (`None`: no contact fitted).
    pub door_open: Option<bool>,
}

/// The door inputs could not be read.
#[derive(Debug, Clone, thiserror::Error)]
#[error("door inputs: {0}")]
pub struct InputError(pub String);

/// Door inputs: exit button, door contact; and the alarm output where one is fitted.
pub trait DoorSensors {
    /// Reads the inputs now. A press of the exit button since the last read is reported even
    /// if the button is already released (a short press between two reads is not missed).
    fn read(&mut self) -> Result<DoorInputs, InputError>;

    /// Drives the alarm output (buzzer, siren, alarm panel input); without one, nothing.
    fn set_alarm(&mut self, _on: bool) -> Result<(), InputError> {
        Ok(())
    }
}

/// No door inputs fitted (the default installation).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSensors;

impl DoorSensors for NoSensors {
    fn read(&mut self) -> Result<DoorInputs, InputError> {
        Ok(DoorInputs::default())
    }
}

/// What a card reader or keypad gave (second factors, `access::factors`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented {
    /// A card, decoded and parity-checked.
    Card(crate::people::credential::Credential),
    /// A key: `0`-`9`, `*` (clear), `#` (enter).
    Key(char),
}

/// A card reader or keypad: Wiegand on two GPIO lines, a USB keypad, or the simulator's.
pub trait CredentialInput {
    /// What was presented since the last poll, one item at a time; `Ok(None)` when nothing
    /// waits. Never blocks. `now` is the daemon's time (for a frame's quiet gap).
    fn poll(&mut self, now: Duration) -> Result<Option<Presented>, InputError>;
}

/// A frame with the time it was delivered by the camera (the daemon clock's time).
#[derive(Debug)]
pub struct Captured {
    /// The frame.
    pub image: RgbImage,
    /// When the camera delivered it.
    pub taken: Duration,
}

/// Time, monotonic for decisions and wall-clock for the audit log. Shared by the daemon's threads.
pub trait Clock: Send + Sync {
    /// Monotonic time since the clock's start.
    fn now(&self) -> Duration;
    /// Wall-clock time, for the audit log.
    fn wall(&self) -> SystemTime;
    /// Waits `d` (the simulator advances its time instead).
    fn sleep(&self, d: Duration);
    /// Whether time passes by itself. Then the daemon captures, recognises and serves the door
    /// on separate threads; a simulated clock that moves only when told runs them in turn on one
    /// thread, every frame processed, so a run is reproducible.
    fn realtime(&self) -> bool {
        false
    }
    /// Called by the recognition thread after `worked` of real work on a frame. A simulated
    /// slower machine (the simulator's `recognition_ms` or `--slowdown`) waits here for the
    /// extra time it would take; a real clock does nothing.
    fn worked(&self, worked: Duration) {
        let _ = worked;
    }
}

/// The real clock.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    start: Instant,
}

impl Default for SystemClock {
    fn default() -> Self {
        Self {
            start: Instant::now(),
        }
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }
    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
    fn sleep(&self, d: Duration) {
        std::thread::sleep(d)
    }
    fn realtime(&self) -> bool {
        true
    }
}

/// The service manager (systemd's `sd_notify`, or nothing).
pub trait Supervisor {
    /// The daemon is ready: models loaded, lock driven to locked.
    fn ready(&mut self);
    /// The main loop is alive.
    fn watchdog(&mut self);
    /// A one-line status.
    fn status(&mut self, status: &str);
    /// The daemon is stopping.
    fn stopping(&mut self);
}

/// No service manager.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSupervisor;

impl Supervisor for NoSupervisor {
    fn ready(&mut self) {}
    fn watchdog(&mut self) {}
    fn status(&mut self, _: &str) {}
    fn stopping(&mut self) {}
}
