//! The door loop under faults, through the real `daemon::run`: a lock output that fails mid-run,
//! a panic inside the loop, the service manager's READY/WATCHDOG order, and the audit trail of a
//! run that ended without `stop`. No faces are needed: the exit button unlocks the door.

use facegate::config::Config;
use facegate::control::Control;
use facegate::daemon::{self, DaemonError, Devices};
use facegate::hal::{
    CameraError, CameraErrorKind, Clock, DoorInputs, DoorSensors, FrameSource, InputError,
    LockError, LockOutput, LockState, Supervisor,
};
use facegate::records::audit::{AuditLog, AuditSink, Event, EventKind};
use image::RgbImage;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Simulated time: sleeping advances it.
#[derive(Default)]
struct FakeClock(Mutex<Duration>);

impl Clock for FakeClock {
    fn now(&self) -> Duration {
        *self.0.lock().unwrap()
    }
    fn wall(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + self.now()
    }
    fn sleep(&self, d: Duration) {
        *self.0.lock().unwrap() += d;
    }
}

/// A camera that never delivers (every read is a stall) and asks to stop after `stop_after`
/// reads, or panics at read `panic_at`.
struct StalledCamera {
    reads: u32,
    stop_after: u32,
    panic_at: Option<u32>,
    control: Control,
}

impl FrameSource for StalledCamera {
    fn next_frame(&mut self, _: &mut RgbImage) -> Result<(), CameraError> {
        self.reads += 1;
        if Some(self.reads) == self.panic_at {
            panic!("camera driver bug");
        }
        if self.reads >= self.stop_after {
            self.control.request_stop();
        }
        Err(CameraError::new(CameraErrorKind::Timeout, "no frame"))
    }
    fn reopen(&mut self) -> Result<(), CameraError> {
        Ok(())
    }
}

/// Every state driven, in order; fails from the `fail_from`-th set on.
#[derive(Clone, Default)]
struct Relay {
    driven: Arc<Mutex<Vec<LockState>>>,
    fail_from: Option<usize>,
}

impl LockOutput for Relay {
    fn set(&mut self, state: LockState) -> Result<(), LockError> {
        let mut d = self.driven.lock().unwrap();
        if self.fail_from.is_some_and(|n| d.len() + 1 >= n) {
            d.push(state);
            return Err(LockError("GPIO17: read back Inactive".into()));
        }
        d.push(state);
        Ok(())
    }
}

/// The exit button pressed once, at the first read.
#[derive(Default)]
struct ExitOnce(u32);

impl DoorSensors for ExitOnce {
    fn read(&mut self) -> Result<DoorInputs, InputError> {
        self.0 += 1;
        Ok(DoorInputs {
            exit_button: self.0 == 1,
            door_open: None,
        })
    }
}

#[derive(Default)]
struct Notes(Vec<&'static str>);

impl Supervisor for Notes {
    fn ready(&mut self) {
        self.0.push("ready")
    }
    fn watchdog(&mut self) {
        self.0.push("watchdog")
    }
    fn status(&mut self, _: &str) {}
    fn stopping(&mut self) {
        self.0.push("stopping")
    }
}

fn config(dir: &std::path::Path) -> Config {
    let mut c = Config::default();
    c.gallery.path = dir.join("gallery.toml");
    c.audit.path = dir.join("audit.jsonl");
    c
}

struct Run {
    result: Result<daemon::Summary, DaemonError>,
    driven: Vec<LockState>,
    notes: Vec<&'static str>,
    events: Vec<EventKind>,
}

fn run_door(relay: Relay, stop_after: u32, audit: &mut dyn AuditSink) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let mut pipeline = daemon::load_pipeline(&config).unwrap();
    let control = Control::default();
    let clock = FakeClock::default();
    let mut notes = Notes::default();
    let mut events = Vec::new();
    let result = {
        let mut tee = Tee(audit, &mut events);
        daemon::run(
            daemon::Parts {
                config,
                config_path: None,
                pipeline: &mut pipeline,
                devices: Devices {
                    camera: StalledCamera {
                        reads: 0,
                        stop_after,
                        panic_at: None,
                        control: control.clone(),
                    },
                    lock: relay.clone(),
                    sensors: ExitOnce::default(),
                    nir: None,
                    credentials: None,
                },
                clock: &clock,
                supervisor: &mut notes,
                audit: &mut tee,
                output: None,
                api: None,
            },
            &control,
        )
    };
    let driven = relay.driven.lock().unwrap().clone();
    Run {
        result,
        driven,
        notes: notes.0,
        events,
    }
}

struct Tee<'a>(&'a mut dyn AuditSink, &'a mut Vec<EventKind>);

impl AuditSink for Tee<'_> {
    fn record(&mut self, e: &Event) -> Result<(), facegate::records::audit::AuditError> {
        self.1.push(e.event);
        self.0.record(e)
    }
    fn previous_run(&self) -> Option<facegate::records::audit::PreviousRun> {
        self.0.previous_run()
    }
}

#[test]
fn ready_comes_before_the_first_watchdog_and_stopping_last() {
    let r = run_door(Relay::default(), 20, &mut Vec::<Event>::new());
    r.result.unwrap();
    assert_eq!(r.notes.first(), Some(&"ready"), "{:?}", r.notes);
    assert!(
        r.notes.iter().filter(|n| **n == "watchdog").count() >= 2,
        "{:?}",
        r.notes
    );
    assert_eq!(r.notes.last(), Some(&"stopping"), "{:?}", r.notes);
}

#[test]
fn a_lock_that_fails_mid_run_stops_the_daemon_with_the_error_recorded() {
    // Sets: 1 locked (start), 2 unlocked (exit button), 3 locked (relock): the relock fails.
    let relay = Relay {
        fail_from: Some(3),
        ..Relay::default()
    };
    let r = run_door(relay, 10_000, &mut Vec::<Event>::new());
    let err = r.result.expect_err("the daemon must stop");
    assert!(matches!(err, DaemonError::Lock(_)), "{err}");
    assert!(r.events.contains(&EventKind::LockError), "{:?}", r.events);
    assert_eq!(r.events.last(), Some(&EventKind::Stop), "{:?}", r.events);
    // After the failed relock, every way out tries "locked" again (run's lock, then Drop).
    use LockState::*;
    assert_eq!(r.driven[..3], [Locked, Unlocked, Locked]);
    assert!(r.driven[3..].iter().all(|s| *s == Locked) && r.driven.len() >= 4);
}

#[test]
fn a_panic_in_the_loop_leaves_the_door_locked() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let mut pipeline = daemon::load_pipeline(&config).unwrap();
    let relay = Relay::default();
    let control = Control::default();
    let clock = FakeClock::default();
    let lock = relay.clone();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        daemon::run(
            daemon::Parts {
                config,
                config_path: None,
                pipeline: &mut pipeline,
                devices: Devices {
                    // The exit button unlocks at the first read; the camera panics later, while the
                    // door is unlocked (hold 5 s, the panic at about 1 s of backoff).
                    camera: StalledCamera {
                        reads: 0,
                        stop_after: u32::MAX,
                        panic_at: Some(2),
                        control: control.clone(),
                    },
                    lock,
                    sensors: ExitOnce::default(),
                    nir: None,
                    credentials: None,
                },
                clock: &clock,
                supervisor: &mut Notes::default(),
                audit: &mut Vec::<Event>::new(),
                output: None,
                api: None,
            },
            &control,
        )
    }));
    assert!(outcome.is_err(), "the camera panics");
    let driven = relay.driven.lock().unwrap().clone();
    use LockState::*;
    assert_eq!(driven, vec![Locked, Unlocked, Locked], "{driven:?}");
}

#[test]
fn a_run_that_ended_without_stop_is_recorded_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let mut log = AuditLog::open(&path).unwrap();
    for k in [EventKind::Start, EventKind::Grant] {
        log.record(&Event::new(k, SystemTime::now(), Duration::ZERO))
            .unwrap();
    }
    drop(log);
    let mut log = AuditLog::open(&path).unwrap();
    let r = run_door(Relay::default(), 3, &mut log);
    r.result.unwrap();
    assert_eq!(
        r.events[..2],
        [EventKind::UncleanShutdown, EventKind::Start],
        "{:?}",
        r.events
    );
    // This run ended with `stop`: the next start records nothing of the kind.
    let mut log = AuditLog::open(&path).unwrap();
    let r = run_door(Relay::default(), 3, &mut log);
    assert_eq!(r.events[0], EventKind::Start, "{:?}", r.events);
    assert_eq!(
        facegate::records::audit::verify(&path).unwrap().broken,
        None
    );
}
