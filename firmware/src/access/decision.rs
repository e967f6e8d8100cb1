//! The access decision: turns per-frame recognition results into "grant", "deny" or "wait".
//! All of the door's threshold logic lives here, pure and driven by time stamps, so it is tested
//! without camera, model or clock.
//!
//! The rules (each a lesson from face-recognition door users: strangers must not be matched as
//! someone because they are the *nearest* someone):
//! - a frame *agrees* with person P when the acceptance rule ([`Rule::judge`]) says its largest
//!   face is P;
//! - the agreeing frames must be one physical face: a *track* is a run of consecutive frames whose
//!   face boxes overlap (IoU at least [`TRACK_MIN_IOU`], or the centre moved less than half the
//!   box); a frame without a face, with a face that could not be used (failed alignment, pipeline
//!   error) or with a face elsewhere starts a new track. Two people who both match P one after
//!   the other are two tracks and never add up to one grant;
//! - a grant needs `frames` agreeing frames for the same person in a row on one track, the first
//!   and last at most `window` apart. A frame whose face does not agree (unknown, ambiguous,
//!   too small, or another person) breaks the run. A frame too poor to judge (blur, exposure,
//!   pose) neither agrees nor breaks it: a person stepping in is often blurred for a frame, and
//!   the box still ties the frames around it to one face;
//! - the mean of the run's embeddings (temporal fusion: noise of single frames averages out)
//!   must match the same person under the same rule; the grant records its distance;
//! - after a grant the same person is not let in again for `cooldown` (someone else is: a
//!   colleague right behind is let in and audited, the unlock is extended), and the face let
//!   in is *held*: it is not
//!   let in again until it has left, i.e. until neither its track (for `rearm` after it was
//!   last recognised) nor any face judged to be the same person has been seen for `rearm`. A photo taped in front of the camera or a frozen
//!   stream is granted once, not after every cooldown. Other faces are judged meanwhile: a
//!   stranger is denied (and audited) during the cooldown, another enrolled person is let in;
//! - a face seen for `deny_after` frames without a grant is denied once; the next denial comes
//!   after the face has been gone for `rearm`, or after `deny_repeat` if it stays.
//!
//! Liveness is one more condition of "agrees" (in the acceptance rule): a frame whose face scores
//! below the level is refused as `spoof_suspected` and breaks the run like any other refusal.

pub use crate::access::acceptance::Nearest;
use crate::access::acceptance::{FaceFacts, QualityIssue, Refusal, Rule};
use crate::vision::detect::BBox;
use std::time::Duration;

/// Smallest overlap (intersection over union) of two consecutive face boxes of one track.
pub const TRACK_MIN_IOU: f32 = 0.3;

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
    /// Smallest liveness score of an agreeing frame (`None`: no liveness check).
    pub min_liveness: Option<f32>,
    /// The presentation cues (`crate::access::cues`) are on: an agreeing frame must have cleared them.
    pub cues: bool,
}

impl DecisionParams {
    /// The single-face acceptance rule these parameters apply to each frame.
    pub fn rule(&self) -> Rule {
        Rule {
            threshold: self.threshold,
            min_margin: self.min_margin,
            min_face: self.min_face,
            min_liveness: self.min_liveness,
            cues: self.cues,
        }
    }
}

/// What one frame showed, as far as the decision is concerned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Observation<'a> {
    /// No face in the frame.
    NoFace,
    /// A face that could not be used (failed alignment) or a frame the pipeline failed on: not
    /// judged, but it breaks the track.
    Lost,
    /// The largest face.
    Face(Seen<'a>),
}

/// The largest face of a frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Seen<'a> {
    /// Where it is in the frame (for tracking).
    pub bbox: BBox,
    /// The image quality verdict (`Ok` when not checked).
    pub quality: Result<(), QualityIssue>,
    /// The nearest person in the gallery (`None` with an empty gallery, or when the face was
    /// not embedded because it is too small or too poor).
    pub nearest: Option<Nearest>,
    /// Its embedding (empty when not embedded).
    pub embedding: &'a [f32],
    /// Its liveness score (`None` when not measured).
    pub liveness: Option<f32>,
    /// The presentation cues' verdict (`None` when not run).
    pub cues: Option<Result<(), crate::access::acceptance::Cue>>,
}

impl Observation<'_> {
    /// The same observation with the face's embedding `embedding`.
    pub fn with(self, embedding: &[f32]) -> Observation<'_> {
        match self {
            Observation::NoFace => Observation::NoFace,
            Observation::Lost => Observation::Lost,
            Observation::Face(s) => Observation::Face(Seen {
                bbox: s.bbox,
                quality: s.quality,
                nearest: s.nearest,
                embedding,
                liveness: s.liveness,
                cues: s.cues,
            }),
        }
    }
}

impl Seen<'_> {
    /// What the acceptance rule looks at.
    pub fn facts(&self) -> FaceFacts {
        FaceFacts {
            size: self.bbox.size(),
            quality: self.quality,
            nearest: self.nearest,
            liveness: self.liveness,
            cues: self.cues,
        }
    }
}

/// Whether two boxes of consecutive frames are the same face: they overlap by
/// [`TRACK_MIN_IOU`], or the centre moved less than half the (smaller) box.
pub fn same_track(a: &BBox, b: &BBox) -> bool {
    let ix = (a.x + a.w).min(b.x + b.w) - a.x.max(b.x);
    let iy = (a.y + a.h).min(b.y + b.h) - a.y.max(b.y);
    let inter = ix.max(0.0) * iy.max(0.0);
    let union = a.area() + b.area() - inter;
    if union > 0.0 && inter / union >= TRACK_MIN_IOU {
        return true;
    }
    let (dx, dy) = (
        (a.x + a.w / 2.0) - (b.x + b.w / 2.0),
        (a.y + a.h / 2.0) - (b.y + b.h / 2.0),
    );
    dx.hypot(dy) < a.size().min(b.size()) / 2.0
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
    /// The face image was too poor to judge (blur, exposure, pose).
    PoorQuality(QualityIssue),
    /// The liveness check took the face for a photo or a screen.
    SpoofSuspected,
}

impl From<Refusal> for DenyReason {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::TooSmall => DenyReason::TooSmall,
            Refusal::PoorQuality(q) => DenyReason::PoorQuality(q),
            Refusal::Unknown => DenyReason::Unknown,
            Refusal::Ambiguous => DenyReason::Ambiguous,
            Refusal::SpoofSuspected => DenyReason::SpoofSuspected,
        }
    }
}

impl DenyReason {
    /// The reason's name in the audit log (`poor_quality:ISSUE` for a poor image, e.g.
    /// `poor_quality:too_dark`, so the log says what to fix at the door).
    pub fn as_str(self) -> &'static str {
        match self {
            DenyReason::Unknown => "unknown",
            DenyReason::Ambiguous => "ambiguous",
            DenyReason::TooSmall => "too_small",
            DenyReason::Unsteady => "unsteady",
            DenyReason::SpoofSuspected => "spoof_suspected",
            DenyReason::PoorQuality(q) => match q {
                QualityIssue::Blurry => "poor_quality:blurry",
                QualityIssue::TooDark => "poor_quality:too_dark",
                QualityIssue::TooBright => "poor_quality:too_bright",
                QualityIssue::Turned => "poor_quality:turned",
            },
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
        /// The match of the mean of their embeddings.
        fused: Nearest,
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

/// One agreeing frame: when, distance, margin, and its sequence number (which says where its
/// embedding is kept).
type Vote = (Duration, f32, f32, usize);

/// The agreeing frames in a row for one person on one track, within the window, with their
/// embeddings: fixed-size buffers, so the per-frame path allocates nothing (once the embedding
/// length is known).
#[derive(Debug, Clone, Default)]
struct Run {
    person: Option<usize>,
    votes: heapless::Deque<Vote, MAX_FRAMES>,
    /// Embedding length.
    dim: usize,
    /// `MAX_FRAMES` embeddings, a ring: vote `seq` is at slot `seq % MAX_FRAMES`. The votes are
    /// consecutive sequence numbers, at most `MAX_FRAMES` of them, so no two share a slot.
    embeddings: Vec<f32>,
    seq: usize,
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

    fn push(&mut self, person: usize, when: Duration, n: Nearest, embedding: &[f32]) {
        if self.person != Some(person) || embedding.len() != self.dim {
            self.clear();
            self.person = Some(person);
        }
        if embedding.len() != self.dim {
            self.dim = embedding.len();
            self.embeddings.resize(MAX_FRAMES * self.dim, 0.0);
        }
        if self.votes.is_full() {
            self.votes.pop_front();
        }
        self.seq = self.seq.wrapping_add(1);
        let slot = (self.seq % MAX_FRAMES) * self.dim;
        self.embeddings[slot..slot + self.dim].copy_from_slice(embedding);
        // Cannot fail: a slot was just made free.
        let _ = self.votes.push_back((when, n.distance, n.margin, self.seq));
    }

    /// The mean of the votes' embeddings, into `out`.
    fn mean_into(&self, out: &mut Vec<f32>) {
        out.clear();
        out.resize(self.dim, 0.0);
        for v in &self.votes {
            let slot = (v.3 % MAX_FRAMES) * self.dim;
            for (o, e) in out.iter_mut().zip(&self.embeddings[slot..slot + self.dim]) {
                *o += e;
            }
        }
        let n = self.votes.len().max(1) as f32;
        out.iter_mut().for_each(|o| *o /= n);
    }
}

/// The decision state machine. Feed it one observation per frame, in time order.
#[derive(Debug, Clone)]
pub struct Decider {
    params: DecisionParams,
    run: Run,
    /// The people let in lately and until when each is held back (gallery indices): a fixed
    /// buffer, the oldest dropped when full (they are long out of their cooldown by then).
    cooldowns: heapless::Deque<(usize, Duration), 16>,
    /// Frames of the current episode with a face that did not lead to a grant.
    refused: u32,
    /// Whether any of them agreed with someone (for `Unsteady`).
    some_agreed: bool,
    last_face: Option<Duration>,
    denied_at: Option<Duration>,
    /// The face box of the previous frame, if it had a usable face (the track goes on from it).
    last_box: Option<BBox>,
    /// The mean embedding of a run (kept to reuse its allocation).
    mean: Vec<f32>,
    /// Number of the current track (a new one starts whenever the face box jumps or is lost).
    track: u64,
    /// The face let in last, until it has left.
    held: Option<Held>,
}

/// The face let in last.
#[derive(Debug, Clone, Copy)]
struct Held {
    /// Who was let in (`None` once the gallery changed: indices changed).
    person: Option<usize>,
    /// Its track, or the last track judged to be that person.
    track: u64,
    /// When it was last seen.
    last: Duration,
    /// When it was last recognised as `person` (its track holds it for `rearm` after that).
    confirmed: Duration,
}

impl Decider {
    /// A decider with `params` and no history.
    pub fn new(params: DecisionParams) -> Self {
        Self {
            params,
            run: Run::default(),
            cooldowns: heapless::Deque::new(),
            refused: 0,
            some_agreed: false,
            last_face: None,
            denied_at: None,
            last_box: None,
            mean: Vec::new(),
            track: 0,
            held: None,
        }
    }

    /// The parameters in use.
    pub fn params(&self) -> &DecisionParams {
        &self.params
    }

    /// Replaces the parameters (config reload), keeping the cooldown and the face let in last.
    pub fn set_params(&mut self, params: DecisionParams) {
        self.params = params;
        let held = self.held_person();
        self.forget(held);
    }

    /// The person let in last, while their face has not left (index in the gallery in use).
    pub fn held_person(&self) -> Option<usize> {
        self.held.and_then(|h| h.person)
    }

    /// Forgets the frames seen so far (the gallery changed: person indices changed too);
    /// `held` is the new index of the person let in last (`None` if no longer enrolled). A
    /// running cooldown is kept, and so is the face let in last.
    pub fn forget(&mut self, held: Option<usize>) {
        // Indices changed: the held person's cooldown follows them to the new index, the
        // others lapse (each must still leave before being let in again).
        let old = self.held_person();
        let kept = self
            .cooldowns
            .iter()
            .find(|c| Some(c.0) == old)
            .copied()
            .zip(held)
            .map(|((_, until), new)| (new, until));
        self.cooldowns.clear();
        if let Some(c) = kept {
            let _ = self.cooldowns.push_back(c);
        }
        if let Some(h) = &mut self.held {
            // Without a person to recognise, the held track lapses `rearm` after the last
            // recognition; the face is then judged like any other, under the new gallery.
            h.person = held;
        }
        self.run.clear();
        self.refused = 0;
        self.some_agreed = false;
        self.denied_at = None;
    }

    /// Whether a grant to `person` is held back by the cooldown at `now`.
    pub fn in_cooldown(&self, now: Duration, person: usize) -> bool {
        self.cooldowns
            .iter()
            .any(|&(p, until)| p == person && now < until)
    }

    /// Takes the observation of the frame taken at `now`. `fuse` matches an embedding (the mean
    /// of a run's) with the gallery, as the per-frame `nearest` were.
    pub fn observe(
        &mut self,
        now: Duration,
        obs: Observation<'_>,
        fuse: &mut dyn FnMut(&[f32]) -> Option<Nearest>,
    ) -> Decision {
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
        if self
            .held
            .is_some_and(|h| now.saturating_sub(h.last) >= p.rearm)
        {
            self.held = None;
        }
        self.run.expire(now, p.window);
        let seen = match obs {
            Observation::NoFace => {
                self.last_box = None;
                self.run.clear();
                return Decision::Wait;
            }
            Observation::Lost => {
                // A face may be there, but nothing ties the next one to the run so far.
                self.last_box = None;
                self.run.clear();
                self.last_face = Some(now);
                // Nor does it show the face let in has gone.
                if let Some(h) = &mut self.held {
                    h.last = now;
                }
                return Decision::Wait;
            }
            Observation::Face(seen) => seen,
        };
        self.last_face = Some(now);
        let same_face = self.last_box.is_some_and(|b| same_track(&b, &seen.bbox));
        self.last_box = Some(seen.bbox);
        if !same_face {
            self.run.clear();
            self.track += 1;
        }
        let verdict = p.rule().judge(&seen.facts()).map_err(DenyReason::from);
        if let Some(h) = &mut self.held {
            // The face let in, still there (or back before it was gone for `rearm`): neither
            // counted nor denied, and not let in again. Its track holds it while it turns away
            // or blurs, for `rearm` after it was last recognised, and not once it is recognised
            // as someone else: a second person stepping into the same place is judged.
            let someone_else = matches!(verdict, Ok(n) if h.person.is_some_and(|p| p != n.person));
            let same_person = verdict.is_ok_and(|n| Some(n.person) == h.person);
            let on_track =
                h.track == self.track && !someone_else && now.saturating_sub(h.confirmed) < p.rearm;
            if same_person || on_track {
                h.track = self.track;
                h.last = now;
                if same_person {
                    h.confirmed = now;
                }
                self.run.clear();
                return Decision::Wait;
            }
        }
        match verdict {
            Ok(n) => {
                self.some_agreed = true;
                self.run.push(n.person, now, n, seen.embedding);
                let count = self.run.votes.len() as u32;
                if self.in_cooldown(now, n.person) {
                    // Let in just now, left and back already: wait for the cooldown's end
                    // (the window still applies to the votes).
                    return Decision::Wait;
                }
                if count >= p.frames {
                    self.run.mean_into(&mut self.mean);
                    let fused = fuse(&self.mean);
                    let facts = FaceFacts {
                        nearest: fused,
                        ..seen.facts()
                    };
                    let fused = match p.rule().judge(&facts) {
                        Ok(f) if f.person == n.person => f,
                        // Each frame agrees but their mean does not: start over.
                        other => {
                            self.run.clear();
                            let reason =
                                other.map_or_else(DenyReason::from, |_| DenyReason::Unsteady);
                            return self.count_refused(now, reason, fused);
                        }
                    };
                    let distance = self.run.votes.iter().map(|v| v.1).fold(0.0, f32::max);
                    let margin = self
                        .run
                        .votes
                        .iter()
                        .map(|v| v.2)
                        .fold(f32::INFINITY, f32::min);
                    self.run.clear();
                    let until = now + p.cooldown;
                    self.cooldowns.retain(|c| c.0 != n.person && now < c.1);
                    if self.cooldowns.is_full() {
                        self.cooldowns.pop_front();
                    }
                    // Cannot fail: a slot was just made free.
                    let _ = self.cooldowns.push_back((n.person, until));
                    self.held = Some(Held {
                        person: Some(n.person),
                        track: self.track,
                        last: now,
                        confirmed: now,
                    });
                    self.refused = 0;
                    self.some_agreed = false;
                    self.denied_at = None;
                    return Decision::Grant {
                        person: n.person,
                        distance,
                        margin,
                        frames: count,
                        fused,
                    };
                }
                self.count_refused(now, DenyReason::Unsteady, Some(n))
            }
            // Too poor to judge: not a vote, and the track (not the image) says it is the same
            // face, so the run goes on.
            Err(reason @ DenyReason::PoorQuality(_)) => {
                self.count_refused(now, reason, seen.nearest)
            }
            Err(reason) => {
                self.run.clear();
                let reason = if self.some_agreed
                    && !matches!(reason, DenyReason::TooSmall | DenyReason::SpoofSuspected)
                {
                    DenyReason::Unsteady
                } else {
                    reason
                };
                self.count_refused(now, reason, seen.nearest)
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
mod tests;
