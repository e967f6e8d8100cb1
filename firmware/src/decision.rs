//! The access decision: turns per-frame recognition results into "grant", "deny" or "wait".
//! All of the door's threshold logic lives here, pure and driven by time stamps, so it is tested
//! without camera, model or clock.
//!
//! The rules (each a lesson from face-recognition door users: strangers must not be matched as
//! someone because they are the *nearest* someone):
//! - a frame *agrees* with person P when its largest face is large enough, its nearest person is
//!   P, the distance is at most `threshold`, and the second-nearest person is at least
//!   `min_margin` farther;
//! - a grant needs `frames` agreeing frames for the same person in a row, the first and last at
//!   most `window` apart. A frame whose face does not agree (unknown, ambiguous, or another person)
//!   breaks the run; a frame without a usable face does not, but the window still applies;
//! - after a grant nothing is granted for `cooldown`;
//! - a face seen for `deny_after` frames without a grant is denied once; the next denial comes
//!   after the face has been gone for `rearm`, or after `deny_repeat` if it stays.
//!
//! A liveness check would add one more condition to "agrees"; nothing else changes.

pub use crate::acceptance::Nearest;
use crate::acceptance::{FaceFacts, Refusal, Rule};
use std::time::Duration;

/// The decision's parameters (from the config's `[recognition]` section).
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionParams {
    /// Largest distance that can match.
    pub threshold: f32,
    /// Smallest gap between the nearest and the second-nearest person.
    pub min_margin: f32,
    /// Smallest face (pixels, shorter side of the box) that is recognised at all.
    pub min_face: f32,
    /// Agreeing frames in a row needed for a grant (at most [`MAX_FRAMES`]).
    pub frames: u32,
    /// Longest time from the first to the last of those frames.
    pub window: Duration,
    /// No grant for this long after a grant.
    pub cooldown: Duration,
    /// Frames of an unrecognised face before a denial is recorded.
    pub deny_after: u32,
    /// A face gone this long ends the episode (the next face may be denied again).
    pub rearm: Duration,
    /// While the same unrecognised face stays, it is denied again after this long.
    pub deny_repeat: Duration,
}

impl DecisionParams {
    /// The single-face acceptance rule these parameters apply to each frame.
    pub fn rule(&self) -> Rule {
        Rule {
            threshold: self.threshold,
            min_margin: self.min_margin,
            min_face: self.min_face,
        }
    }
}

/// What one frame showed, as far as the decision is concerned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Observation {
    /// No face in the frame.
    NoFace,
    /// The largest face, with its size (pixels) and its nearest enrolled person, if any.
    Face {
        /// Shorter side of the face box, in pixels.
        size: f32,
        /// The nearest person in the gallery (`None` with an empty gallery).
        nearest: Option<Nearest>,
    },
}

/// Why a face was denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    /// Nobody enrolled is near enough.
    Unknown,
    /// Near enough to someone, but too close to a second person to tell.
    Ambiguous,
    /// The face was too small to recognise.
    TooSmall,
    /// Recognised in some frames, but never in enough agreeing frames in a row.
    Unsteady,
}

impl From<Refusal> for DenyReason {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::TooSmall => DenyReason::TooSmall,
            // Quality gating arrives with its own reason; until then a poor face is unknown.
            Refusal::PoorQuality(_) | Refusal::Unknown => DenyReason::Unknown,
            Refusal::Ambiguous => DenyReason::Ambiguous,
        }
    }
}

impl DenyReason {
    /// The reason's name in the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            DenyReason::Unknown => "unknown",
            DenyReason::Ambiguous => "ambiguous",
            DenyReason::TooSmall => "too_small",
            DenyReason::Unsteady => "unsteady",
        }
    }
}

/// The outcome of one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    /// Nothing to do.
    Wait,
    /// Open the door for this person.
    Grant {
        /// Index of the person in the gallery in use.
        person: usize,
        /// The largest distance over the agreeing frames.
        distance: f32,
        /// The smallest margin over the agreeing frames.
        margin: f32,
        /// How many agreeing frames.
        frames: u32,
    },
    /// Record a denial.
    Deny {
        /// Why.
        reason: DenyReason,
        /// The nearest person in the last frame, if any.
        nearest: Option<Nearest>,
        /// How many frames the face was seen without a grant.
        frames: u32,
    },
}

/// Most agreeing frames a grant can ask for (the config's upper bound for `frames`).
pub const MAX_FRAMES: usize = 100;

/// One agreeing frame: when, distance, margin.
type Vote = (Duration, f32, f32);

/// The agreeing frames in a row for one person, within the window: a fixed-size buffer, so
/// the per-frame path allocates nothing.
#[derive(Debug, Clone, Default)]
struct Run {
    person: Option<usize>,
    votes: heapless::Deque<Vote, MAX_FRAMES>,
}

impl Run {
    fn clear(&mut self) {
        self.person = None;
        self.votes.clear();
    }

    /// Drops the votes older than `window` before `now`.
    fn expire(&mut self, now: Duration, window: Duration) {
        while self
            .votes
            .front()
            .is_some_and(|v| now.saturating_sub(v.0) > window)
        {
            self.votes.pop_front();
        }
        if self.votes.is_empty() {
            self.person = None;
        }
    }

    fn push(&mut self, person: usize, vote: Vote) {
        if self.person != Some(person) {
            self.clear();
            self.person = Some(person);
        }
        if self.votes.is_full() {
            self.votes.pop_front();
        }
        // Cannot fail: a slot was just made free.
        let _ = self.votes.push_back(vote);
    }
}

/// The decision state machine. Feed it one observation per frame, in time order.
#[derive(Debug, Clone)]
pub struct Decider {
    params: DecisionParams,
    run: Run,
    cooldown_until: Option<Duration>,
    /// Frames of the current episode with a face that did not lead to a grant.
    refused: u32,
    /// Whether any of them agreed with someone (for `Unsteady`).
    some_agreed: bool,
    last_face: Option<Duration>,
    denied_at: Option<Duration>,
}

impl Decider {
    /// A decider with `params` and no history.
    pub fn new(params: DecisionParams) -> Self {
        Self {
            params,
            run: Run::default(),
            cooldown_until: None,
            refused: 0,
            some_agreed: false,
            last_face: None,
            denied_at: None,
        }
    }

    /// The parameters in use.
    pub fn params(&self) -> &DecisionParams {
        &self.params
    }

    /// Replaces the parameters (config reload), keeping the cooldown.
    pub fn set_params(&mut self, params: DecisionParams) {
        self.params = params;
        self.forget();
    }

    /// Forgets the frames seen so far (the gallery changed: person indices changed too). A
    /// running cooldown is kept.
    pub fn forget(&mut self) {
        self.run.clear();
        self.refused = 0;
        self.some_agreed = false;
        self.denied_at = None;
    }

    /// Whether grants are held back by the cooldown at `now`.
    pub fn in_cooldown(&self, now: Duration) -> bool {
        self.cooldown_until.is_some_and(|t| now < t)
    }

    /// Takes the observation of the frame taken at `now`.
    pub fn observe(&mut self, now: Duration, obs: Observation) -> Decision {
        let p = &self.params;
        // The episode (one person in front of the camera) ends when no face is seen for `rearm`.
        if let Some(last) = self.last_face {
            if now.saturating_sub(last) >= p.rearm {
                self.refused = 0;
                self.some_agreed = false;
                self.denied_at = None;
                self.last_face = None;
            }
        }
        self.run.expire(now, p.window);
        let (size, nearest) = match obs {
            Observation::NoFace => return Decision::Wait,
            Observation::Face { size, nearest } => (size, nearest),
        };
        self.last_face = Some(now);
        if self.in_cooldown(now) {
            // The person just let in is usually still in view: neither count nor deny.
            self.run.clear();
            self.refused = 0;
            self.some_agreed = false;
            return Decision::Wait;
        }
        let facts = FaceFacts {
            size,
            quality: Ok(()),
            nearest,
        };
        let verdict = p.rule().judge(&facts).map_err(DenyReason::from);
        match verdict {
            Ok(n) => {
                self.some_agreed = true;
                self.run.push(n.person, (now, n.distance, n.margin));
                let count = self.run.votes.len() as u32;
                if count >= p.frames {
                    let distance = self.run.votes.iter().map(|v| v.1).fold(0.0, f32::max);
                    let margin = self
                        .run
                        .votes
                        .iter()
                        .map(|v| v.2)
                        .fold(f32::INFINITY, f32::min);
                    self.run.clear();
                    self.cooldown_until = Some(now + p.cooldown);
                    self.refused = 0;
                    self.some_agreed = false;
                    self.denied_at = None;
                    return Decision::Grant {
                        person: n.person,
                        distance,
                        margin,
                        frames: count,
                    };
                }
                self.count_refused(now, DenyReason::Unsteady, Some(n))
            }
            Err(reason) => {
                self.run.clear();
                let reason = if self.some_agreed && reason != DenyReason::TooSmall {
                    DenyReason::Unsteady
                } else {
                    reason
                };
                self.count_refused(now, reason, nearest)
            }
        }
    }

    fn count_refused(
        &mut self,
        now: Duration,
        reason: DenyReason,
        nearest: Option<Nearest>,
    ) -> Decision {
        self.refused += 1;
        let due = match self.denied_at {
            None => self.refused >= self.params.deny_after,
            Some(at) => now.saturating_sub(at) >= self.params.deny_repeat,
        };
        // A run still building up towards a grant is not denied yet.
        if due && self.run.votes.is_empty() {
            self.denied_at = Some(now);
            let frames = self.refused;
            self.refused = 0;
            self.some_agreed = false;
            return Decision::Deny {
                reason,
                nearest,
                frames,
            };
        }
        Decision::Wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> DecisionParams {
        DecisionParams {
            threshold: 0.6,
            min_margin: 0.05,
            min_face: 80.0,
            frames: 3,
            window: Duration::from_millis(1000),
            cooldown: Duration::from_secs(6),
            deny_after: 5,
            rearm: Duration::from_secs(2),
            deny_repeat: Duration::from_secs(10),
        }
    }

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn face(person: usize, distance: f32, margin: f32) -> Observation {
        Observation::Face {
            size: 120.0,
            nearest: Some(Nearest {
                person,
                distance,
                margin,
            }),
        }
    }

    /// Feeds `obs` at 10 fps from `start` ms; returns the non-Wait decisions with their time.
    fn feed(d: &mut Decider, start: u64, obs: &[Observation]) -> Vec<(u64, Decision)> {
        obs.iter()
            .enumerate()
            .map(|(i, o)| (start + 100 * i as u64, *o))
            .map(|(t, o)| (t, d.observe(ms(t), o)))
            .filter(|(_, d)| *d != Decision::Wait)
            .collect()
    }

    #[test]
    fn grants_on_the_third_agreeing_frame_and_not_before() {
        let mut d = Decider::new(params());
        assert_eq!(d.observe(ms(0), face(1, 0.4, 0.3)), Decision::Wait);
        assert_eq!(d.observe(ms(100), face(1, 0.5, 0.2)), Decision::Wait);
        assert_eq!(
            d.observe(ms(200), face(1, 0.45, 0.25)),
            Decision::Grant {
                person: 1,
                distance: 0.5,
                margin: 0.2,
                frames: 3
            }
        );
    }

    #[test]
    fn a_stranger_is_never_granted_however_long_they_stay() {
        let mut d = Decider::new(params());
        // 60 s at 10 fps, nearest person always just over the threshold.
        let frames: Vec<_> = (0..600).map(|_| face(0, 0.62, 0.3)).collect();
        let out = feed(&mut d, 0, &frames);
        assert!(out.iter().all(|(_, d)| matches!(d, Decision::Deny { .. })));
        // Denied at the 5th frame, then every 10 s while the stranger stays.
        let times: Vec<u64> = out.iter().map(|(t, _)| *t).collect();
        assert_eq!(times, vec![400, 10400, 20400, 30400, 40400, 50400]);
        assert!(matches!(
            out[0].1,
            Decision::Deny {
                reason: DenyReason::Unknown,
                frames: 5,
                ..
            }
        ));
    }

    #[test]
    fn a_small_margin_is_ambiguous_and_denied() {
        let mut d = Decider::new(params());
        let frames: Vec<_> = (0..5).map(|_| face(2, 0.3, 0.01)).collect();
        let out = feed(&mut d, 0, &frames);
        assert_eq!(out.len(), 1);
        assert!(matches!(
            out[0].1,
            Decision::Deny {
                reason: DenyReason::Ambiguous,
                ..
            }
        ));
    }

    #[test]
    fn a_disagreeing_frame_breaks_the_run() {
        let mut d = Decider::new(params());
        let out = feed(
            &mut d,
            0,
            &[
                face(1, 0.4, 0.3),
                face(1, 0.4, 0.3),
                face(1, 0.7, 0.3), // unknown: the run starts again
                face(1, 0.4, 0.3),
                face(1, 0.4, 0.3),
            ],
        );
        assert!(out.is_empty(), "{out:?}");
        assert!(matches!(
            d.observe(ms(500), face(1, 0.4, 0.3)),
            Decision::Grant { frames: 3, .. }
        ));
    }

    #[test]
    fn another_person_breaks_the_run() {
        let mut d = Decider::new(params());
        let out = feed(
            &mut d,
            0,
            &[
                face(1, 0.4, 0.3),
                face(1, 0.4, 0.3),
                face(2, 0.4, 0.3),
                face(1, 0.4, 0.3),
            ],
        );
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn frames_without_a_face_do_not_break_the_run_inside_the_window() {
        let mut d = Decider::new(params());
        let out = feed(
            &mut d,
            0,
            &[
                face(1, 0.4, 0.3),
                Observation::NoFace,
                face(1, 0.4, 0.3),
                Observation::NoFace,
                face(1, 0.4, 0.3),
            ],
        );
        assert_eq!(out.len(), 1);
        assert!(matches!(out[0], (400, Decision::Grant { person: 1, .. })));
    }

    #[test]
    fn agreeing_frames_spread_over_more_than_the_window_do_not_grant() {
        let mut d = Decider::new(params());
        assert_eq!(d.observe(ms(0), face(1, 0.4, 0.3)), Decision::Wait);
        assert_eq!(d.observe(ms(600), face(1, 0.4, 0.3)), Decision::Wait);
        // 1200 ms after the first: the first falls out of the window, the second stays.
        assert_eq!(d.observe(ms(1200), face(1, 0.4, 0.3)), Decision::Wait);
        assert!(matches!(
            d.observe(ms(1300), face(1, 0.4, 0.3)),
            Decision::Grant { frames: 3, .. }
        ));
    }

    #[test]
    fn small_faces_are_not_recognised() {
        let mut d = Decider::new(params());
        let small = Observation::Face {
            size: 60.0,
            nearest: Some(Nearest {
                person: 1,
                distance: 0.2,
                margin: 0.5,
            }),
        };
        let out = feed(&mut d, 0, &[small; 8]);
        assert_eq!(out.len(), 1);
        assert!(matches!(
            out[0].1,
            Decision::Deny {
                reason: DenyReason::TooSmall,
                ..
            }
        ));
    }

    #[test]
    fn cooldown_holds_back_a_second_grant() {
        let mut d = Decider::new(params());
        let frames: Vec<_> = (0..100).map(|_| face(1, 0.4, 0.3)).collect();
        let out = feed(&mut d, 0, &frames);
        // 10 s of the same person: a grant at 200 ms, the cooldown ends at 6200 ms, and three
        // frames later a second grant.
        let times: Vec<u64> = out.iter().map(|(t, _)| *t).collect();
        assert_eq!(times, vec![200, 6400]);
        assert!(out.iter().all(|(_, d)| matches!(d, Decision::Grant { .. })));
    }

    #[test]
    fn a_new_face_after_the_rearm_time_is_denied_again() {
        let mut d = Decider::new(params());
        let stranger: Vec<_> = (0..5).map(|_| face(0, 0.8, 0.3)).collect();
        assert_eq!(feed(&mut d, 0, &stranger).len(), 1);
        // Gone for 3 s (more than rearm), then back: a new denial after 5 frames.
        let out = feed(&mut d, 3500, &stranger);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, 3900);
    }

    #[test]
    fn unsteady_recognition_is_denied_as_such() {
        let mut d = Decider::new(params());
        let frames: Vec<_> = (0..6)
            .map(|i| {
                if i % 2 == 0 {
                    face(1, 0.5, 0.3)
                } else {
                    face(1, 0.65, 0.3)
                }
            })
            .collect();
        let out = feed(&mut d, 0, &frames);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(matches!(
            out[0].1,
            Decision::Deny {
                reason: DenyReason::Unsteady,
                ..
            }
        ));
    }

    #[test]
    fn nan_distances_never_match() {
        let mut d = Decider::new(params());
        let frames: Vec<_> = (0..10).map(|_| face(1, f32::NAN, f32::NAN)).collect();
        let out = feed(&mut d, 0, &frames);
        assert!(out
            .iter()
            .all(|(_, d)| !matches!(d, Decision::Grant { .. })));
    }

    #[test]
    fn an_empty_gallery_denies() {
        let mut d = Decider::new(params());
        let f = Observation::Face {
            size: 150.0,
            nearest: None,
        };
        let out = feed(&mut d, 0, &[f; 5]);
        assert!(matches!(
            out[..],
            [(
                400,
                Decision::Deny {
                    reason: DenyReason::Unknown,
                    nearest: None,
                    frames: 5
                }
            )]
        ));
    }
}
