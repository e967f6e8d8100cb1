//! The one acceptance rule: whether one face, seen once, is person P. The door (per frame, in
//! `decision`), `facegate identify`, `verify`, enrolment's duplicate check and `calibrate
//! --open-set` all call [`Rule::judge`], so the admin sees the verdict the door would reach.
//!
//! Over several frames the door adds its own conditions (agreeing frames in a row on one tracked
//! face, see `decision`); everything about a single face is here.

use serde::Serialize;

/// The nearest enrolled person to a face.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Nearest {
    /// Index of the person in the gallery in use.
    pub person: usize,
    /// Distance to that person's nearest embedding (in the embedder's metric).
    pub distance: f32,
    /// How much farther the second-nearest person is (infinite with one person enrolled).
    pub margin: f32,
}

/// Measured by the quality gates, which are below the rule: defined there.
pub use crate::vision::quality::QualityIssue;

/// Why a cue took a face for a presentation attack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cue {
    /// NIR mode is on but no NIR frame recent enough is at hand (camera unplugged or failing):
    /// the check fails closed.
    NirMissing,
    /// The NIR frame shows no face where the colour camera sees one (a phone or tablet screen
    /// is dark in near infrared).
    NirNoFace,
    /// A face-shaped detection in the NIR frame, but too dark or too flat to be a lit face.
    NirFlat,
    /// Strong straight edges frame the face: the border of a print or the bezel of a screen.
    Border,
    /// Over the frames of one track the face tilted, and its nose moved exactly as the plane of
    /// its eyes and mouth: a flat picture, not a head.
    PlanarMotion,
}

impl Cue {
    /// The cue's name, for the journal.
    pub fn as_str(self) -> &'static str {
        match self {
            Cue::NirMissing => "nir_missing",
            Cue::NirNoFace => "nir_no_face",
            Cue::NirFlat => "nir_flat",
            Cue::Border => "border",
            Cue::PlanarMotion => "planar_motion",
        }
    }
}

/// Why the rule refused a face.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The face is smaller than `min_face`.
    TooSmall,
    /// The face image is too poor to be recognised reliably.
    PoorQuality(QualityIssue),
    /// Nobody enrolled is within `threshold`.
    Unknown,
    /// Within `threshold` of someone, but a second person is within `min_margin` of that.
    Ambiguous,
    /// The liveness check says the face is likely a photo or a screen.
    SpoofSuspected,
}

impl Refusal {
    /// The rule's name, as the audit log and the CLI print it.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::TooSmall => "too_small",
            // As the door's audit log names it.
            Refusal::PoorQuality(QualityIssue::Blurry) => "poor_quality:blurry",
            Refusal::PoorQuality(QualityIssue::TooDark) => "poor_quality:too_dark",
            Refusal::PoorQuality(QualityIssue::TooBright) => "poor_quality:too_bright",
            Refusal::PoorQuality(QualityIssue::Turned) => "poor_quality:turned",
            Refusal::Unknown => "unknown",
            Refusal::Ambiguous => "ambiguous",
            Refusal::SpoofSuspected => "spoof_suspected",
        }
    }
}

/// What the rule looks at for one face.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaceFacts {
    /// Shorter side of the face box, in pixels of the image it was found in.
    pub size: f32,
    /// The face image's quality verdict (`Ok` when it was not checked).
    pub quality: Result<(), QualityIssue>,
    /// The nearest enrolled person (`None` with an empty gallery, or for a face too small to
    /// be embedded).
    pub nearest: Option<Nearest>,
    /// The liveness score, 0..1 (`None` when it was not measured, e.g. on the CLI).
    pub liveness: Option<f32>,
    /// The presentation cues' verdict (NIR view, border; `None` when they were not run).
    pub cues: Option<Result<(), Cue>>,
}

/// The operating point: the values that decide whether a face is somebody.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rule {
    /// Largest distance that can match.
    pub threshold: f32,
    /// Smallest gap between the nearest and the second-nearest person.
    pub min_margin: f32,
    /// Smallest face (pixels, shorter side of the box) that is recognised at all.
    pub min_face: f32,
    /// Smallest liveness score (`None`: no liveness check).
    pub min_liveness: Option<f32>,
    /// The presentation cues are on: a face must have passed them.
    pub cues: bool,
}

impl Rule {
    /// The verdict on one face: the person it is, or the first rule that refused it, checked in
    /// the order size, quality, distance, margin, liveness (score, then cues). NaN distances,
    /// margins and liveness scores never match; with liveness on, a face without a score is
    /// refused, and with the cues on, a face they did not clear.
    pub fn judge(&self, face: &FaceFacts) -> Result<Nearest, Refusal> {
        // Written so that NaN fails every comparison.
        if face
            .size
            .partial_cmp(&self.min_face)
            .is_none_or(|o| o.is_lt())
        {
            return Err(Refusal::TooSmall);
        }
        face.quality.map_err(Refusal::PoorQuality)?;
        let n = face.nearest.ok_or(Refusal::Unknown)?;
        if n.distance
            .partial_cmp(&self.threshold)
            .is_none_or(|o| o.is_gt())
        {
            return Err(Refusal::Unknown);
        }
        if n.margin
            .partial_cmp(&self.min_margin)
            .is_none_or(|o| o.is_lt())
        {
            return Err(Refusal::Ambiguous);
        }
        // Last: only a face that would be let in is suspected of being a presentation of that
        // person (a stranger stays `unknown`). With liveness on, a face without a score fails.
        if let Some(min) = self.min_liveness {
            if face
                .liveness
                .and_then(|score| score.partial_cmp(&min))
                .is_none_or(|o| o.is_lt())
            {
                return Err(Refusal::SpoofSuspected);
            }
        }
        // The cues, independent of the networks' level; on, a face they did not clear fails.
        if self.cues && face.cues != Some(Ok(())) {
            return Err(Refusal::SpoofSuspected);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: Rule = Rule {
        threshold: 0.6,
        min_margin: 0.05,
        min_face: 80.0,
        min_liveness: None,
        cues: false,
    };

    fn face(size: f32, distance: f32, margin: f32) -> FaceFacts {
        FaceFacts {
            size,
            quality: Ok(()),
            nearest: Some(Nearest {
                person: 3,
                distance,
                margin,
            }),
            liveness: None,
            cues: None,
        }
    }

    #[test]
    fn accepts_a_near_clear_large_face() {
        assert_eq!(RULE.judge(&face(100.0, 0.4, 0.2)).unwrap().person, 3);
        // Bounds are inclusive.
        assert!(RULE.judge(&face(80.0, 0.6, 0.05)).is_ok());
        // One person enrolled: the margin is infinite.
        assert!(RULE.judge(&face(80.0, 0.3, f32::INFINITY)).is_ok());
    }

    #[test]
    fn refuses_with_the_first_failing_rule() {
        assert_eq!(RULE.judge(&face(79.0, 0.9, 0.0)), Err(Refusal::TooSmall));
        let mut f = face(100.0, 0.9, 0.0);
        f.quality = Err(QualityIssue::Blurry);
        assert_eq!(
            RULE.judge(&f),
            Err(Refusal::PoorQuality(QualityIssue::Blurry))
        );
        assert_eq!(RULE.judge(&face(100.0, 0.61, 0.0)), Err(Refusal::Unknown));
        assert_eq!(RULE.judge(&face(100.0, 0.3, 0.04)), Err(Refusal::Ambiguous));
        let none = FaceFacts {
            nearest: None,
            ..face(100.0, 0.0, 0.0)
        };
        assert_eq!(RULE.judge(&none), Err(Refusal::Unknown));
    }

    #[test]
    fn a_face_below_the_liveness_level_is_refused_as_a_spoof() {
        let rule = Rule {
            min_liveness: Some(0.5),
            ..RULE
        };
        let live = |score| FaceFacts {
            liveness: Some(score),
            ..face(100.0, 0.3, 0.2)
        };
        assert!(rule.judge(&live(0.5)).is_ok());
        assert_eq!(rule.judge(&live(0.49)), Err(Refusal::SpoofSuspected));
        assert_eq!(rule.judge(&live(f32::NAN)), Err(Refusal::SpoofSuspected));
        assert_eq!(Refusal::SpoofSuspected.as_str(), "spoof_suspected");
        // Checked last: a stranger stays unknown whatever the score; a face that would be let
        // in without a score is refused.
        let mut stranger = live(0.1);
        stranger.nearest = None;
        assert_eq!(rule.judge(&stranger), Err(Refusal::Unknown));
        let unscored = FaceFacts {
            liveness: None,
            ..face(100.0, 0.3, 0.2)
        };
        assert_eq!(rule.judge(&unscored), Err(Refusal::SpoofSuspected));
        // Level off: the score is not looked at.
        assert!(RULE.judge(&live(0.0)).is_ok());
    }

    #[test]
    fn with_the_cues_on_a_face_they_did_not_clear_is_a_spoof_whatever_the_level() {
        let rule = Rule { cues: true, ..RULE };
        let with = |cues| FaceFacts {
            cues,
            ..face(100.0, 0.3, 0.2)
        };
        assert!(rule.judge(&with(Some(Ok(())))).is_ok());
        for refused in [None, Some(Err(Cue::NirNoFace)), Some(Err(Cue::NirMissing))] {
            assert_eq!(rule.judge(&with(refused)), Err(Refusal::SpoofSuspected));
        }
        // Checked after the match: a stranger stays unknown.
        let mut stranger = with(Some(Err(Cue::Border)));
        stranger.nearest = None;
        assert_eq!(rule.judge(&stranger), Err(Refusal::Unknown));
        // Off: not looked at.
        assert!(RULE.judge(&with(Some(Err(Cue::Border)))).is_ok());
    }

    #[test]
    fn nan_never_matches() {
        assert_eq!(
            RULE.judge(&face(f32::NAN, 0.1, 1.0)),
            Err(Refusal::TooSmall)
        );
        assert_eq!(
            RULE.judge(&face(100.0, f32::NAN, 1.0)),
            Err(Refusal::Unknown)
        );
        assert_eq!(
            RULE.judge(&face(100.0, 0.1, f32::NAN)),
            Err(Refusal::Ambiguous)
        );
    }
}
