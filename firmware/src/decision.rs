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

pub use crate::acceptance::Nearest;
use crate::acceptance::{FaceFacts, QualityIssue, Refusal, Rule};
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
    /// The presentation cues (`crate::cues`) are on: an agreeing frame must have cleared them.
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
    pub cues: Option<Result<(), crate::acceptance::Cue>>,
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
    fn facts(&self) -> FaceFacts {
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
            min_liveness: None,
            cues: false,
        }
    }

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    /// The test gallery: person k is enrolled at the unit vector along axis k.
    const GALLERY: [[f32; 4]; 4] = [
        [1.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, 0.0, 0.0],
        [0.0, 0.0, 1.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    /// What the camera gives for person k: 0.2 from their enrolment.
    const SEEN: [[f32; 4]; 4] = [
        [0.8, 0.0, 0.0, 0.0],
        [0.0, 0.8, 0.0, 0.0],
        [0.0, 0.0, 0.8, 0.0],
        [0.0, 0.0, 0.0, 0.8],
    ];

    /// The nearest person of the test gallery and the margin (Euclidean), as the index does.
    fn fuse(e: &[f32]) -> Option<Nearest> {
        if e.len() != 4 {
            return None;
        }
        let mut d: Vec<(usize, f32)> = GALLERY
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let sq: f32 = g.iter().zip(e).map(|(a, b)| (a - b) * (a - b)).sum();
                (i, sq.sqrt())
            })
            .collect();
        d.sort_by(|a, b| a.1.total_cmp(&b.1));
        Some(Nearest {
            person: d[0].0,
            distance: d[0].1,
            margin: d[1].1 - d[0].1,
        })
    }

    /// Where the test faces are, unless a test moves them.
    const BOX: BBox = BBox {
        x: 200.0,
        y: 100.0,
        w: 120.0,
        h: 120.0,
    };

    fn face(person: usize, distance: f32, margin: f32) -> Observation<'static> {
        face_at(BOX, person, distance, margin)
    }

    fn face_at(bbox: BBox, person: usize, distance: f32, margin: f32) -> Observation<'static> {
        Observation::Face(Seen {
            bbox,
            quality: Ok(()),
            nearest: Some(Nearest {
                person,
                distance,
                margin,
            }),
            embedding: &SEEN[person % 4],
            liveness: None,
            cues: None,
        })
    }

    /// A face whose per-frame match is computed from its embedding.
    fn face_e(embedding: &'static [f32]) -> Observation<'static> {
        Observation::Face(Seen {
            bbox: BOX,
            quality: Ok(()),
            nearest: fuse(embedding),
            embedding,
            liveness: None,
            cues: None,
        })
    }

    fn poor(issue: QualityIssue) -> Observation<'static> {
        Observation::Face(Seen {
            bbox: BOX,
            quality: Err(issue),
            nearest: None,
            embedding: &[],
            liveness: None,
            cues: None,
        })
    }

    fn moved(dx: f32) -> BBox {
        BBox {
            x: BOX.x + dx,
            ..BOX
        }
    }

    /// Feeds `obs` at 10 fps from `start` ms; returns the non-Wait decisions with their time.
    fn feed(d: &mut Decider, start: u64, obs: &[Observation<'static>]) -> Vec<(u64, Decision)> {
        obs.iter()
            .enumerate()
            .map(|(i, o)| (start + 100 * i as u64, *o))
            .map(|(t, o)| (t, d.observe(ms(t), o, &mut fuse)))
            .filter(|(_, d)| *d != Decision::Wait)
            .collect()
    }

    #[test]
    fn grants_on_the_third_agreeing_frame_and_not_before() {
        let mut d = Decider::new(params());
        assert_eq!(
            d.observe(ms(0), face(1, 0.4, 0.3), &mut fuse),
            Decision::Wait
        );
        assert_eq!(
            d.observe(ms(100), face(1, 0.5, 0.2), &mut fuse),
            Decision::Wait
        );
        assert_eq!(
            d.observe(ms(200), face(1, 0.45, 0.25), &mut fuse),
            Decision::Grant {
                person: 1,
                distance: 0.5,
                margin: 0.2,
                frames: 3,
                fused: fuse(&SEEN[1]).unwrap(),
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
            d.observe(ms(500), face(1, 0.4, 0.3), &mut fuse),
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
    fn a_frame_without_a_usable_face_breaks_the_run() {
        for gap in [Observation::NoFace, Observation::Lost] {
            let mut d = Decider::new(params());
            let out = feed(
                &mut d,
                0,
                &[
                    face(1, 0.4, 0.3),
                    face(1, 0.4, 0.3),
                    gap,
                    face(1, 0.4, 0.3),
                    face(1, 0.4, 0.3),
                ],
            );
            assert!(out.is_empty(), "{gap:?}: {out:?}");
            assert!(
                matches!(
                    d.observe(ms(500), face(1, 0.4, 0.3), &mut fuse),
                    Decision::Grant { frames: 3, .. }
                ),
                "{gap:?}"
            );
        }
    }

    #[test]
    fn two_faces_that_both_match_one_person_do_not_add_up() {
        // One face on the left, then another on the right (a second person who also matches
        // person 1, or a photo held up beside the first): each is its own track.
        let left = face_at(moved(-150.0), 1, 0.4, 0.3);
        let right = face_at(moved(150.0), 1, 0.4, 0.3);
        let mut d = Decider::new(params());
        let out = feed(&mut d, 0, &[left, left, right, right, left, left]);
        assert!(out.is_empty(), "{out:?}");
        // The same face moving a little between frames is one track.
        let mut d = Decider::new(params());
        let walk: Vec<_> = (0..3)
            .map(|i| face_at(moved(25.0 * i as f32), 1, 0.4, 0.3))
            .collect();
        assert!(matches!(
            feed(&mut d, 0, &walk)[..],
            [(200, Decision::Grant { frames: 3, .. })]
        ));
    }

    #[test]
    fn a_photo_of_an_enrolled_person_is_denied_as_a_spoof_and_never_granted() {
        let p = DecisionParams {
            min_liveness: Some(0.5),
            ..params()
        };
        let with = |score: f32| match face(1, 0.3, 0.3) {
            Observation::Face(s) => Observation::Face(Seen {
                liveness: Some(score),
                ..s
            }),
            o => o,
        };
        // A photo held up for 10 s: every frame matches person 1 but scores low.
        let mut d = Decider::new(p.clone());
        let out = feed(&mut d, 0, &[with(0.1); 100]);
        assert!(!out.is_empty());
        assert!(
            out.iter().all(|(_, d)| matches!(
                d,
                Decision::Deny {
                    reason: DenyReason::SpoofSuspected,
                    ..
                }
            )),
            "{out:?}"
        );
        // A live face is let in; a spoof frame in the middle of a run breaks it.
        let mut d = Decider::new(p.clone());
        assert!(matches!(
            feed(&mut d, 0, &[with(0.9); 3])[..],
            [(200, Decision::Grant { .. })]
        ));
        let mut d = Decider::new(p);
        let out = feed(&mut d, 0, &[with(0.9), with(0.9), with(0.2), with(0.9)]);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn the_mean_of_the_run_must_match_the_same_person() {
        // Each frame is (given as) person 1, but the embeddings lie half-way to person 2:
        // their mean is nobody, so no grant, and the face is denied in the end.
        const HALF: [f32; 4] = [0.0, 0.5, 0.5, 0.0];
        let f = face_at(BOX, 1, 0.5, 0.3);
        let Observation::Face(seen) = f else {
            unreachable!()
        };
        let f = Observation::Face(Seen {
            embedding: &HALF,
            ..seen
        });
        let mut d = Decider::new(params());
        let out = feed(&mut d, 0, &[f; 12]);
        assert!(!out.is_empty());
        assert!(
            out.iter().all(|(_, d)| matches!(
                d,
                Decision::Deny {
                    reason: DenyReason::Unknown,
                    ..
                }
            )),
            "{out:?}"
        );
    }

    #[test]
    fn the_grant_records_the_fused_distance() {
        // Frames scattered around person 1 (0.36 away each): the mean of three is 0.22 away.
        const UP: [f32; 4] = [0.0, 0.8, 0.3, 0.0];
        const DOWN: [f32; 4] = [0.0, 0.8, -0.3, 0.0];
        let mut d = Decider::new(params());
        let out = feed(
            &mut d,
            0,
            &[face_e(&UP), face_e(&DOWN), face_e(&UP), face_e(&DOWN)],
        );
        let [(
            200,
            Decision::Grant {
                person: 1,
                distance,
                fused,
                ..
            },
        )] = out[..]
        else {
            panic!("{out:?}")
        };
        assert!((distance - 0.3606).abs() < 1e-3, "{distance}");
        assert_eq!(fused.person, 1);
        assert!((fused.distance - 0.2236).abs() < 1e-3, "{fused:?}");
    }

    #[test]
    fn boxes_are_one_track_when_they_overlap_or_the_centre_moves_little() {
        assert!(same_track(&BOX, &BOX));
        assert!(same_track(&BOX, &moved(50.0)));
        // A face coming closer: the box grows around the same centre.
        let near = BBox {
            x: 170.0,
            y: 70.0,
            w: 180.0,
            h: 180.0,
        };
        assert!(same_track(&BOX, &near));
        assert!(!same_track(&BOX, &moved(130.0)));
        assert!(!same_track(&BOX, &moved(-300.0)));
    }

    #[test]
    fn a_poor_frame_neither_agrees_nor_breaks_the_run_and_is_denied_by_its_reason() {
        let mut d = Decider::new(params());
        let out = feed(
            &mut d,
            0,
            &[
                face(1, 0.4, 0.3),
                poor(QualityIssue::Blurry),
                face(1, 0.4, 0.3),
                poor(QualityIssue::Blurry),
            ],
        );
        assert!(out.is_empty(), "{out:?}");
        assert!(matches!(
            d.observe(ms(400), face(1, 0.4, 0.3), &mut fuse),
            Decision::Grant { frames: 3, .. }
        ));
        // A face that is always too dark is denied as such, never granted.
        let mut d = Decider::new(params());
        let out = feed(&mut d, 0, &[poor(QualityIssue::TooDark); 8]);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(matches!(
            out[0].1,
            Decision::Deny {
                reason: DenyReason::PoorQuality(QualityIssue::TooDark),
                frames: 5,
                ..
            }
        ));
        assert_eq!(
            DenyReason::PoorQuality(QualityIssue::TooDark).as_str(),
            "poor_quality:too_dark"
        );
    }

    #[test]
    fn agreeing_frames_spread_over_more_than_the_window_do_not_grant() {
        let mut d = Decider::new(params());
        assert_eq!(
            d.observe(ms(0), face(1, 0.4, 0.3), &mut fuse),
            Decision::Wait
        );
        assert_eq!(
            d.observe(ms(600), face(1, 0.4, 0.3), &mut fuse),
            Decision::Wait
        );
        // 1200 ms after the first: the first falls out of the window, the second stays.
        assert_eq!(
            d.observe(ms(1200), face(1, 0.4, 0.3), &mut fuse),
            Decision::Wait
        );
        assert!(matches!(
            d.observe(ms(1300), face(1, 0.4, 0.3), &mut fuse),
            Decision::Grant { frames: 3, .. }
        ));
    }

    #[test]
    fn small_faces_are_not_recognised() {
        let mut d = Decider::new(params());
        let small = face_at(
            BBox {
                w: 60.0,
                h: 60.0,
                ..BOX
            },
            1,
            0.2,
            0.5,
        );
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

    fn times(out: &[(u64, Decision)]) -> Vec<u64> {
        out.iter().map(|(t, _)| *t).collect()
    }

    #[test]
    fn the_cooldown_holds_back_the_same_person_not_the_next_one() {
        // Person 1 is let in at 200 ms and walks away at 1 s; person 2 steps up at 1.5 s and is
        // let in on their own third frame: a colleague right behind is not turned away.
        let mut d = Decider::new(params());
        let mut frames: Vec<_> = (0..10).map(|_| face(1, 0.4, 0.3)).collect();
        frames.extend([Observation::NoFace; 5]);
        frames.extend((0..10).map(|_| face(2, 0.4, 0.3)));
        // Person 1 back after 2.5 s away (gone longer than rearm), still within the cooldown:
        // let in when it ends (6.2 s), not before.
        frames.extend([Observation::NoFace; 25]);
        frames.extend((0..30).map(|_| face(1, 0.4, 0.3)));
        let out = feed(&mut d, 0, &frames);
        assert_eq!(times(&out), vec![200, 1700, 6200], "{out:?}");
        assert!(matches!(out[0].1, Decision::Grant { person: 1, .. }));
        assert!(matches!(out[1].1, Decision::Grant { person: 2, .. }));
        assert!(matches!(out[2].1, Decision::Grant { person: 1, .. }));
    }

    #[test]
    fn a_face_that_stays_in_view_for_60_s_is_let_in_once() {
        // However long the cooldown: a photo taped in front of the camera, or a frozen stream.
        let mut d = Decider::new(params());
        let frames: Vec<_> = (0..600).map(|_| face(1, 0.4, 0.3)).collect();
        let out = feed(&mut d, 0, &frames);
        assert_eq!(times(&out), vec![200], "{out:?}");
        // The same with the detector missing the face now and then (each miss starts a new
        // track, which is still the same person).
        let mut d = Decider::new(params());
        let frames: Vec<_> = (0..600)
            .map(|i| {
                if i % 7 == 6 {
                    Observation::NoFace
                } else {
                    face(1, 0.4, 0.3)
                }
            })
            .collect();
        let out = feed(&mut d, 0, &frames);
        assert_eq!(times(&out), vec![200], "{out:?}");
    }

    #[test]
    fn a_face_that_left_for_the_rearm_time_is_let_in_again() {
        let mut d = Decider::new(params());
        let person: Vec<_> = (0..10).map(|_| face(1, 0.4, 0.3)).collect();
        assert_eq!(times(&feed(&mut d, 0, &person)), vec![200]);
        // Gone 1 s (less than rearm): not gone; back for 10 s, no second grant.
        let back: Vec<_> = (0..100).map(|_| face(1, 0.4, 0.3)).collect();
        assert!(feed(&mut d, 2000, &back).is_empty());
        // Gone 3 s: back after the cooldown, let in again at the third frame.
        let out = feed(&mut d, 15000, &person);
        assert_eq!(times(&out), vec![15200], "{out:?}");
    }

    #[test]
    fn someone_else_stepping_into_the_same_place_is_not_held() {
        // Person 1 is let in; person 2 takes their place without a frame's gap (the boxes
        // overlap): person 2 is judged on their own and let in on their third frame.
        let mut d = Decider::new(params());
        let mut frames: Vec<_> = (0..10).map(|_| face(1, 0.4, 0.3)).collect();
        frames.extend((0..70).map(|_| face(2, 0.4, 0.3)));
        let out = feed(&mut d, 0, &frames);
        assert_eq!(times(&out), vec![200, 1200], "{out:?}");
        assert!(matches!(out[1].1, Decision::Grant { person: 2, .. }));
    }

    #[test]
    fn a_stranger_during_the_cooldown_is_denied_and_audited() {
        let mut d = Decider::new(params());
        let mut frames: Vec<_> = (0..5).map(|_| face(1, 0.4, 0.3)).collect();
        // While person 1 is still in view (held), a stranger takes the place of the face on
        // the other side of the frame.
        frames.extend((0..10).map(|_| face_at(moved(300.0), 0, 0.8, 0.3)));
        let out = feed(&mut d, 0, &frames);
        assert_eq!(times(&out), vec![200, 900], "{out:?}");
        assert!(matches!(
            out[1].1,
            Decision::Deny {
                reason: DenyReason::Unknown,
                frames: 5,
                ..
            }
        ));
    }

    #[test]
    fn after_a_gallery_change_the_face_let_in_is_still_held() {
        let stay: Vec<_> = (0..100).map(|_| face(1, 0.4, 0.3)).collect();
        let mut d = Decider::new(params());
        assert_eq!(times(&feed(&mut d, 0, &stay[..10])), vec![200]);
        d.forget(Some(1));
        assert_eq!(d.held_person(), Some(1));
        assert!(feed(&mut d, 1000, &stay).is_empty());
        // If the person is no longer in the gallery, their track holds them for 2 s (rearm)
        // after they were last recognised; then the face is judged afresh under the new
        // gallery, where index 1 is someone else, let in at their third frame.
        let mut d = Decider::new(params());
        assert_eq!(times(&feed(&mut d, 0, &stay[..10])), vec![200]);
        d.forget(None);
        assert_eq!(times(&feed(&mut d, 1000, &stay)), vec![3100]);
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
        let f = Observation::Face(Seen {
            bbox: BOX,
            quality: Ok(()),
            nearest: None,
            embedding: &[],
            liveness: None,
            cues: None,
        });
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
