//! The model manifest: which networks the pipeline runs and every fact it needs about them.
//!
//! `models/manifest.toml` describes each network (file, sha256, input layout and normalisation,
//! alignment template, metric, threshold, fingerprint). The default set is compiled into the
//! binaries; `ModelSet::from_manifest` loads another set from disk, checking every checksum.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::path::{Path, PathBuf};

/// The manifest text of the default models, as shipped in `models/`.
pub const BUILTIN_MANIFEST: &str = include_str!("../../../models/manifest.toml");

/// Where the package installs every model file of the built-in manifest: the built-in set
/// reads the ones not compiled in (e.g. SFace's f32 form) from here.
pub const PACKAGED_DIR: &str = "/usr/share/facegate/models";

/// Files compiled into the binary: the detector, the default embedder (SFace int8) and dlib's
/// int8 network (CC0), the alternative for sites that need a fully documented model.
const BUILTIN_FILES: &[(&str, &[u8])] = &[
    (
        "mtcnn_pnet.onnx",
        include_bytes!("../../../models/mtcnn_pnet.onnx"),
    ),
    (
        "mtcnn_rnet.onnx",
        include_bytes!("../../../models/mtcnn_rnet.onnx"),
    ),
    (
        "mtcnn_onet.onnx",
        include_bytes!("../../../models/mtcnn_onet.onnx"),
    ),
    (
        "blazeface_front_128.onnx",
        include_bytes!("../../../models/blazeface_front_128.onnx"),
    ),
    (
        "dlib_resnet_v1_int8.onnx",
        include_bytes!("../../../models/dlib_resnet_v1_int8.onnx"),
    ),
    (
        "sface_2021dec_int8.onnx",
        include_bytes!("../../../models/sface_2021dec_int8.onnx"),
    ),
    (
        "minifasnet_v2_2.7_f32.onnx",
        include_bytes!("../../../models/minifasnet_v2_2.7_f32.onnx"),
    ),
    (
        "minifasnet_v1se_4.0_f32.onnx",
        include_bytes!("../../../models/minifasnet_v1se_4.0_f32.onnx"),
    ),
];

/// Errors while reading a manifest or a model file.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The manifest file could not be read.
    #[error("cannot read model manifest {path}: {source}")]
    ReadManifest {
        /// Manifest path.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The manifest is not valid TOML or misses/misnames a key.
    #[error("invalid model manifest {origin}: {message}")]
    ParseManifest {
        /// Where the manifest came from.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// The manifest is well-formed but describes something unusable.
    #[error("invalid model manifest {origin}: {message}")]
    Invalid {
        /// Where the manifest came from.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// A model file could not be read.
    #[error("cannot read model file {path}: {source}")]
    ReadModel {
        /// Model path.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// A model file's checksum differs from the manifest's.
    #[error("model file {file} has sha256 {actual}, the manifest expects {expected}")]
    Checksum {
        /// File name.
        file: String,
        /// Expected digest.
        expected: String,
        /// Actual digest.
        actual: String,
    },
    /// The manifest names an embedder that it does not describe.
    #[error("no embedder named {0:?} in the model manifest")]
    UnknownEmbedder(String),
    /// A file named by the built-in manifest is not compiled into this binary.
    #[error(
        "model file {0} is neither built into this binary nor installed in /usr/share/facegate/models; pass a manifest path to load it from disk"
    )]
    NotBuiltin(String),
    /// Liveness is asked for, but the manifest lists no liveness network.
    #[error("the model manifest has no [liveness] networks")]
    NoLiveness,
    /// The manifest has no `[fast_detector]` section.
    #[error(
        "the model manifest describes no [fast_detector] (needed for detector = \"blazeface\")"
    )]
    NoFastDetector,
    /// tract refused to load or optimise a network.
    #[error("cannot load network {file}: {message}")]
    Network {
        /// File name.
        file: String,
        /// tract's message.
        message: String,
    },
}

/// The whole manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Manifest format version; this code reads version 1.
    pub format: u32,
    /// The embedder used when none is named.
    pub default_embedder: String,
    /// The face detector and landmark network.
    pub detector: DetectorManifest,
    /// A single-shot detector for camera frames (optional).
    #[serde(default)]
    pub fast_detector: Option<FastDetectorManifest>,
    /// The embedding networks, by name.
    pub embedders: std::collections::BTreeMap<String, EmbedderManifest>,
    /// The presentation-attack (liveness) networks, if any.
    #[serde(default)]
    pub liveness: Option<LivenessManifest>,
}

/// `[liveness]`: the networks whose mean "real face" probability is the liveness score.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LivenessManifest {
    /// Each network: 1x3x80x80 BGR 0..255 in, 3 class probabilities out (class 1 = real).
    pub nets: Vec<LivenessNetManifest>,
    /// Licence of the networks.
    pub license: String,
    /// Where they come from.
    pub source: String,
}

/// One liveness network.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LivenessNetManifest {
    /// File name, relative to the manifest's directory.
    pub file: String,
    /// Lower-case hex sha256 of the file.
    pub sha256: String,
    /// How many times the face box the crop it sees is (about the box's centre).
    pub scale: f32,
}

/// One model file and its checksum.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFile {
    /// File name, relative to the manifest's directory.
    pub file: String,
    /// Lower-case hex sha256 of the file.
    pub sha256: String,
}

/// The MTCNN cascade: three networks and their parameters.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorManifest {
    /// Detector family; only "mtcnn" is implemented.
    pub kind: String,
    /// Proposal network (fully convolutional, any input size).
    pub pnet: ModelFile,
    /// Refinement network, 24x24 input.
    pub rnet: ModelFile,
    /// Output network, 48x48 input, gives the 5 landmarks.
    pub onet: ModelFile,
    /// Pixel normalisation: (x - mean) * scale, RGB, NCHW.
    pub mean: f32,
    /// See `mean`.
    pub scale: f32,
    /// Score thresholds of the three stages.
    pub thresholds: [f32; 3],
    /// Image pyramid step.
    pub pyramid_factor: f32,
    /// Licence of the weights (SPDX).
    pub license: String,
    /// Where the weights came from.
    pub source: String,
}

/// A single-shot SSD-style face detector on a square input (BlazeFace): boxes and keypoints
/// decoded from fixed anchor grids.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FastDetectorManifest {
    /// Detector family; only "blazeface" is implemented.
    pub kind: String,
    /// File name, relative to the manifest's directory.
    pub file: String,
    /// Lower-case hex sha256 of the file.
    pub sha256: String,
    /// Side of the square input, NHWC RGB.
    pub input_size: u32,
    /// Pixel normalisation: (x - mean) * scale.
    pub mean: f32,
    /// See `mean`.
    pub scale: f32,
    /// Output heads in output order: [cells a side, anchors a cell].
    pub heads: Vec<[usize; 2]>,
    /// Face score threshold (probability).
    pub score_threshold: f32,
    /// Overlap from which detections are blended into one.
    pub iou_threshold: f32,
    /// Licence of the weights (SPDX).
    pub license: String,
    /// Where the weights came from.
    pub source: String,
}

/// Distance used to compare embeddings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Euclidean (L2) distance.
    Euclidean,
    /// 1 - cosine similarity.
    Cosine,
}

/// One embedding network.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbedderManifest {
    /// File name, relative to the manifest's directory.
    pub file: String,
    /// Lower-case hex sha256 of the file.
    pub sha256: String,
    /// Numeric form of the weights ("int8" or "f32"), for display.
    pub quantization: String,
    /// Side of the square aligned face chip, in pixels.
    pub input_size: u32,
    /// Tensor layout of the input: "NCHW" or "NHWC".
    pub layout: String,
    /// Per-channel (R, G, B) value subtracted from the 0..255 pixel.
    pub mean: [f32; 3],
    /// Per-channel factor applied after the mean subtraction.
    pub scale: [f32; 3],
    /// Length of the embedding.
    pub dim: usize,
    /// How embeddings are compared.
    pub metric: Metric,
    /// Whether embeddings are L2-normalised before comparison.
    pub normalize: bool,
    /// Default same-person threshold on the distance.
    pub threshold: f32,
    /// Default smallest gap between the nearest and the second-nearest person, in the same
    /// metric (calibrated with the threshold).
    pub min_margin: f32,
    /// Where the 5 landmarks (left eye, right eye, nose, left and right mouth corner, as seen in
    /// the image) go in the chip, in chip pixels.
    pub template: [[f32; 2]; 5],
    /// Identifies the embedding space: galleries made with another fingerprint are not comparable.
    pub fingerprint: String,
    /// Licence of the weights (SPDX).
    pub license: String,
    /// Where the weights came from.
    pub source: String,
    /// The threshold by gallery size (`[[embedders.NAME.operating_points]]`, growing sizes),
    /// from an open-set calibration; empty: `threshold` at every size. See
    /// `access::operating_point`.
    #[serde(default)]
    pub operating_points: Vec<OperatingPoint>,
    /// The threshold of the 1:1 check a card or PIN asks for (`gallery = 1`; `fpir` is then
    /// the false-match rate per photo, `fnir` the false non-match rate): one comparison with
    /// the person named, so it may be looser than any 1:N point. None: `threshold`.
    #[serde(default)]
    pub one_to_one: Option<OperatingPoint>,
}

/// One calibrated point: at a gallery of `gallery` people, this threshold keeps FPIR within the
/// calibration's target; `fpir` and `fnir` are what it expects there.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatingPoint {
    /// People enrolled.
    pub gallery: usize,
    /// Largest distance that matches (f64 so that a written file reads 0.465, not
    /// 0.4650000035762787).
    pub threshold: f64,
    /// Strangers accepted as anybody, expected (per probe photo, one frame).
    pub fpir: f64,
    /// Employees not accepted as themselves, expected (per probe photo, one frame), each enrolled
    /// from one photo.
    pub fnir: f64,
    /// The same with two photos per person (absent: not measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fnir_2: Option<f64>,
    /// The same with three photos per person (absent: not measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fnir_3: Option<f64>,
}

impl OperatingPoint {
    /// The expected FNIR with `photos` photos per person: 1, 2 or 3 (more: as 3, the most
    /// measured); `None` when not measured.
    pub fn fnir_with(&self, photos: usize) -> Option<f64> {
        match photos {
            0 => None,
            1 => Some(self.fnir),
            2 => self.fnir_2,
            _ => self.fnir_3,
        }
    }
}

impl Manifest {
    /// Parses a manifest; `origin` names it in error messages.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ModelError> {
        let manifest: Manifest = toml::from_str(text).map_err(|e| ModelError::ParseManifest {
            origin: origin.to_owned(),
            message: e.to_string(),
        })?;
        manifest.validate(origin)?;
        Ok(manifest)
    }

    fn validate(&self, origin: &str) -> Result<(), ModelError> {
        let invalid = |message: String| ModelError::Invalid {
            origin: origin.to_owned(),
            message,
        };
        if self.format != 1 {
            return Err(invalid(format!(
                "format {} is not supported (expected 1)",
                self.format
            )));
        }
        if self.detector.kind != "mtcnn" {
            return Err(invalid(format!(
                "detector.kind {:?} is not supported (expected \"mtcnn\")",
                self.detector.kind
            )));
        }
        if let Some(f) = &self.fast_detector {
            if f.kind != "blazeface" {
                return Err(invalid(format!(
                    "fast_detector.kind {:?} is not supported (expected \"blazeface\")",
                    f.kind
                )));
            }
            if f.heads.is_empty()
                || f.heads.iter().any(|h| h[0] == 0 || h[1] == 0)
                || !(8..=1024).contains(&f.input_size)
                || !(f.score_threshold > 0.0 && f.score_threshold < 1.0)
            {
                return Err(invalid(
                    "fast_detector: heads, input_size or score_threshold out of range".into(),
                ));
            }
        }
        if !self.embedders.contains_key(&self.default_embedder) {
            return Err(invalid(format!(
                "default_embedder {:?} is not described under [embedders]",
                self.default_embedder
            )));
        }
        for (name, e) in &self.embedders {
            if e.layout != "NCHW" && e.layout != "NHWC" {
                return Err(invalid(format!(
                    "embedders.{name}.layout {:?} must be \"NCHW\" or \"NHWC\"",
                    e.layout
                )));
            }
            if e.input_size < 16 || e.input_size > 1024 {
                return Err(invalid(format!(
                    "embedders.{name}.input_size {} is out of range 16..=1024",
                    e.input_size
                )));
            }
            if e.dim == 0 || e.dim > 4096 {
                return Err(invalid(format!(
                    "embedders.{name}.dim {} is out of range 1..=4096",
                    e.dim
                )));
            }
            if !(e.threshold.is_finite() && e.threshold > 0.0) {
                return Err(invalid(format!(
                    "embedders.{name}.threshold must be a positive number"
                )));
            }
            check_points(&e.operating_points)
                .or_else(|m| {
                    if e.operating_points.is_empty() {
                        Ok(())
                    } else {
                        Err(m)
                    }
                })
                .map_err(|m| invalid(format!("embedders.{name}.operating_points: {m}")))?;
            if let Some(p) = &e.one_to_one {
                check_one_to_one(p, e.threshold)
                    .map_err(|m| invalid(format!("embedders.{name}.one_to_one: {m}")))?;
            }
        }
        Ok(())
    }
}

/// A 1:1 point is for a gallery of one, with a threshold inside the model's calibrated range
/// (see [`crate::config::max_calibrated_threshold`]: above it nothing was measured).
pub fn check_one_to_one(p: &OperatingPoint, model_threshold: f32) -> Result<(), String> {
    if p.gallery != 1 {
        return Err(format!(
            "gallery must be 1 (one person, named by the card or PIN), not {}",
            p.gallery
        ));
    }
    check_points(std::slice::from_ref(p))?;
    let max = crate::config::max_calibrated_threshold(model_threshold);
    if p.threshold > f64::from(max) + 1e-6 {
        return Err(format!(
            "threshold {} is above the model's calibrated range (up to {max:.3})",
            p.threshold
        ));
    }
    Ok(())
}

/// Points must be for distinct, growing gallery sizes, with finite positive thresholds and
/// rates in [0, 1].
pub fn check_points(points: &[OperatingPoint]) -> Result<(), String> {
    if points.is_empty() {
        return Err("no point".into());
    }
    for w in points.windows(2) {
        if w[1].gallery <= w[0].gallery {
            return Err("points must be in growing gallery sizes, each size once".into());
        }
    }
    for p in points {
        if p.gallery == 0 {
            return Err("a point for a gallery of 0 people".into());
        }
        if !(p.threshold.is_finite() && p.threshold > 0.0 && p.threshold <= 4.0) {
            return Err(format!(
                "gallery {}: threshold {} is not a positive number",
                p.gallery, p.threshold
            ));
        }
        let extra = [("fnir_2", p.fnir_2), ("fnir_3", p.fnir_3)];
        let given = extra.iter().filter_map(|(w, v)| v.map(|v| (*w, v)));
        for (what, v) in [("fpir", p.fpir), ("fnir", p.fnir)]
            .into_iter()
            .chain(given)
        {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!(
                    "gallery {}: {what} {v} is not in [0, 1]",
                    p.gallery
                ));
            }
        }
        if p.fnir_3.is_some() && p.fnir_2.is_none() {
            return Err(format!("gallery {}: fnir_3 without fnir_2", p.gallery));
        }
    }
    Ok(())
}

/// Where model files are read from.
#[derive(Debug, Clone)]
enum Source {
    Builtin,
    Dir(PathBuf),
}

/// A manifest together with access to its files.
#[derive(Debug, Clone)]
pub struct ModelSet {
    /// The parsed manifest.
    pub manifest: Manifest,
    source: Source,
}

impl ModelSet {
    /// The default models compiled into the binary.
    pub fn builtin() -> Result<Self, ModelError> {
        Ok(Self {
            manifest: Manifest::parse(BUILTIN_MANIFEST, "(built-in)")?,
            source: Source::Builtin,
        })
    }

    /// Models described by a manifest on disk; files are found beside it.
    pub fn from_manifest(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::ReadManifest {
            path: path.to_owned(),
            source,
        })?;
        let manifest = Manifest::parse(&text, &path.display().to_string())?;
        let dir = path.parent().map(Path::to_owned).unwrap_or_default();
        Ok(Self {
            manifest,
            source: Source::Dir(dir),
        })
    }

    /// The embedder called `name`, or the default one.
    /// `auto`: the form of the default network this CPU runs fastest ([`crate::people::netform`]).
    pub fn embedder(&self, name: Option<&str>) -> Result<(&str, &EmbedderManifest), ModelError> {
        if name == Some(AUTO) {
            return choose(self, None);
        }
        let name = name.unwrap_or(&self.manifest.default_embedder);
        self.manifest
            .embedders
            .get_key_value(name)
            .map(|(k, v)| (k.as_str(), v))
            .ok_or_else(|| ModelError::UnknownEmbedder(name.to_owned()))
    }

    /// Whether [`ModelSet::read`] can find `file` (its checksum is checked when read).
    pub fn has_file(&self, file: &str) -> bool {
        match &self.source {
            Source::Builtin => {
                BUILTIN_FILES.iter().any(|(name, _)| *name == file)
                    || Path::new(PACKAGED_DIR).join(file).is_file()
            }
            Source::Dir(dir) => dir.join(file).is_file(),
        }
    }

    /// The bytes of a model file, checked against its sha256.
    pub fn read(&self, file: &str, sha256: &str) -> Result<Cow<'static, [u8]>, ModelError> {
        let bytes: Cow<'static, [u8]> = match &self.source {
            Source::Builtin => match BUILTIN_FILES.iter().find(|(name, _)| *name == file) {
                Some((_, bytes)) => Cow::Borrowed(*bytes),
                // The built-in manifest's other files, as the package installs them (the
                // checksum below makes them the very files the manifest describes).
                None => {
                    let path = Path::new(PACKAGED_DIR).join(file);
                    if !path.is_file() {
                        return Err(ModelError::NotBuiltin(file.to_owned()));
                    }
                    Cow::Owned(
                        std::fs::read(&path)
                            .map_err(|source| ModelError::ReadModel { path, source })?,
                    )
                }
            },
            Source::Dir(dir) => {
                let path = dir.join(file);
                Cow::Owned(
                    std::fs::read(&path)
                        .map_err(|source| ModelError::ReadModel { path, source })?,
                )
            }
        };
        let actual = sha256_hex(&bytes);
        if !actual.eq_ignore_ascii_case(sha256) {
            return Err(ModelError::Checksum {
                file: file.to_owned(),
                expected: sha256.to_owned(),
                actual,
            });
        }
        Ok(bytes)
    }
}

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
// `embedder = "auto"`: which form of a network this CPU runs fastest (`crate::people::netform` adds the
// gallery's say).

/// The embedder name that asks for this choice.
pub const AUTO: &str = "auto";

/// Whether tract's int8 kernels beat its f32 ones on this CPU, and why.
pub fn int8_is_faster() -> (bool, &'static str) {
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("dotprod") {
            (
                true,
                "aarch64 with dot-product (sdot): tract's fast int8 kernel",
            )
        } else {
            (
                false,
                "aarch64 without dot-product (e.g. Cortex-A72, Pi 4): f32 beats tract's 16-bit int8 kernel",
            )
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        (
            false,
            "x86_64: f32 measured faster than int8, even with VNNI",
        )
    }
    #[cfg(not(any(target_arch = "aarch64", target_arch = "x86_64")))]
    {
        (false, "no fast int8 kernel known for this CPU")
    }
}

/// The forms of `spec`'s network in `models` (same source, input and output), f32 and int8,
/// whose files this model set can read.
pub(crate) fn forms<'a>(
    models: &'a ModelSet,
    spec: &EmbedderManifest,
) -> Vec<(&'a str, &'a EmbedderManifest)> {
    models
        .manifest
        .embedders
        .iter()
        .filter(|(_, e)| {
            e.source == spec.source
                && e.input_size == spec.input_size
                && e.dim == spec.dim
                && models.has_file(&e.file)
        })
        .map(|(n, e)| (n.as_str(), e))
        .collect()
}

/// The embedder `auto` stands for. The gallery's own network when the manifest has it and its
/// file is here (so a gallery enrolled elsewhere keeps working), else the form of the
/// manifest's default network that this CPU runs fastest.
pub fn choose<'a>(
    models: &'a ModelSet,
    gallery_model: Option<&str>,
) -> Result<(&'a str, &'a EmbedderManifest), ModelError> {
    let by_gallery = gallery_model.and_then(|fp| {
        models
            .manifest
            .embedders
            .iter()
            .find(|(_, e)| e.fingerprint == fp && models.has_file(&e.file))
    });
    if let Some((name, spec)) = by_gallery {
        return Ok((name.as_str(), spec));
    }
    let (default, spec) = models.embedder(None)?;
    let want = if int8_is_faster().0 { "int8" } else { "f32" };
    Ok(forms(models, spec)
        .into_iter()
        .find(|(_, e)| e.quantization == want)
        .unwrap_or((default, spec)))
}
