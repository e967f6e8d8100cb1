//! Face embeddings: the aligned chip through the embedding network, and distances between them.

use super::net::{self, ShapedNet};
use super::resample::hwc_to_chw;
use crate::vision::models::{EmbedderManifest, Metric, ModelError, ModelSet};
use image::RgbImage;

/// A face embedding: identity as a point in the model's metric space.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding(pub Vec<f32>);

impl Embedding {
    /// Distance to `other` under `metric`; differing lengths are infinitely far apart.
    pub fn distance(&self, other: &Embedding, metric: Metric) -> f32 {
        if self.0.len() != other.0.len() {
            return f32::INFINITY;
        }
        match metric {
            Metric::Euclidean => self
                .0
                .iter()
                .zip(&other.0)
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f32>()
                .sqrt(),
            Metric::Cosine => {
                let dot: f32 = self.0.iter().zip(&other.0).map(|(a, b)| a * b).sum();
                let na = self.0.iter().map(|a| a * a).sum::<f32>().sqrt();
                let nb = other.0.iter().map(|b| b * b).sum::<f32>().sqrt();
                if na == 0.0 || nb == 0.0 {
                    1.0
                } else {
                    1.0 - dot / (na * nb)
                }
            }
        }
    }

    /// Scales to unit length (a zero vector stays zero).
    pub fn normalize(&mut self) {
        let n = self.0.iter().map(|a| a * a).sum::<f32>().sqrt();
        if n > 0.0 {
            self.0.iter_mut().for_each(|a| *a /= n);
        }
    }
}

/// The embedding network with its plan (built once) and input buffer.
#[derive(Clone)]
pub struct Embedder {
    spec: EmbedderManifest,
    net: ShapedNet,
    hwc: Vec<f32>,
    input: Vec<f32>,
}

impl Embedder {
    /// Loads the embedder described by `spec` from `models`.
    pub fn new(models: &ModelSet, spec: &EmbedderManifest) -> Result<Self, ModelError> {
        let model = net::load(models, &spec.file, &spec.sha256)?;
        let s = spec.input_size.to_string();
        let shape: [&str; 4] = if spec.layout == "NCHW" {
            ["1", "3", &s, &s]
        } else {
            ["1", &s, &s, "3"]
        };
        // Optimised now, not on the first face.
        let net = ShapedNet::fixed(model, &shape, &spec.file)?;
        Ok(Self {
            spec: spec.clone(),
            net,
            hwc: Vec::new(),
            input: Vec::new(),
        })
    }

    /// Embeds an aligned chip of `input_size` pixels.
    pub fn embed(&mut self, chip: &RgbImage) -> Result<Embedding, ModelError> {
        let size = self.spec.input_size;
        if chip.dimensions() != (size, size) {
            return Err(ModelError::Network {
                file: self.spec.file.clone(),
                message: format!(
                    "chip is {:?}, the network takes {size}x{size}",
                    chip.dimensions()
                ),
            });
        }
        let n = (size * size * 3) as usize;
        self.input.resize(n, 0.0);
        if self.spec.layout == "NCHW" {
            self.hwc.clear();
            self.hwc.extend(chip.as_raw().iter().map(|&v| f32::from(v)));
            hwc_to_chw(&self.hwc, self.spec.mean, self.spec.scale, &mut self.input);
        } else {
            for (i, (d, &v)) in self.input.iter_mut().zip(chip.as_raw()).enumerate() {
                *d = (f32::from(v) - self.spec.mean[i % 3]) * self.spec.scale[i % 3];
            }
        }
        let plan = self.net.plan(&[])?;
        let s = size as usize;
        let shape = if self.spec.layout == "NCHW" {
            [1, 3, s, s]
        } else {
            [1, s, s, 3]
        };
        let out = net::run(&plan, &shape, &self.input, &self.spec.file)?;
        let v = net::view(&out, 0, &self.spec.file)?;
        if v.len() != self.spec.dim {
            return Err(ModelError::Network {
                file: self.spec.file.clone(),
                message: format!(
                    "output has {} values, the manifest says dim = {}",
                    v.len(),
                    self.spec.dim
                ),
            });
        }
        let mut e = Embedding(v.iter().copied().collect());
        if self.spec.normalize {
            e.normalize();
        }
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        let a = Embedding(vec![3.0, 0.0]);
        let b = Embedding(vec![0.0, 4.0]);
        assert_eq!(a.distance(&b, Metric::Euclidean), 5.0);
        assert!((a.distance(&b, Metric::Cosine) - 1.0).abs() < 1e-6);
        assert_eq!(a.distance(&a, Metric::Cosine), 0.0);
        assert_eq!(
            a.distance(&Embedding(vec![1.0]), Metric::Euclidean),
            f32::INFINITY
        );
        let mut c = Embedding(vec![3.0, 4.0]);
        c.normalize();
        assert!((c.0[0] - 0.6).abs() < 1e-6);
    }
}
