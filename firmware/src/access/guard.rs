//! The daemon's guards around recognition, in one place so the main loop calls them in a few
//! lines: door supervision and the alarm output, office hours, the per-person policy at a grant,
//! the failed-attempt lockout, anti-tailgating and camera tamper. Each call returns the audit
//! events to record, as (kind, reason).

use crate::access::supervision::{DoorConfig, DoorEvent, Lockout, Supervision};
use crate::access::tamper::{Blind, TamperConfig, TamperEvent, TamperWatch};
use crate::hal::LockState;
use crate::people::gallery::Person;
use crate::people::policy::{AccessConfig, Refusal};
use crate::records::audit::EventKind;
use jiff::tz::TimeZone;
use std::time::{Duration, SystemTime};

/// An event for the audit log: its kind and reason.
pub type Note = (EventKind, Option<String>);

/// What the door's supervision asks of the daemon besides recording.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DoorActions {
    /// Lock now (the door opened and closed during an unlock).
    pub relock: bool,
    /// The alarm output's new state, when it changes.
    pub alarm: Option<bool>,
}

/// The guards' state.
pub struct Guard {
    access: AccessConfig,
    zone: TimeZone,
    supervision: Supervision,
    lockout: Lockout,
    tamper: TamperWatch,
    tamper_seconds: f64,
    alarm_on: bool,
    crowd: bool,
}

impl Guard {
    /// Guards as `[access]`, `[door]` and `[tamper]` say.
    pub fn new(access: &AccessConfig, door: &DoorConfig, tamper: &TamperConfig) -> Self {
        let (window, pause) = access.lockout_times();
        Self {
            zone: access.zone().unwrap_or(TimeZone::UTC),
            access: access.clone(),
            supervision: Supervision::new(door),
            lockout: Lockout::new(access.lockout_denials, window, pause),
            tamper: TamperWatch::new(tamper),
            tamper_seconds: tamper.blind_seconds,
            alarm_on: false,
            crowd: false,
        }
    }

    /// The door contact and the lock state at `now`: events, and what to do.
    pub fn door(
        &mut self,
        now: Duration,
        door_open: Option<bool>,
        lock: LockState,
        notes: &mut Vec<Note>,
    ) -> DoorActions {
        let mut act = DoorActions::default();
        for ev in self.supervision.step(now, door_open, lock) {
            let (kind, reason) = match ev {
                DoorEvent::ForcedOpen => (
                    EventKind::ForcedOpen,
                    "the door opened while locked (forced, or a key); if it is closed, check the contact's wiring",
                ),
                DoorEvent::HeldOpenWarning => {
                    (EventKind::HeldOpenWarning, "the door is still open: close it")
                }
                DoorEvent::HeldOpen => (EventKind::HeldOpen, "the door was held open too long"),
                DoorEvent::AlarmCleared => (EventKind::AlarmCleared, "the door closed"),
                DoorEvent::RelockOnClose => {
                    act.relock = true;
                    continue;
                }
            };
            notes.push((kind, Some(reason.to_owned())));
        }
        let alarm = self.supervision.alarm(now);
        if alarm != self.alarm_on {
            self.alarm_on = alarm;
            act.alarm = Some(alarm);
        }
        act
    }

    /// The office-hours window at `wall`: whether it is open and the site time, for the gate
    /// (`access::gate`), which holds the door and records the window's edges. `None` with no
    /// office hours set.
    pub fn office_hours(&self, wall: SystemTime) -> Option<(bool, jiff::civil::DateTime)> {
        if self.access.office_hours.is_empty() {
            return None;
        }
        let local = self.access.local(&self.zone, wall);
        Some((self.access.office_hours_at(local), local))
    }

    /// Whether `person` may come in at `wall` by their policy.
    pub fn policy(&self, person: &Person, wall: SystemTime) -> Result<(), Refusal> {
        if person.policy.is_open() {
            return Ok(());
        }
        person.policy.check(self.access.local(&self.zone, wall))
    }

    /// Whether recognition is paused by a lockout at `now`.
    pub fn locked_out(&self, now: Duration) -> bool {
        self.lockout.active(now)
    }

    /// A denial at `now`; notes a lockout it starts.
    pub fn denied(&mut self, now: Duration, notes: &mut Vec<Note>) {
        if self.lockout.denied(now) {
            notes.push((
                EventKind::Lockout,
                Some(format!(
                    "{} denials within {} s: recognition paused for {} s (the exit button still works)",
                    self.access.lockout_denials,
                    self.access.lockout_window_seconds,
                    self.access.lockout_seconds
                )),
            ));
        }
    }

    /// The most faces allowed in one frame (0: any).
    pub fn max_faces(&self) -> u32 {
        self.access.max_faces
    }

    /// `faces` large enough faces in this frame: `true` if there are too many (the frame must
    /// not agree); notes a `deny` with reason `tailgating` once per crowd.
    pub fn crowd(&mut self, faces: usize, notes: &mut Vec<Note>) -> bool {
        let max = self.access.max_faces as usize;
        let crowd = max > 0 && faces > max;
        if crowd && !self.crowd {
            notes.push((
                EventKind::Deny,
                Some(crate::access::guard::TAILGATING.to_owned()),
            ));
        }
        self.crowd = crowd;
        crowd
    }

    /// Whether frames are checked for a covered or blinded camera (then the recognition side
    /// computes `tamper::blind` of each frame and hands it to `frame_facts`).
    pub fn watches_frames(&self) -> bool {
        self.tamper.watches_frames()
    }

    /// A frame arrived at `now`; `b` says whether it was uniform or saturated.
    pub fn frame_facts(&mut self, now: Duration, b: Option<Blind>, notes: &mut Vec<Note>) {
        match self.tamper.frame(now, b) {
            Some(TamperEvent::Tamper(b)) => notes.push((
                EventKind::Tamper,
                Some(format!(
                    "camera {}: it has shown nothing for {} s",
                    b.as_str(),
                    self.tamper_seconds
                )),
            )),
            Some(TamperEvent::Cleared) => notes.push((
                EventKind::TamperCleared,
                Some("the camera shows a scene again".into()),
            )),
            _ => {}
        }
    }

    /// The camera failed at `now` (not a single bad frame).
    pub fn camera_failed(&mut self, now: Duration, notes: &mut Vec<Note>) {
        if let Some(TamperEvent::CameraLost) = self.tamper.failed(now) {
            notes.push((
                EventKind::CameraLost,
                Some("the camera has been gone for long: the door sees nobody".into()),
            ));
        }
    }
}

/// The reason of a frame with too many faces.
pub const TAILGATING: &str = "tailgating";
