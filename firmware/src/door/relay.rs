//! The relay: the lock output with its unlock timer, driven to "locked" when created, when the
//! timer runs out and when dropped (every exit path that unwinds, including errors and panics).
//!
//! What happens on SIGKILL or power loss is decided by the wiring, not by this code: see
//! docs/installing.md ("Wiring the lock: fail-secure or fail-safe"). Only the gate
//! (`access::gate`) drives it open.

use crate::hal::{LockError, LockOutput, LockState};
use std::time::Duration;

/// The lock output and when it must lock again.
pub struct Door<L: LockOutput> {
    out: L,
    state: LockState,
    relock_at: Option<Duration>,
}

impl<L: LockOutput> Door<L> {
    /// Takes the lock output and drives it to locked.
    pub fn new(mut out: L) -> Result<Self, LockError> {
        out.set(LockState::Locked)?;
        Ok(Self {
            out,
            state: LockState::Locked,
            relock_at: None,
        })
    }

    /// The state the output was last driven to.
    pub fn state(&self) -> LockState {
        self.state
    }

    /// When the door locks again, if it is unlocked.
    pub fn relock_at(&self) -> Option<Duration> {
        self.relock_at
    }

    /// Unlocks until `now + hold`. An unlocked door stays unlocked until the later of the two
    /// times.
    pub fn unlock(&mut self, now: Duration, hold: Duration) -> Result<(), LockError> {
        let until = now + hold;
        self.relock_at = Some(self.relock_at.map_or(until, |t| t.max(until)));
        if self.state != LockState::Unlocked {
            // If this fails the door stays locked: the safe way to fail.
            self.out.set(LockState::Unlocked)?;
            self.state = LockState::Unlocked;
        }
        Ok(())
    }

    /// Locks if the unlock time is over. `Ok(true)` when it just locked.
    pub fn tick(&mut self, now: Duration) -> Result<bool, LockError> {
        match self.relock_at {
            Some(t) if now >= t => {
                self.lock()?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Locks now.
    pub fn lock(&mut self) -> Result<(), LockError> {
        self.out.set(LockState::Locked)?;
        self.state = LockState::Locked;
        self.relock_at = None;
        Ok(())
    }
}

impl<L: LockOutput> Drop for Door<L> {
    fn drop(&mut self) {
        if let Err(e) = self.out.set(LockState::Locked) {
            tracing::error!("could not lock the door on the way out: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Record(Arc<Mutex<Vec<LockState>>>);

    impl LockOutput for Record {
        fn set(&mut self, state: LockState) -> Result<(), LockError> {
            self.0.lock().unwrap().push(state);
            Ok(())
        }
    }

    struct Broken;
    impl LockOutput for Broken {
        fn set(&mut self, _: LockState) -> Result<(), LockError> {
            Err(LockError("no such pin".into()))
        }
    }

    #[test]
    fn locks_at_start_after_the_hold_and_on_drop() {
        let rec = Record::default();
        let mut door = Door::new(rec.clone()).unwrap();
        let s = Duration::from_secs;
        door.unlock(s(10), s(5)).unwrap();
        assert!(!door.tick(s(14)).unwrap());
        assert_eq!(door.state(), LockState::Unlocked);
        assert!(door.tick(s(15)).unwrap());
        assert_eq!(door.state(), LockState::Locked);
        door.unlock(s(20), s(5)).unwrap();
        drop(door);
        use LockState::*;
        assert_eq!(
            *rec.0.lock().unwrap(),
            vec![Locked, Unlocked, Locked, Unlocked, Locked]
        );
    }

    #[test]
    fn a_second_unlock_extends_to_the_later_time() {
        let rec = Record::default();
        let mut door = Door::new(rec.clone()).unwrap();
        let s = Duration::from_secs;
        door.unlock(s(0), s(5)).unwrap();
        door.unlock(s(3), s(5)).unwrap();
        assert_eq!(door.relock_at(), Some(s(8)));
        door.unlock(s(4), s(1)).unwrap();
        assert_eq!(door.relock_at(), Some(s(8)));
        // One edge to unlocked, not three.
        assert_eq!(rec.0.lock().unwrap().len(), 2);
    }

    #[test]
    fn a_broken_output_is_an_error_at_start() {
        assert!(Door::new(Broken).is_err());
    }
}
