//! Door supervision like an access panel's: forced open, held open (pre-alarm, alarm), relock on
//! close, the alarm output, and the failed-attempt lockout. Pure state machines fed with time and
//! door facts, so the daemon, the simulator and the tests share them; `[door]` and `[access]`
//! configure them.

use crate::hal::LockState;
use crate::problem::Problem;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::Duration;

/// The inputs' pull resistor (the Pi's internal one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bias {
    /// Pull-up: a switch to ground reads low when closed (the usual wiring).
    PullUp,
    /// Pull-down: a switch to 3.3 V reads high when closed.
    PullDown,
    /// External resistors.
    None,
}

/// `[door]`: the door's inputs (exit button, door contact), the alarm output and supervision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DoorConfig {
    /// BCM GPIO of the request-to-exit button (none: no button).
    pub exit_gpio: Option<u8>,
    /// The button reads low when pressed (a button to ground with the pull-up).
    pub exit_active_low: bool,
    /// BCM GPIO of the door contact (none: no contact, no supervision).
    pub contact_gpio: Option<u8>,
    /// The contact reads low when the door is *open*. The default (`false`: open reads high)
    /// suits a contact to ground that is closed while the door is: a cut wire then reads "open"
    /// and raises `forced_open`, so the fault is not silent.
    pub contact_active_low: bool,
    /// Pull resistor of both inputs.
    pub bias: Bias,
    /// Debounce period of both inputs (kernel debounce where the chip offers it).
    pub debounce_ms: u32,
    /// BCM GPIO of the alarm output (buzzer, siren, alarm panel input; none: no output).
    pub alarm_gpio: Option<u8>,
    /// The alarm output is active when low.
    pub alarm_active_low: bool,
    /// An open door with the lock locked for longer than this after it was last unlocked is
    /// held open (0: no held-open supervision).
    pub held_open_seconds: f64,
    /// `held_open_warning` this long before `held_open` (0: none).
    pub pre_alarm_seconds: f64,
    /// End an unlock as soon as the door has opened and closed again (nobody follows).
    pub relock_on_close: bool,
    /// The alarm output sounds at most this long per alarm (sirens have legal limits).
    pub alarm_max_seconds: f64,
}

impl Default for DoorConfig {
    fn default() -> Self {
        Self {
            exit_gpio: None,
            exit_active_low: true,
            contact_gpio: None,
            contact_active_low: false,
            bias: Bias::PullUp,
            debounce_ms: 30,
            alarm_gpio: None,
            alarm_active_low: false,
            held_open_seconds: 30.0,
            pre_alarm_seconds: 10.0,
            relock_on_close: true,
            alarm_max_seconds: 180.0,
        }
    }
}

impl DoorConfig {
    /// Checks the ranges; `Err(Problem::new(key, problem))`.
    pub fn check(&self, lock_gpio: u8) -> Result<(), Problem> {
        let pins = [
            ("door.exit_gpio", self.exit_gpio),
            ("door.contact_gpio", self.contact_gpio),
            ("door.alarm_gpio", self.alarm_gpio),
        ];
        for (i, (key, pin)) in pins.iter().enumerate() {
            let Some(p) = pin else { continue };
            if *p > 27 {
                return Err(Problem::new(
                    key,
                    format!("GPIO{p} is not on the 40-pin header (BCM 0 to 27)"),
                ));
            }
            if *p == lock_gpio || pins[..i].iter().any(|(_, q)| *q == Some(*p)) {
                return Err(Problem::new(
                    key,
                    format!("GPIO{p} is already used by another output or input"),
                ));
            }
        }
        if self.debounce_ms > 1000 {
            return Err(Problem::new(
                "door.debounce_ms",
                format!("must be 0 to 1000 (got {})", self.debounce_ms),
            ));
        }
        for (key, v, max) in [
            ("door.held_open_seconds", self.held_open_seconds, 3600.0),
            ("door.pre_alarm_seconds", self.pre_alarm_seconds, 3600.0),
            ("door.alarm_max_seconds", self.alarm_max_seconds, 3600.0),
        ] {
            if !(v.is_finite() && (0.0..=max).contains(&v)) {
                return Err(Problem::new(
                    key,
                    format!("must be 0 to {max} seconds (got {v})"),
                ));
            }
        }
        if self.held_open_seconds > 0.0 && self.pre_alarm_seconds >= self.held_open_seconds {
            return Err(Problem::new(
                "door.pre_alarm_seconds",
                format!(
                    "must be under door.held_open_seconds ({} >= {})",
                    self.pre_alarm_seconds, self.held_open_seconds
                ),
            ));
        }
        Ok(())
    }
}

/// What supervision saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoorEvent {
    /// The door opened while the lock was locked: forced, or a mechanical key. Alarm.
    ForcedOpen,
    /// The door will be held open soon (pre-alarm).
    HeldOpenWarning,
    /// The door stayed open too long. Alarm.
    HeldOpen,
    /// The door closed: the alarm it raised is over.
    AlarmCleared,
    /// The door opened and closed during an unlock: lock now.
    RelockOnClose,
}

/// The supervision state machine.
#[derive(Debug, Clone)]
pub struct Supervision {
    held: Option<Duration>,
    pre: Option<Duration>,
    relock_on_close: bool,
    alarm_max: Duration,
    open: Option<bool>,
    /// Since when the door has been open with the lock locked (the held-open timer).
    locked_open_since: Option<Duration>,
    opened_while_unlocked: bool,
    warned: bool,
    held_raised: bool,
    forced: bool,
    alarm_since: Option<Duration>,
}

impl Supervision {
    /// Supervision as `[door]` says.
    pub fn new(c: &DoorConfig) -> Self {
        let secs = |s: f64| (s > 0.0).then(|| Duration::from_secs_f64(s));
        let held = secs(c.held_open_seconds);
        Self {
            held,
            pre: held.and(secs(c.pre_alarm_seconds)),
            relock_on_close: c.relock_on_close,
            alarm_max: Duration::from_secs_f64(c.alarm_max_seconds),
            open: None,
            locked_open_since: None,
            opened_while_unlocked: false,
            warned: false,
            held_raised: false,
            forced: false,
            alarm_since: None,
        }
    }

    /// Feeds the door contact (`None`: no contact) and the lock's state at `now`; returns what
    /// happened (at most a few events).
    pub fn step(
        &mut self,
        now: Duration,
        door_open: Option<bool>,
        lock: LockState,
    ) -> Vec<DoorEvent> {
        let mut out = Vec::new();
        let was = self.open;
        self.open = door_open;
        match (was, door_open) {
            (Some(false) | None, Some(true)) => {
                if lock == LockState::Locked {
                    self.forced = true;
                    self.alarm_since = Some(now);
                    out.push(DoorEvent::ForcedOpen);
                } else {
                    self.opened_while_unlocked = true;
                }
            }
            (Some(true), Some(false)) => {
                if self.forced || self.held_raised {
                    out.push(DoorEvent::AlarmCleared);
                }
                if self.relock_on_close && self.opened_while_unlocked && lock == LockState::Unlocked
                {
                    out.push(DoorEvent::RelockOnClose);
                }
                self.forced = false;
                self.held_raised = false;
                self.warned = false;
                self.opened_while_unlocked = false;
                self.alarm_since = None;
            }
            _ => {}
        }
        // The held-open timer runs while the door is open and the lock locked; an unlock
        // (a grant, the exit button, office hours) restarts it.
        if self.open == Some(true) && lock == LockState::Locked {
            let since = *self.locked_open_since.get_or_insert(now);
            if let Some(held) = self.held {
                let open_for = now.saturating_sub(since);
                let warn_at = held.saturating_sub(self.pre.unwrap_or(Duration::ZERO));
                if self.pre.is_some() && !self.warned && !self.forced && open_for >= warn_at {
                    self.warned = true;
                    out.push(DoorEvent::HeldOpenWarning);
                }
                if !self.held_raised && !self.forced && open_for >= held {
                    self.held_raised = true;
                    self.alarm_since = Some(now);
                    out.push(DoorEvent::HeldOpen);
                }
            }
        } else {
            self.locked_open_since = None;
        }
        out
    }

    /// Whether the alarm output should sound at `now`.
    pub fn alarm(&self, now: Duration) -> bool {
        (self.forced || self.held_raised)
            && self
                .alarm_since
                .is_some_and(|t| now.saturating_sub(t) < self.alarm_max)
    }
}

/// The failed-attempt lockout: `denials` denials within `window` pause recognition for `pause`.
#[derive(Debug, Clone)]
pub struct Lockout {
    denials: usize,
    window: Duration,
    pause: Duration,
    recent: VecDeque<Duration>,
    until: Option<Duration>,
}

impl Lockout {
    /// A lockout after `denials` denials (0: never) within `window`, for `pause`.
    pub fn new(denials: u32, window: Duration, pause: Duration) -> Self {
        Self {
            denials: denials as usize,
            window,
            pause,
            recent: VecDeque::new(),
            until: None,
        }
    }

    /// Records a denial at `now`; `true` when it starts a lockout.
    pub fn denied(&mut self, now: Duration) -> bool {
        if self.denials == 0 || self.active(now) {
            return false;
        }
        self.recent.push_back(now);
        while self
            .recent
            .front()
            .is_some_and(|t| now.saturating_sub(*t) > self.window)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.denials {
            self.recent.clear();
            self.until = Some(now + self.pause);
            return true;
        }
        false
    }

    /// Whether recognition is paused at `now`.
    pub fn active(&self, now: Duration) -> bool {
        self.until.is_some_and(|u| now < u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DoorEvent::*;
    use LockState::{Locked, Unlocked};

    fn s(v: f64) -> Duration {
        Duration::from_secs_f64(v)
    }

    fn sup() -> Supervision {
        Supervision::new(&DoorConfig {
            held_open_seconds: 30.0,
            pre_alarm_seconds: 10.0,
            ..DoorConfig::default()
        })
    }

    #[test]
    fn opening_a_locked_door_is_forced_and_sounds_until_it_closes() {
        let mut v = sup();
        assert!(v.step(s(0.0), Some(false), Locked).is_empty());
        assert_eq!(v.step(s(1.0), Some(true), Locked), vec![ForcedOpen]);
        assert!(v.alarm(s(2.0)));
        // Forced is not also held open.
        assert!(v.step(s(100.0), Some(true), Locked).is_empty());
        assert!(v.alarm(s(100.0)));
        assert_eq!(v.step(s(101.0), Some(false), Locked), vec![AlarmCleared]);
        assert!(!v.alarm(s(101.0)));
    }

    #[test]
    fn the_alarm_output_stops_after_its_maximum() {
        let mut v = Supervision::new(&DoorConfig {
            alarm_max_seconds: 60.0,
            ..DoorConfig::default()
        });
        v.step(s(0.0), Some(false), Locked);
        v.step(s(1.0), Some(true), Locked);
        assert!(v.alarm(s(60.0)));
        assert!(!v.alarm(s(61.5)));
    }

    #[test]
    fn a_granted_door_left_open_warns_then_alarms_and_clears_on_close() {
        let mut v = sup();
        v.step(s(0.0), Some(false), Unlocked);
        assert!(v.step(s(1.0), Some(true), Unlocked).is_empty());
        // The lock relocks at 5 s: the held-open timer starts then.
        assert!(v.step(s(5.0), Some(true), Locked).is_empty());
        assert!(v.step(s(24.9), Some(true), Locked).is_empty());
        assert_eq!(v.step(s(25.0), Some(true), Locked), vec![HeldOpenWarning]);
        assert!(!v.alarm(s(25.0)));
        assert_eq!(v.step(s(35.0), Some(true), Locked), vec![HeldOpen]);
        assert!(v.alarm(s(35.0)));
        assert!(v.step(s(40.0), Some(true), Locked).is_empty());
        assert_eq!(v.step(s(41.0), Some(false), Locked), vec![AlarmCleared]);
        assert!(!v.alarm(s(41.0)));
    }

    #[test]
    fn a_door_open_while_unlocked_is_never_held_open() {
        // Office hours: the lock stays unlocked.
        let mut v = sup();
        v.step(s(0.0), Some(false), Unlocked);
        for t in 1..500 {
            assert!(v.step(s(f64::from(t)), Some(true), Unlocked).is_empty());
        }
    }

    #[test]
    fn a_door_that_opened_and_closed_during_the_unlock_relocks() {
        let mut v = sup();
        v.step(s(0.0), Some(false), Unlocked);
        v.step(s(1.0), Some(true), Unlocked);
        assert_eq!(v.step(s(2.0), Some(false), Unlocked), vec![RelockOnClose]);
        let mut off = Supervision::new(&DoorConfig {
            relock_on_close: false,
            ..DoorConfig::default()
        });
        off.step(s(0.0), Some(false), Unlocked);
        off.step(s(1.0), Some(true), Unlocked);
        assert!(off.step(s(2.0), Some(false), Unlocked).is_empty());
    }

    #[test]
    fn no_contact_means_no_supervision_and_a_first_reading_of_open_is_forced_only_if_locked() {
        let mut v = sup();
        for t in 0..100 {
            assert!(v.step(s(f64::from(t)), None, Locked).is_empty());
        }
        // A door found open at start with the lock locked is reported.
        let mut w = sup();
        assert_eq!(w.step(s(0.0), Some(true), Locked), vec![ForcedOpen]);
    }

    #[test]
    fn lockout_after_n_denials_in_the_window_for_the_pause() {
        let mut l = Lockout::new(3, s(60.0), s(30.0));
        assert!(!l.denied(s(0.0)));
        assert!(!l.denied(s(10.0)));
        // The first has left the window: still two.
        assert!(!l.denied(s(65.0)));
        assert!(!l.active(s(65.0)));
        assert!(l.denied(s(66.0)));
        assert!(l.active(s(66.0)));
        assert!(l.active(s(95.9)));
        assert!(!l.active(s(96.0)));
        // Denials during a lockout do not extend it, and counting starts again after it.
        assert!(!l.denied(s(96.0)));
        assert!(!l.denied(s(97.0)));
        assert!(l.denied(s(98.0)));
    }

    #[test]
    fn lockout_off_by_default() {
        let mut l = Lockout::new(0, s(60.0), s(30.0));
        for t in 0..100 {
            assert!(!l.denied(s(f64::from(t))));
        }
    }

    #[test]
    fn pins_are_checked() {
        let c = DoorConfig {
            exit_gpio: Some(17),
            ..DoorConfig::default()
        };
        assert!(c.check(17).unwrap_err().message.contains("already used"));
        let c = DoorConfig {
            exit_gpio: Some(22),
            contact_gpio: Some(22),
            ..DoorConfig::default()
        };
        assert!(c.check(17).is_err());
        let c = DoorConfig {
            exit_gpio: Some(30),
            ..DoorConfig::default()
        };
        assert!(c.check(17).is_err());
        assert!(DoorConfig::default().check(17).is_ok());
    }
}
