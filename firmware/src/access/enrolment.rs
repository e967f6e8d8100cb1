//! Turning one enrolment photo into a gallery entry: the photo must show one face that can be
//! told apart from any other in it, large enough and good enough (sharp, well exposed, frontal)
//! to recognise. Shared by the admin CLI and the simulator.
//!
//! A refused photo is an employee who cannot get in until the admin finds another, so by
//! default only what is really unusable is refused (no face, several faces none of which is
//! clearly the subject, a face far too small, a face the door itself would not judge); a merely
//! poor photo is enrolled with a [`EnrolWarning`] that says what to improve. [`Checks::Strict`]
//! refuses those too.

use crate::access::acceptance::QualityIssue;
use crate::people::crops::{CropError, EncodedCrop, FaceCrop};
use crate::people::gallery::Enrolment;
use crate::vision::align::Aligner;
use crate::vision::detect::BBox;
use crate::vision::quality::{measure, Measures, QualityParams};
use crate::{decode_file, DecodeError, Face, Pipeline, PipelineError, RgbImage};
use std::path::{Path, PathBuf};

/// Faces smaller than this (pixels, shorter box side) are enrolled only with a warning, and
/// refused under [`Checks::Strict`]: the embedding of a small face carries less identity.
pub const MIN_ENROL_FACE: f32 = 80.0;
/// Faces smaller than this are always refused: far too little detail for the network's chip
/// (112 to 150 px), which would be mostly upscaled blur.
pub const MIN_ENROL_FACE_HARD: f32 = 48.0;
/// A second face at least this fraction of the main face's area makes a photo ambiguous.
const SIMILAR_FACE_AREA: f32 = 0.5;

/// Why a photo cannot be enrolled.
#[derive(Debug, thiserror::Error)]
pub enum EnrolError {
    /// The photo could not be read or decoded.
    #[error("{}: {source}", path.display())]
    Decode {
        /// The photo.
        path: PathBuf,
        /// Why.
        source: DecodeError,
    },
    /// The photo could not be read (for its checksum).
    #[error("{}: {source}", path.display())]
    Io {
        /// The photo.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The face pipeline failed.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// No face in the photo.
    #[error("{}: no face found", path.display())]
    NoFace {
        /// The photo.
        path: PathBuf,
    },
    /// Several faces of similar size: which one is the person?
    #[error("{}: {count} faces of similar size (boxes [x, y, w, h]: {boxes}); use a photo of this person alone or crop it", path.display())]
    Ambiguous {
        /// The photo.
        path: PathBuf,
        /// How many faces.
        count: usize,
        /// Their boxes, for the message.
        boxes: String,
    },
    /// The face crop could not be made.
    #[error("{}: {source}", path.display())]
    Crop {
        /// The photo.
        path: PathBuf,
        /// Why.
        source: CropError,
    },
    /// The face is too small.
    #[error("{}: the face is {} pixels, too small for reliable recognition (at least {needed:.0} needed); use a closer or larger photo", path.display(), size.floor())]
    TooSmall {
        /// The photo.
        path: PathBuf,
        /// The face's size in pixels.
        size: f32,
        /// The smallest size accepted by the checks in force.
        needed: f32,
    },
    /// The face is blurred, badly exposed or turned.
    #[error("{}: {}", path.display(), what_to_fix(*issue, measures, limits))]
    PoorQuality {
        /// The photo.
        path: PathBuf,
        /// What is wrong.
        issue: QualityIssue,
        /// What was measured.
        measures: Measures,
        /// The gates it failed (the door's, or enrolment's under [`Checks::Strict`]).
        limits: QualityParams,
    },
}

/// The enrolment's quality thresholds: the door's defaults, made stricter (a poor enrolment
/// photo harms every later decision about that person; the door sees many frames, enrolment
/// one photo).
pub fn enrolment_quality() -> QualityParams {
    QualityParams::default().for_enrolment()
}

/// How strictly an enrolment photo is checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Checks {
    /// Refuse only what is unusable; enrol a poor photo with a warning.
    #[default]
    Lenient,
    /// Refuse every photo that would get a warning under `Lenient` too.
    Strict,
}

/// Why an enrolled photo is not as good as it should be (under [`Checks::Lenient`]; the same
/// photo is refused under [`Checks::Strict`]).
#[derive(Debug, Clone, PartialEq)]
pub enum EnrolWarning {
    /// The face is under [`MIN_ENROL_FACE`] pixels.
    Small {
        /// Its size in pixels.
        size: f32,
    },
    /// The face passes the door's quality gates but not enrolment's stricter ones.
    PoorQuality {
        /// What is wrong.
        issue: QualityIssue,
        /// What was measured.
        measures: Measures,
    },
    /// Other faces of similar size are in the photo; the largest, which is also the only one
    /// on the photo's vertical centre line, was enrolled.
    OtherFaces {
        /// The face enrolled.
        chosen: BBox,
        /// How many other faces of similar size.
        others: usize,
    },
}

impl std::fmt::Display for EnrolWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EnrolWarning::Small { size } => write!(
                f,
                "the face is {} pixels, under the {MIN_ENROL_FACE:.0} recommended: this person may be refused at the door more often; a closer or larger photo is better",
                size.floor()
            ),
            EnrolWarning::PoorQuality { issue, measures } => write!(
                f,
                "{}: this person may be refused at the door more often",
                what_to_fix(*issue, measures, &enrolment_quality()).replacen("; use", "; better use", 1)
            ),
            EnrolWarning::OtherFaces { chosen, others } => write!(
                f,
                "{others} other face(s) of similar size; enrolled the largest one, in the middle (box [{:.0}, {:.0}, {:.0}, {:.0}]): check that it is this person, or use a photo of them alone",
                chosen.x, chosen.y, chosen.w, chosen.h
            ),
        }
    }
}

fn what_to_fix(issue: QualityIssue, m: &Measures, q: &QualityParams) -> String {
    match issue {
        QualityIssue::Blurry => format!(
            "the face is blurred (sharpness {:.3}, at least {:.3} needed); use a sharp photo, in focus and without motion",
            m.sharpness, q.min_sharpness
        ),
        QualityIssue::TooDark => format!(
            "the face is too dark (mean grey {:.0} of 255, at least {:.0} needed; {:.0}% black); use a photo with the face well lit",
            m.brightness,
            q.min_brightness,
            100.0 * m.dark_clipped
        ),
        QualityIssue::TooBright => format!(
            "the face is over-exposed (mean grey {:.0} of 255, at most {:.0}; {:.0}% white); use a photo without glare or flash on the face",
            m.brightness,
            q.max_brightness,
            100.0 * m.bright_clipped
        ),
        QualityIssue::Turned => format!(
            "the head is turned or tilted (turn {:.2}, at most {:.2}; nod {:.2}, {:.2} to {:.2}; tilt {:.0} degrees, at most {:.0}); use a frontal photo, looking into the camera",
            m.yaw.abs(),
            q.max_yaw,
            m.pitch,
            q.min_pitch,
            q.max_pitch,
            m.roll.abs(),
            q.max_roll_degrees
        ),
    }
}

/// The face of an enrolment photo and its crop (kept so another network can embed it later).
#[derive(Debug, Clone)]
pub struct EnrolmentFace {
    /// The face, with its embedding by the pipeline's network.
    pub face: Face,
    /// Its crop.
    pub crop: FaceCrop,
    /// What is not as good as it should be (always empty under [`Checks::Strict`]).
    pub warnings: Vec<EnrolWarning>,
}

/// A gallery entry not yet saved, with the face crop it refers to: save both with
/// [`crate::people::gallery::Locked::save_with_crops`].
#[derive(Debug, Clone)]
pub struct NewEnrolment {
    /// The entry (its `crop` refers to `crop`).
    pub enrolment: Enrolment,
    /// The encoded crop.
    pub crop: EncodedCrop,
    /// What is not as good as it should be (see [`EnrolmentFace::warnings`]).
    pub warnings: Vec<EnrolWarning>,
}

/// The face of an enrolment photo with its crop under [`Checks::Lenient`], or why there is none.
pub fn enrolment_face(pipeline: &mut Pipeline, photo: &Path) -> Result<EnrolmentFace, EnrolError> {
    enrolment_face_with(pipeline, photo, Checks::Lenient)
}

/// The face of an enrolment photo with its crop and any warnings, or why there is none.
pub fn enrolment_face_with(
    pipeline: &mut Pipeline,
    photo: &Path,
    checks: Checks,
) -> Result<EnrolmentFace, EnrolError> {
    let img = decode_file(photo).map_err(|source| EnrolError::Decode {
        path: photo.to_owned(),
        source,
    })?;
    enrolment_face_in(pipeline, &img, photo, checks)
}

/// [`enrolment_face_with`] of an image already decoded (a door camera snapshot, an upload);
/// `photo` names it in errors.
pub fn enrolment_face_in(
    pipeline: &mut Pipeline,
    img: &RgbImage,
    photo: &Path,
    checks: Checks,
) -> Result<EnrolmentFace, EnrolError> {
    let strict = checks == Checks::Strict;
    let faces = pipeline.faces(img)?;
    let Some(main) = faces.first() else {
        return Err(EnrolError::NoFace {
            path: photo.to_owned(),
        });
    };
    let mut warnings = Vec::new();
    let similar: Vec<_> = faces
        .iter()
        .filter(|f| f.detection.bbox.area() >= SIMILAR_FACE_AREA * main.detection.bbox.area())
        .collect();
    if similar.len() > 1 {
        // A portrait's subject is framed in the middle (across; a face sits high in a portrait):
        // the largest face is taken only when it spans the photo's vertical centre line and no
        // other face of similar size does. Two people side by side are still refused.
        let centre = img.width() as f32 / 2.0;
        let at_centre = |b: &BBox| (b.x..=b.x + b.w).contains(&centre);
        let dominant = at_centre(&main.detection.bbox)
            && similar[1..].iter().all(|f| !at_centre(&f.detection.bbox));
        if strict || !dominant {
            let boxes: Vec<String> = similar
                .iter()
                .map(|f| {
                    let b = f.detection.bbox;
                    format!("[{:.0}, {:.0}, {:.0}, {:.0}]", b.x, b.y, b.w, b.h)
                })
                .collect();
            return Err(EnrolError::Ambiguous {
                path: photo.to_owned(),
                count: similar.len(),
                boxes: boxes.join(", "),
            });
        }
        warnings.push(EnrolWarning::OtherFaces {
            chosen: main.detection.bbox,
            others: similar.len() - 1,
        });
    }
    let size = main.detection.bbox.size();
    let needed = if strict {
        MIN_ENROL_FACE
    } else {
        MIN_ENROL_FACE_HARD
    };
    if size.is_nan() || size < needed {
        return Err(EnrolError::TooSmall {
            path: photo.to_owned(),
            size,
            needed,
        });
    }
    if size < MIN_ENROL_FACE {
        warnings.push(EnrolWarning::Small { size });
    }
    // The chip was made once for the embedding already; making it again is cheap next to that.
    if let Some(chip) = pipeline.align(img, &main.detection) {
        let measures = measure(
            &chip,
            &pipeline.embedder_spec().template,
            &main.detection.landmarks,
        );
        // Leniently, only a face the door itself would not judge is refused: its embedding is
        // as unreliable as a frame the door ignores, and it would be compared with every face.
        let gate = if strict {
            enrolment_quality()
        } else {
            QualityParams::default()
        };
        if let Err(issue) = gate.judge(&measures) {
            return Err(EnrolError::PoorQuality {
                path: photo.to_owned(),
                issue,
                measures,
                limits: gate,
            });
        }
        if let Err(issue) = enrolment_quality().judge(&measures) {
            warnings.push(EnrolWarning::PoorQuality { issue, measures });
        }
    }
    // The pipeline aligned this face already, so its landmarks are not degenerate.
    let crop = FaceCrop::cut(&mut Aligner::default(), img, &main.detection.landmarks).ok_or_else(
        || EnrolError::NoFace {
            path: photo.to_owned(),
        },
    )?;
    Ok(EnrolmentFace {
        face: main.clone(),
        crop,
        warnings,
    })
}

/// The gallery entry for `face`, found in `photo`: now, the file name and its sha256, the
/// embedding and the crop.
pub fn enrolment(photo: &Path, face: EnrolmentFace) -> Result<NewEnrolment, EnrolError> {
    let bytes = std::fs::read(photo).map_err(|source| EnrolError::Io {
        path: photo.to_owned(),
        source,
    })?;
    let crop = face.crop.encode().map_err(|source| EnrolError::Crop {
        path: photo.to_owned(),
        source,
    })?;
    Ok(NewEnrolment {
        enrolment: Enrolment {
            enrolled_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now())
                .to_string(),
            source: photo
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            sha256: crate::vision::models::sha256_hex(&bytes),
            embedding: face.face.embedding.0,
            crop: Some(crop.reference.clone()),
        },
        crop,
        warnings: face.warnings,
    })
}

/// Checks `photo` ([`Checks::Lenient`]) and makes its gallery entry.
pub fn enrol_photo(pipeline: &mut Pipeline, photo: &Path) -> Result<NewEnrolment, EnrolError> {
    enrol_photo_with(pipeline, photo, Checks::Lenient)
}

/// Checks `photo` with `checks` and makes its gallery entry.
pub fn enrol_photo_with(
    pipeline: &mut Pipeline,
    photo: &Path,
    checks: Checks,
) -> Result<NewEnrolment, EnrolError> {
    let face = enrolment_face_with(pipeline, photo, checks)?;
    enrolment(photo, face)
}

/// An enrolled person a new face already matches.
#[derive(Debug, Clone, PartialEq)]
pub struct Duplicate {
    /// Their id.
    pub id: String,
    /// Their display name.
    pub name: String,
    /// The face's distance to them.
    pub distance: f32,
}

/// The one duplicate check of every enrolment (`facegate enroll`, `facegate import`, the door's
/// `people add`): the enrolled person nearest `embedding` in `index` (made from `gallery`) when
/// nearer than `threshold` (the door's: the door would let them in with this face) and not
/// `target`, the person the face is being enrolled for.
pub fn duplicate(
    gallery: &crate::people::gallery::Gallery,
    index: &crate::people::gallery::Index,
    embedding: &crate::Embedding,
    target: &str,
    threshold: f32,
) -> Option<Duplicate> {
    let m = index.best(embedding)?;
    let other = gallery.people.get(m.person)?;
    (m.distance <= threshold && other.id != target).then(|| Duplicate {
        id: other.id.clone(),
        name: other.name.clone(),
        distance: m.distance,
    })
}
