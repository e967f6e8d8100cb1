//! Presentation-attack detection (liveness): Minivision's two MiniFASNet networks on wide crops
//! around the detected face, telling a live face from a printed photo or a screen.
//!
//! Each network sees the face box scaled about its centre (2.7x and 4.0x: the paper edge, the
//! phone bezel and the moiré around the face are in view), moved to stay inside the frame, resized
//! to 80x80 bilinearly, BGR 0..255 unscaled, as the networks were trained. The score is the mean
//! of their class-1 ("real face") probabilities; see `models/VERIFY-minifasnet.md`.

use super::detect::BBox;
use super::net::{self, ShapedNet};
use crate::vision::models::{LivenessNetManifest, ModelError, ModelSet};
use image::RgbImage;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Side of the networks' square input.
pub const INPUT: usize = 80;

/// `[liveness] level`: how sure the door must be that a face is live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// No check: the default, until a site has measured its own bona fide refusals (on the
    /// LFW door simulation `low` let in 52 of 100 employees, against 91 with the check off:
    /// docs/security.md, "Presentation attacks").
    #[default]
    Off,
    /// Refuses only faces the networks call an attack with confidence (score < 0.2).
    Low,
    /// Score >= 0.5, the networks' own decision (real is the likeliest class).
    Normal,
    /// Score >= 0.8: fewer attacks pass, more live faces in poor light are refused.
    High,
}

impl Level {
    /// Smallest liveness score a frame needs to agree; `None` when the check is off.
    pub fn min_score(self) -> Option<f32> {
        match self {
            Level::Off => None,
            Level::Low => Some(0.2),
            Level::Normal => Some(0.5),
            Level::High => Some(0.8),
        }
    }
}

/// The crop a network with box scale `scale` sees, as integer corners `(x0, y0, x1, y1)` in
/// the image (`x1`, `y1` exclusive): the box scaled about its centre (less when the image is
/// too small for it), shifted to lie inside the image.
pub fn crop_rect(b: &BBox, scale: f32, width: u32, height: u32) -> (i64, i64, i64, i64) {
    let (w, h) = (width as f32, height as f32);
    let (bw, bh) = (b.w.max(1.0), b.h.max(1.0));
    let s = scale.min((h - 1.0) / bh).min((w - 1.0) / bw);
    let (cx, cy) = (b.x + bw / 2.0, b.y + bh / 2.0);
    let (nw, nh) = (bw * s, bh * s);
    let (mut x0, mut y0) = (cx - nw / 2.0, cy - nh / 2.0);
    let (mut x1, mut y1) = (cx + nw / 2.0, cy + nh / 2.0);
    if x0 < 0.0 {
        x1 -= x0;
        x0 = 0.0;
    }
    if y0 < 0.0 {
        y1 -= y0;
        y0 = 0.0;
    }
    if x1 > w {
        x0 -= x1 - w;
        x1 = w;
    }
    if y1 > h {
        y0 -= y1 - h;
        y1 = h;
    }
    // Truncation, as the networks' training crops were cut.
    let (x0, y0) = (x0.max(0.0) as i64, y0.max(0.0) as i64);
    let (x1, y1) = ((x1 as i64).max(x0 + 1), (y1 as i64).max(y0 + 1));
    (x0, y0, x1, y1)
}

/// Bilinear resize of the crop to 80x80 (pixel centres aligned, edges clamped: what the
/// training pipeline's resize did), written planar BGR 0..255 into `out`.
fn crop_bgr(img: &RgbImage, r: (i64, i64, i64, i64), out: &mut [f32]) {
    let (x0, y0, x1, y1) = r;
    let (iw, ih) = (i64::from(img.width()), i64::from(img.height()));
    let (cw, ch) = ((x1 - x0) as f32, (y1 - y0) as f32);
    let (sx, sy) = (cw / INPUT as f32, ch / INPUT as f32);
    let src = img.as_raw();
    let px = |x: i64, y: i64, c: usize| -> f32 {
        let x = (x0 + x).clamp(x0, x1 - 1).clamp(0, iw - 1);
        let y = (y0 + y).clamp(y0, y1 - 1).clamp(0, ih - 1);
        f32::from(src[((y * iw + x) * 3) as usize + c])
    };
    let plane = INPUT * INPUT;
    for oy in 0..INPUT {
        let fy = ((oy as f32 + 0.5) * sy - 0.5).max(0.0);
        let (yi, wy) = (fy.floor() as i64, fy - fy.floor());
        for ox in 0..INPUT {
            let fx = ((ox as f32 + 0.5) * sx - 0.5).max(0.0);
            let (xi, wx) = (fx.floor() as i64, fx - fx.floor());
            for c in 0..3 {
                let v = (px(xi, yi, c) * (1.0 - wx) + px(xi + 1, yi, c) * wx) * (1.0 - wy)
                    + (px(xi, yi + 1, c) * (1.0 - wx) + px(xi + 1, yi + 1, c) * wx) * wy;
                // RGB in, BGR planes out.
                out[(2 - c) * plane + oy * INPUT + ox] = v;
            }
        }
    }
}

#[derive(Clone)]
struct Net {
    scale: f32,
    file: String,
    net: ShapedNet,
}

/// The liveness networks, loaded once.
#[derive(Clone)]
pub struct Liveness {
    nets: Vec<Net>,
    input: Vec<f32>,
    /// The manifest (`None`: built in) of networks not loaded yet ([`Liveness::deferred`]).
    deferred: Option<Option<PathBuf>>,
    /// Why the last deferred load failed: logged once, not on every face it refuses.
    load_error: Option<String>,
}

impl Liveness {
    /// Loads the networks the manifest's `[liveness]` section lists.
    pub fn new(models: &ModelSet) -> Result<Self, ModelError> {
        let specs: &[LivenessNetManifest] = models
            .manifest
            .liveness
            .as_ref()
            .map(|l| l.nets.as_slice())
            .unwrap_or_default();
        if specs.is_empty() {
            return Err(ModelError::NoLiveness);
        }
        let mut nets = Vec::new();
        for spec in specs {
            let model = net::load(models, &spec.file, &spec.sha256)?;
            let s = INPUT.to_string();
            // Optimised now, not on the first face.
            let net = ShapedNet::fixed(model, &["1", "3", &s, &s], &spec.file)?;
            nets.push(Net {
                scale: spec.scale,
                file: spec.file.clone(),
                net,
            });
        }
        Ok(Self {
            nets,
            input: vec![0.0; 3 * INPUT * INPUT],
            deferred: None,
            load_error: None,
        })
    }

    /// The networks of the manifest at `manifest` (default: the built-in one), loaded when
    /// first asked for a score: a door with the check off (the default) does not hold them, and
    /// a reload that turns it on needs no restart. A load that fails is retried on the next face.
    pub fn deferred(manifest: Option<&Path>) -> Self {
        Self {
            nets: Vec::new(),
            input: Vec::new(),
            deferred: Some(manifest.map(Path::to_owned)),
            load_error: None,
        }
    }

    /// Whether the networks are loaded (see [`Liveness::deferred`]).
    pub fn is_loaded(&self) -> bool {
        self.deferred.is_none()
    }

    /// Loads the liveness networks of the manifest at `manifest` (default: the built-in one).
    pub fn load(manifest: Option<&Path>) -> Result<Self, ModelError> {
        let models = match manifest {
            Some(p) => ModelSet::from_manifest(p)?,
            None => ModelSet::builtin()?,
        };
        Self::new(&models)
    }

    /// The liveness score of the face in box `b` of `img`: the mean "real face" probability of
    /// the networks, 0..1.
    pub fn score(&mut self, img: &RgbImage, b: &BBox) -> Result<f32, ModelError> {
        if let Some(manifest) = &self.deferred {
            match Self::load(manifest.as_deref()) {
                Ok(loaded) => {
                    *self = loaded;
                    tracing::info!("liveness networks loaded");
                }
                Err(e) => {
                    let why = e.to_string();
                    if self.load_error.as_deref() != Some(why.as_str()) {
                        tracing::error!(
                            "liveness networks cannot be loaded, every face is refused as a \
                             suspected spoof until they can: {why}"
                        );
                        self.load_error = Some(why);
                    }
                    return Err(e);
                }
            }
        }
        let mut sum = 0.0;
        for n in &mut self.nets {
            let r = crop_rect(b, n.scale, img.width(), img.height());
            crop_bgr(img, r, &mut self.input);
            let plan = n.net.plan(&[])?;
            let out = net::run(&plan, &[1, 3, INPUT, INPUT], &self.input, &n.file)?;
            let v = net::view(&out, 0, &n.file)?;
            let real = v
                .iter()
                .nth(1)
                .copied()
                .ok_or_else(|| ModelError::Network {
                    file: n.file.clone(),
                    message: format!("{} outputs, expected 3 class probabilities", v.len()),
                })?;
            sum += real;
        }
        Ok(sum / self.nets.len() as f32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bbox(x: f32, y: f32, w: f32, h: f32) -> BBox {
        BBox { x, y, w, h }
    }

    /// A deferred set loads on its first score and scores as the loaded set does; a manifest
    /// without liveness networks fails then, not before.
    #[test]
    fn deferred_networks_load_on_the_first_score_and_score_alike() {
        let img = RgbImage::from_fn(320, 240, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
        });
        let b = bbox(110.0, 70.0, 100.0, 100.0);
        let mut lazy = Liveness::deferred(None);
        assert!(!lazy.is_loaded());
        let mut eager = Liveness::load(None).unwrap();
        assert!(eager.is_loaded());
        let (a, e) = (
            lazy.score(&img, &b).unwrap(),
            eager.score(&img, &b).unwrap(),
        );
        assert!(lazy.is_loaded());
        assert!((0.0..=1.0).contains(&a), "{a}");
        assert_eq!(a, e);

        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("manifest.toml");
        let text = crate::vision::models::BUILTIN_MANIFEST;
        let cut = text
            .find("[liveness]")
            .expect("the built-in manifest has [liveness]");
        let end = text[cut + 1..]
            .find("\n[")
            .map_or(text.len(), |i| cut + 1 + i);
        let without = format!("{}{}", &text[..cut], &text[end..]);
        std::fs::write(&manifest, without).unwrap();
        let mut none = Liveness::deferred(Some(&manifest));
        assert!(matches!(none.score(&img, &b), Err(ModelError::NoLiveness)));
        assert!(!none.is_loaded());
    }

    #[test]
    fn the_crop_is_the_scaled_box_kept_inside_the_image() {
        // Centred, fits: 2x a 100x100 box at (250, 250) in 1000x1000.
        assert_eq!(
            crop_rect(&bbox(250.0, 250.0, 100.0, 100.0), 2.0, 1000, 1000),
            (200, 200, 400, 400)
        );
        // Near the top-left corner: shifted in, same size.
        assert_eq!(
            crop_rect(&bbox(10.0, 10.0, 100.0, 100.0), 2.0, 1000, 1000),
            (0, 0, 200, 200)
        );
        // Near the bottom-right corner.
        assert_eq!(
            crop_rect(&bbox(890.0, 890.0, 100.0, 100.0), 2.0, 1000, 1000),
            (800, 800, 1000, 1000)
        );
        // Too large for the image: the scale shrinks until the crop fits.
        let (x0, y0, x1, y1) = crop_rect(&bbox(100.0, 100.0, 200.0, 200.0), 4.0, 640, 480);
        assert!(
            x0 >= 0 && y0 >= 0 && x1 <= 640 && y1 <= 480,
            "{x0} {y0} {x1} {y1}"
        );
        assert!(y1 - y0 >= 470, "uses the image's height: {y0}..{y1}");
    }

    #[test]
    fn the_crop_is_bgr_planes_of_the_region() {
        // Left half red, right half blue; the crop covers exactly the right half.
        let img = RgbImage::from_fn(160, 80, |x, _| {
            if x < 80 {
                image::Rgb([255, 0, 0])
            } else {
                image::Rgb([0, 0, 255])
            }
        });
        let mut out = vec![0.0; 3 * INPUT * INPUT];
        crop_bgr(&img, (80, 0, 160, 80), &mut out);
        let plane = INPUT * INPUT;
        assert!(out[..plane].iter().all(|&v| v == 255.0), "B plane first");
        assert!(out[2 * plane..].iter().all(|&v| v == 0.0), "no red");
    }
}
