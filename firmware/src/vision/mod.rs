//! The face pipeline: detect, align, embed. One pipeline serves the daemon, the admin CLI and the
//! simulator alike.

pub mod align;
pub mod blazeface;
pub mod decode;
pub mod detect;
mod dwconv;
pub mod embed;
pub mod frame;
pub mod liveness;
pub mod models;
mod net;
mod prelu;
pub mod profile;
pub mod quality;
mod quantize;
pub mod resample;

use crate::vision::models::{EmbedderManifest, ModelError, ModelSet};
use align::Aligner;
use blazeface::BlazeFace;
use detect::{Detection, Detector, DetectorParams};
use embed::{Embedder, Embedding};
use image::RgbImage;

/// Errors of the face pipeline.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A network could not be loaded or run.
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// A detected face with its embedding.
#[derive(Debug, Clone)]
pub struct Face {
    /// Where the face is, and its landmarks.
    pub detection: Detection,
    /// Its embedding.
    pub embedding: Embedding,
}

/// Detector, aligner and embedder, loaded once and reused for every image. A clone shares the
/// networks (their weights and plans) and has buffers of its own: one per recognition worker.
#[derive(Clone)]
pub struct Pipeline {
    detector: Detector,
    /// The door's fast face finder, when chosen: faces are found by it, landmarked by O-Net.
    fast: Option<BlazeFace>,
    aligner: Aligner,
    embedder: Embedder,
    name: String,
    spec: EmbedderManifest,
    flip: bool,
}

impl Pipeline {
    /// Loads the detector and the embedder `embedder` (default: the manifest's) from `models`.
    pub fn new(
        models: &ModelSet,
        embedder: Option<&str>,
        params: Option<DetectorParams>,
    ) -> Result<Self, PipelineError> {
        let (name, spec) = models.embedder(embedder)?;
        let params =
            params.unwrap_or_else(|| DetectorParams::for_photos(&models.manifest.detector));
        Ok(Self {
            detector: Detector::new(models, params)?,
            fast: None,
            aligner: Aligner::default(),
            embedder: Embedder::new(models, spec)?,
            name: name.to_owned(),
            spec: spec.clone(),
            flip: false,
        })
    }

    /// Test-time augmentation: embed each chip and its mirror image and average the two (twice
    /// the embedding time). Embeddings made with and without it should not be mixed in one
    /// gallery.
    pub fn set_flip(&mut self, on: bool) {
        self.flip = on;
    }

    /// The embedder's name in the manifest.
    pub fn embedder_name(&self) -> &str {
        &self.name
    }

    /// The embedder's manifest entry (threshold, metric, fingerprint...).
    pub fn embedder_spec(&self) -> &EmbedderManifest {
        &self.spec
    }

    /// The detector, for its individual stages (benchmarks) and its settings.
    pub fn detector(&mut self) -> &mut Detector {
        &mut self.detector
    }

    /// Finds the largest face with BlazeFace (the manifest's `[fast_detector]`) and its
    /// landmarks with O-Net, instead of the whole MTCNN cascade ([`Pipeline::detect_largest`]);
    /// [`Pipeline::detect`] (photos, every face) keeps MTCNN.
    pub fn use_fast_detector(&mut self, models: &ModelSet) -> Result<(), PipelineError> {
        self.fast = Some(BlazeFace::new(models)?);
        Ok(())
    }

    /// The fast detector, if in use (benchmarks).
    pub fn fast_detector(&mut self) -> Option<&mut BlazeFace> {
        self.fast.as_mut()
    }

    /// Every face in the image with landmarks, largest first.
    pub fn detect(&mut self, img: &RgbImage) -> Result<Vec<Detection>, PipelineError> {
        Ok(self.detector.detect(img)?)
    }

    /// The largest face with its landmarks, if any (cheaper than [`Pipeline::detect`]).
    pub fn detect_largest(&mut self, img: &RgbImage) -> Result<Option<Detection>, PipelineError> {
        let Some(fast) = self.fast.as_mut() else {
            return Ok(self.detector.detect_largest(img)?);
        };
        let mut found = fast.detect(img)?;
        found.sort_by(|a, b| b.bbox.area().total_cmp(&a.bbox.area()));
        // Largest first; the first O-Net confirms is the answer (as with MTCNN).
        for f in found {
            if let Some(d) = self.detector.landmarks_in(img, &f.bbox)? {
                return Ok(Some(d));
            }
        }
        Ok(None)
    }

    /// The largest face, as [`Pipeline::detect_largest`], and how many faces of at least
    /// `min_face` pixels the image holds (anti-tailgating). With the fast detector each of its
    /// faces is confirmed by O-Net (about a millisecond a face), instead of the whole MTCNN
    /// cascade over the frame, which made the door's frame several times slower. Third: the
    /// boxes of the other faces found (for the live view; found anyway, so free).
    pub fn detect_counting(
        &mut self,
        img: &RgbImage,
        min_face: f32,
    ) -> Result<(Option<Detection>, usize, Vec<detect::BBox>), PipelineError> {
        let Some(fast) = self.fast.as_mut() else {
            let all = self.detector.detect(img)?;
            let large = all.iter().filter(|d| d.bbox.size() >= min_face).count();
            let others = all.iter().skip(1).map(|d| d.bbox).collect();
            return Ok((all.into_iter().next(), large, others));
        };
        let mut found = fast.detect(img)?;
        found.sort_by(|a, b| b.bbox.area().total_cmp(&a.bbox.area()));
        let mut faces: Vec<Detection> = Vec::new();
        for f in found {
            if let Some(d) = self.detector.landmarks_in(img, &f.bbox)? {
                // Two boxes O-Net refines onto one face are one person, not a tailgater.
                let (cx, cy) = (d.bbox.x + d.bbox.w / 2.0, d.bbox.y + d.bbox.h / 2.0);
                let inside = |o: &Detection| {
                    (o.bbox.x..=o.bbox.x + o.bbox.w).contains(&cx)
                        && (o.bbox.y..=o.bbox.y + o.bbox.h).contains(&cy)
                };
                if !faces.iter().any(inside) {
                    faces.push(d);
                }
            }
        }
        let large = faces.iter().filter(|d| d.bbox.size() >= min_face).count();
        let others = faces.iter().skip(1).map(|d| d.bbox).collect();
        Ok((faces.into_iter().next(), large, others))
    }

    /// The aligned chip of a detected face; `None` if its landmarks are degenerate.
    pub fn align(&mut self, img: &RgbImage, det: &Detection) -> Option<RgbImage> {
        self.aligner.chip(
            img,
            &det.landmarks,
            &self.spec.template,
            self.spec.input_size,
        )
    }

    /// The embedding of an aligned chip.
    pub fn embed_chip(&mut self, chip: &RgbImage) -> Result<Embedding, PipelineError> {
        let mut e = self.embedder.embed(chip)?;
        if self.flip {
            let mirror = self
                .embedder
                .embed(&image::imageops::flip_horizontal(chip))?;
            for (a, b) in e.0.iter_mut().zip(&mirror.0) {
                *a = (*a + b) / 2.0;
            }
            if self.spec.normalize {
                e.normalize();
            }
        }
        Ok(e)
    }

    /// Detects, aligns and embeds every face, largest first.
    pub fn faces(&mut self, img: &RgbImage) -> Result<Vec<Face>, PipelineError> {
        let detections = self.detect(img)?;
        let mut faces = Vec::with_capacity(detections.len());
        for detection in detections {
            match self.align(img, &detection) {
                Some(chip) => {
                    let embedding = self.embed_chip(&chip)?;
                    faces.push(Face {
                        detection,
                        embedding,
                    });
                }
                None => {
                    tracing::warn!(?detection.bbox, "skipping a face with degenerate landmarks")
                }
            }
        }
        Ok(faces)
    }

    /// Distance between two embeddings under the model's metric.
    pub fn distance(&self, a: &Embedding, b: &Embedding) -> f32 {
        a.distance(b, self.spec.metric)
    }
}
