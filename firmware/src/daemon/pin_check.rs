//! PIN checks off the loop thread: a PIN is verified against up to
//! [`MAX_PIN_CANDIDATES`](crate::access::factors::MAX_PIN_CANDIDATES) people's PIN and duress
//! hashes, each an argon2id verification of ~50-100 ms on a Raspberry Pi 4 core, so up to about
//! half a second that would otherwise stall frames, the exit button, the door contact and the
//! watchdog. One check at a time; a check whose claim was dropped meanwhile is ignored.

use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::thread;

/// A person a typed PIN may belong to (their face was near the one at the door).
#[derive(Debug, Clone)]
pub(super) struct Candidate {
    /// Index in the gallery the check was made on.
    pub(super) person: usize,
    /// Their id.
    pub(super) id: String,
    /// Their PIN's hash.
    pub(super) pin_hash: Option<String>,
    /// Their duress PIN's hash.
    pub(super) duress_hash: Option<String>,
}

/// Whose PIN it was: the person, their id, and whether it was their duress PIN. `None`: nobody's.
pub(super) type Found = Option<(usize, String, bool)>;

struct Job {
    number: u64,
    digits: String,
    candidates: Vec<Candidate>,
}

/// The checker's thread and the check awaited.
pub(super) struct PinChecker {
    jobs: Option<SyncSender<Job>>,
    results: Option<Receiver<(u64, Found)>>,
    /// The number of the check awaited (`None`: none in flight).
    pending: Option<u64>,
    next: u64,
}

/// Whose PIN `digits` is among `candidates`, nearest first: the first whose PIN (else duress PIN)
/// it is.
pub(super) fn check(digits: &str, candidates: &[Candidate]) -> Found {
    let is = |h: &Option<String>| {
        h.as_deref()
            .is_some_and(|h| crate::people::pin::verify(digits, h))
    };
    candidates.iter().find_map(|c| {
        if is(&c.pin_hash) {
            Some((c.person, c.id.clone(), false))
        } else if is(&c.duress_hash) {
            Some((c.person, c.id.clone(), true))
        } else {
            None
        }
    })
}

impl PinChecker {
    /// A checker with its thread (none if the thread cannot start: checks are then made on the
    /// caller's thread, slower but never skipped).
    pub(super) fn start() -> Self {
        let (job_tx, job_rx) = mpsc::sync_channel::<Job>(1);
        let (res_tx, res_rx) = mpsc::sync_channel(1);
        let spawned = thread::Builder::new()
            .name("pin-check".into())
            .spawn(move || {
                for job in job_rx {
                    let found = check(&job.digits, &job.candidates);
                    if res_tx.send((job.number, found)).is_err() {
                        return;
                    }
                }
            });
        match spawned {
            Ok(_) => Self {
                jobs: Some(job_tx),
                results: Some(res_rx),
                pending: None,
                next: 0,
            },
            Err(e) => {
                tracing::error!("no PIN checking thread ({e}): PINs are checked on the loop");
                Self::inline()
            }
        }
    }

    /// A checker without a thread.
    pub(super) fn inline() -> Self {
        Self {
            jobs: None,
            results: None,
            pending: None,
            next: 0,
        }
    }

    /// Whether a check is in flight.
    pub(super) fn busy(&self) -> bool {
        self.pending.is_some()
    }

    /// Drops the check in flight (its claim is gone): its answer will be ignored.
    pub(super) fn forget(&mut self) {
        self.pending = None;
    }

    /// Starts a check; `Some` when it was made at once (no thread, or the thread is gone).
    pub(super) fn submit(&mut self, digits: &str, candidates: Vec<Candidate>) -> Option<Found> {
        self.next += 1;
        let job = Job {
            number: self.next,
            digits: digits.to_owned(),
            candidates,
        };
        let Some(jobs) = &self.jobs else {
            return Some(check(&job.digits, &job.candidates));
        };
        match jobs.try_send(job) {
            Ok(()) => {
                self.pending = Some(self.next);
                None
            }
            // Still busy with checks whose claims were dropped (PINs typed in quick
            // succession): this one is made here rather than queued without bound.
            Err(mpsc::TrySendError::Full(job)) => Some(check(&job.digits, &job.candidates)),
            Err(mpsc::TrySendError::Disconnected(job)) => {
                tracing::error!("the PIN checking thread is gone: checking on the loop");
                self.jobs = None;
                self.results = None;
                Some(check(&job.digits, &job.candidates))
            }
        }
    }

    /// The answer to the check in flight, if it has come (`wait`: until it does, for the
    /// simulated clock, where a result must not depend on the host's speed).
    pub(super) fn answer(&mut self, wait: bool) -> Option<Found> {
        let number = self.pending?;
        let results = self.results.as_ref()?;
        loop {
            let got = if wait {
                results.recv().map_err(|_| TryRecvError::Disconnected)
            } else {
                results.try_recv()
            };
            match got {
                // An answer to a check dropped before: skip it.
                Ok((n, _)) if n != number => continue,
                Ok((_, found)) => {
                    self.pending = None;
                    return Some(found);
                }
                Err(TryRecvError::Empty) => return None,
                Err(TryRecvError::Disconnected) => {
                    // The thread died mid-check: refuse this PIN (typed again, it is checked
                    // on the loop) rather than wait forever.
                    tracing::error!("the PIN checking thread is gone");
                    self.jobs = None;
                    self.results = None;
                    self.pending = None;
                    return Some(None);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(person: usize, pin: &str, duress: Option<&str>) -> Candidate {
        Candidate {
            person,
            id: format!("p{person}"),
            pin_hash: Some(crate::people::pin::hash(pin).unwrap()),
            duress_hash: duress.map(|d| crate::people::pin::hash(d).unwrap()),
        }
    }

    #[test]
    fn the_thread_names_whose_pin_or_duress_pin_it_is_and_nobody_for_a_wrong_one() {
        let people = vec![
            candidate(0, "1111", None),
            candidate(4, "2222", Some("9999")),
        ];
        let mut c = PinChecker::start();
        for (digits, want) in [
            ("2222", Some((4, "p4".to_owned(), false))),
            ("9999", Some((4, "p4".to_owned(), true))),
            ("1111", Some((0, "p0".to_owned(), false))),
            ("3333", None),
        ] {
            assert!(
                c.submit(digits, people.clone()).is_none(),
                "made on the thread"
            );
            assert!(c.busy());
            assert_eq!(c.answer(true), Some(want), "{digits}");
            assert!(!c.busy());
        }
    }

    #[test]
    fn the_answer_to_a_dropped_check_is_never_taken_for_the_next_one() {
        let people = vec![candidate(0, "1111", None)];
        let mut c = PinChecker::start();
        let ask = |c: &mut PinChecker, digits: &str| match c.submit(digits, people.clone()) {
            Some(found) => found,
            None => c.answer(true).expect("an answer"),
        };
        assert!(c.submit("1111", people.clone()).is_none());
        c.forget();
        assert_eq!(c.answer(false), None, "nothing awaited");
        // The dropped check's "p0" answer may still be queued (or the thread still busy with
        // it, and this one made at once): either way the answers stay with their checks.
        assert_eq!(ask(&mut c, "0000"), None);
        assert_eq!(ask(&mut c, "1111"), Some((0, "p0".to_owned(), false)));
        assert_eq!(ask(&mut c, "2222"), None);
    }

    #[test]
    fn without_a_thread_the_check_is_made_at_once() {
        let mut c = PinChecker::inline();
        let found = c.submit("1111", vec![candidate(2, "1111", None)]);
        assert_eq!(found, Some(Some((2, "p2".to_owned(), false))));
        assert!(!c.busy());
    }
}
