//! The console's face work, with the library's code: checking enrolment images (door camera
//! snapshots, uploaded photos) as `facegate enroll` does, and embedding and grouping the door's
//! pictures of unknown faces for the review page. The networks are loaded at first use (most
//! visits never need them) and used by one request at a time.

use crate::access::enrolment::{enrolment_face_in, Checks};
use crate::config::Config;
use crate::people::crops::{FaceCrop, CROP_SIZE, CROP_TEMPLATE};
use crate::vision::align::Aligner;
use crate::{decode_bytes, DetectorParams, Embedding, ModelSet, Pipeline};
use base64::Engine;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The largest picture decoded (a full-resolution JPEG, or an uploaded photo).
pub const MAX_IMAGE_BYTES: usize = 8 << 20;

/// What one enrolment image gave.
#[derive(Debug, Clone)]
pub struct Checked {
    /// Where it came from ("door camera 2", a file name).
    pub label: String,
    /// The face found, or why none could be used.
    pub outcome: Result<GoodFace, String>,
}

/// A face fit for enrolment.
#[derive(Debug, Clone)]
pub struct GoodFace {
    /// Its embedding.
    pub embedding: Vec<f32>,
    /// Its crop (PNG, people/crops.rs), base64 for the door.
    pub crop_png_b64: String,
    /// What is not as good as it should be.
    pub warnings: Vec<String>,
}

/// One picture of an unknown face, embedded.
#[derive(Debug, Clone)]
pub struct Picture {
    /// The audit line it was kept with.
    pub seq: u64,
    /// Its embedding.
    pub embedding: Embedding,
}

/// Pictures embedded, and those that could not be, with why.
pub type Embedded = (Vec<Picture>, Vec<(u64, String)>);

/// The networks, loaded on first use.
pub struct Faces {
    models: Option<PathBuf>,
    embedder: Option<String>,
    gallery: PathBuf,
    threshold: Option<f32>,
    pipeline: Mutex<Option<Pipeline>>,
}

impl std::fmt::Debug for Faces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faces")
            .field("models", &self.models)
            .finish()
    }
}

impl Faces {
    /// The networks the door's `config` names (its models and embedder, its threshold).
    pub fn new(config: &Config) -> Self {
        Self {
            models: config.recognition.models.clone(),
            embedder: config.recognition.embedder.clone(),
            gallery: config.gallery.path.clone(),
            threshold: config.recognition.threshold,
            pipeline: Mutex::new(None),
        }
    }

    /// Runs `f` with the pipeline, loading it first if needed.
    fn with<T>(&self, f: impl FnOnce(&mut Pipeline) -> T) -> Result<T, String> {
        let mut slot = self.pipeline.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(
                self.load()
                    .map_err(|e| format!("loading the face models: {e}"))?,
            );
        }
        let pipeline = slot.as_mut().ok_or("no pipeline")?;
        Ok(f(pipeline))
    }

    fn load(&self) -> Result<Pipeline, Box<dyn std::error::Error>> {
        let models = match &self.models {
            Some(p) => ModelSet::from_manifest(p)?,
            None => ModelSet::builtin()?,
        };
        let embedder =
            crate::people::netform::resolve(&models, self.embedder.as_deref(), &self.gallery)?;
        // As the CLI's enrolment: faces down to 40 px are found, so that a small face is
        // refused as too small rather than reported missing.
        let params = DetectorParams {
            min_face: 40.0,
            ..DetectorParams::for_photos(&models.manifest.detector)
        };
        Ok(Pipeline::new(&models, embedder.as_deref(), Some(params))?)
    }

    /// Checks each image as `facegate enroll` checks a photo (lenient checks).
    pub fn check(&self, images: &[(String, Vec<u8>)]) -> Result<Vec<Checked>, String> {
        self.with(|pipeline| {
            images
                .iter()
                .map(|(label, bytes)| Checked {
                    label: label.clone(),
                    outcome: check_one(pipeline, label, bytes),
                })
                .collect()
        })
    }

    /// The embeddings of the door's pictures (aligned crops, PNG); a picture that cannot be
    /// read is left out with why.
    pub fn embed_pictures(&self, pictures: &[(u64, Vec<u8>)]) -> Result<Embedded, String> {
        self.with(|pipeline| {
            let mut ok = Vec::new();
            let mut failed = Vec::new();
            for (seq, png) in pictures {
                match embed_crop(pipeline, png) {
                    Ok(embedding) => ok.push(Picture {
                        seq: *seq,
                        embedding,
                    }),
                    Err(e) => failed.push((*seq, e)),
                }
            }
            (ok, failed)
        })
    }

    /// Groups `pictures` by who they look like (the door's threshold), largest group first.
    pub fn group(&self, pictures: &[Picture]) -> Result<Vec<Vec<u64>>, String> {
        let threshold = self.threshold;
        self.with(|pipeline| {
            let t = threshold.unwrap_or(pipeline.embedder_spec().threshold);
            let e: Vec<Embedding> = pictures.iter().map(|p| p.embedding.clone()).collect();
            crate::people::cluster::cluster_embeddings(&e, t, |a, b| pipeline.distance(a, b))
                .into_iter()
                .map(|g| g.into_iter().map(|i| pictures[i].seq).collect())
                .collect()
        })
    }
}

fn check_one(pipeline: &mut Pipeline, label: &str, bytes: &[u8]) -> Result<GoodFace, String> {
    if bytes.len() > MAX_IMAGE_BYTES {
        return Err(format!("larger than {} MiB", MAX_IMAGE_BYTES >> 20));
    }
    let img = decode_bytes(bytes).map_err(|e| format!("not a usable image: {e}"))?;
    let face = enrolment_face_in(pipeline, &img, Path::new(label), Checks::Lenient)
        .map_err(|e| e.to_string())?;
    let crop = face.crop.encode().map_err(|e| e.to_string())?;
    Ok(GoodFace {
        embedding: face.face.embedding.0,
        crop_png_b64: base64::engine::general_purpose::STANDARD.encode(crop.png()),
        warnings: face.warnings.iter().map(ToString::to_string).collect(),
    })
}

/// The embedding of a face crop (a [`CROP_SIZE`] square with the landmarks on
/// [`CROP_TEMPLATE`]): aligned to the network's own template from there, no detection.
pub fn embed_crop(pipeline: &mut Pipeline, png: &[u8]) -> Result<Embedding, String> {
    let image = decode_bytes(png).map_err(|e| format!("not a usable picture: {e}"))?;
    if image.width() != CROP_SIZE || image.height() != CROP_SIZE {
        return Err(format!(
            "a {}x{} picture, not a {CROP_SIZE} px face crop",
            image.width(),
            image.height()
        ));
    }
    let crop = FaceCrop {
        image,
        landmarks: CROP_TEMPLATE,
    };
    let (template, size) = {
        let spec = pipeline.embedder_spec();
        (spec.template, spec.input_size)
    };
    let chip = crop
        .chip(&mut Aligner::default(), &template, size)
        .ok_or("the crop could not be aligned")?;
    pipeline.embed_chip(&chip).map_err(|e| e.to_string())
}
