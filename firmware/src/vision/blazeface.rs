//! BlazeFace (MediaPipe short range, 128x128): the door's fast face finder.
//!
//! The frame is letterboxed into the network's square input; every anchor above the score
//! threshold is decoded to a box and 6 keypoints, overlapping ones are blended by MediaPipe's
//! weighted NMS, and the result is mapped back to frame pixels. The aligner's 5 landmarks come
//! from MTCNN's O-Net run on the BlazeFace box (see `Detector::landmarks_in`): BlazeFace's own
//! keypoints are too rough for alignment (models/VERIFY-blazeface.md).

use super::detect::BBox;
use super::net::{self, ShapedNet};
use super::resample::{Rect, Resampler};
use crate::vision::models::{FastDetectorManifest, ModelError, ModelSet};
use image::RgbImage;

/// Output names: logits and regressors of the two heads, in the order of `heads`.
const OUTPUTS: [&str; 4] = ["scores_16", "scores_8", "boxes_16", "boxes_8"];
/// Regressor values per anchor: centre offset, size, 6 keypoints (x, y).
const REG: usize = 16;

/// One face as BlazeFace sees it, in frame pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct BlazeFaceBox {
    /// Face box (BlazeFace's boxes are near square: forehead to chin).
    pub bbox: BBox,
    /// Highest anchor score among the blended ones (sigmoid).
    pub score: f32,
    /// Right eye, left eye (of the person: image left, image right), nose tip, mouth centre,
    /// right ear tragion, left ear tragion.
    pub keypoints: [[f32; 2]; 6],
}

/// A decoded anchor in the network's unit square: centre x, y, width, height, keypoints.
#[derive(Debug, Clone, Copy)]
struct Raw {
    score: f32,
    v: [f32; 16],
}

impl Raw {
    fn iou(&self, o: &Raw) -> f32 {
        let (a, b) = (&self.v, &o.v);
        let iw = ((a[0] + a[2] / 2.0).min(b[0] + b[2] / 2.0)
            - (a[0] - a[2] / 2.0).max(b[0] - b[2] / 2.0))
        .max(0.0);
        let ih = ((a[1] + a[3] / 2.0).min(b[1] + b[3] / 2.0)
            - (a[1] - a[3] / 2.0).max(b[1] - b[3] / 2.0))
        .max(0.0);
        let inter = iw * ih;
        let union = a[2] * a[3] + b[2] * b[3] - inter;
        if union > 0.0 {
            inter / union
        } else {
            0.0
        }
    }
}

/// Decodes the raw outputs of all heads: `heads[i] = (cells a side, anchors a cell)`,
/// `scores[i]` its logits, `boxes[i]` its regressors (input pixels). Anchors scoring above
/// `threshold` are returned, best first.
fn decode(
    heads: &[[usize; 2]],
    scores: &[&[f32]],
    boxes: &[&[f32]],
    size: f32,
    threshold: f32,
) -> Vec<Raw> {
    // Compare logits, not probabilities: one exponential per kept anchor only.
    let logit = (threshold / (1.0 - threshold)).ln();
    let mut out = Vec::new();
    for ((&[cells, per], sc), bx) in heads.iter().zip(scores).zip(boxes) {
        for (i, &s) in sc.iter().enumerate().take(cells * cells * per) {
            if s <= logit {
                continue;
            }
            let cell = i / per;
            let ax = ((cell % cells) as f32 + 0.5) / cells as f32;
            let ay = ((cell / cells) as f32 + 0.5) / cells as f32;
            let Some(r) = bx.get(i * REG..(i + 1) * REG) else {
                break;
            };
            let mut v = [0f32; 16];
            v[0] = ax + r[0] / size;
            v[1] = ay + r[1] / size;
            v[2] = r[2] / size;
            v[3] = r[3] / size;
            for k in 0..6 {
                v[4 + 2 * k] = ax + r[4 + 2 * k] / size;
                v[5 + 2 * k] = ay + r[5 + 2 * k] / size;
            }
            out.push(Raw {
                score: 1.0 / (1.0 + (-s).exp()),
                v,
            });
        }
    }
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    out
}

/// MediaPipe's weighted NMS: the best remaining anchor takes every anchor overlapping it by at
/// least `iou`; the group's boxes and keypoints are averaged, weighted by score (steadier boxes
/// than keeping the best one alone). Input best first; output best first.
fn weighted_nms(mut raws: Vec<Raw>, iou: f32) -> Vec<Raw> {
    let mut out = Vec::new();
    while let Some(best) = raws.first().copied() {
        let mut acc = [0f32; 16];
        let mut total = 0.0;
        raws.retain(|r| {
            if best.iou(r) < iou {
                return true;
            }
            for (a, v) in acc.iter_mut().zip(&r.v) {
                *a += v * r.score;
            }
            total += r.score;
            false
        });
        for a in &mut acc {
            *a /= total;
        }
        out.push(Raw {
            score: best.score,
            v: acc,
        });
    }
    out
}

/// The BlazeFace network with its plan and buffers.
#[derive(Clone)]
pub struct BlazeFace {
    net: ShapedNet,
    out: Vec<usize>,
    spec: FastDetectorManifest,
    resampler: Resampler,
    hwc: Vec<f32>,
}

impl BlazeFace {
    /// Loads the network described by the manifest's `[fast_detector]` (checksum verified).
    pub fn new(models: &ModelSet) -> Result<Self, ModelError> {
        let spec = models
            .manifest
            .fast_detector
            .clone()
            .ok_or(ModelError::NoFastDetector)?;
        let model = net::load(models, &spec.file, &spec.sha256)?;
        let out = net::output_positions(&model, &OUTPUTS, &spec.file)?;
        let s = spec.input_size.to_string();
        let net = ShapedNet::fixed(model, &["1", &s, &s, "3"], &spec.file)?;
        Ok(Self {
            net,
            out,
            spec,
            resampler: Resampler::default(),
            hwc: Vec::new(),
        })
    }

    /// Every face found, best score first, in frame pixels.
    pub fn detect(&mut self, img: &RgbImage) -> Result<Vec<BlazeFaceBox>, ModelError> {
        let (w, h) = (i64::from(img.width()), i64::from(img.height()));
        if w == 0 || h == 0 {
            return Ok(Vec::new());
        }
        let n = self.spec.input_size as usize;
        // Letterbox: the square around the frame's centre, black outside the frame, resampled
        // in one pass (the resampler pads with black).
        let side = w.max(h);
        let sq = Rect {
            x: (w - side) / 2,
            y: (h - side) / 2,
            w: side,
            h: side,
        };
        self.resampler.resample(img, sq, n, n, &mut self.hwc);
        let (mean, scale) = (self.spec.mean, self.spec.scale);
        for v in &mut self.hwc {
            *v = (*v - mean) * scale;
        }
        let plan = self.net.plan(&[])?;
        let file = &self.spec.file;
        let outputs = net::run(&plan, &[1, n, n, 3], &self.hwc, file)?;
        let mut views = Vec::with_capacity(OUTPUTS.len());
        for &ix in &self.out {
            let v = net::view(&outputs, ix, file)?;
            views.push(
                v.as_slice()
                    .map(<[f32]>::to_vec)
                    .unwrap_or_else(|| v.iter().copied().collect()),
            );
        }
        let heads = &self.spec.heads;
        let k = heads.len();
        if views.len() < 2 * k {
            return Err(net::net_error(file, "fewer outputs than heads"));
        }
        let scores: Vec<&[f32]> = views[..k].iter().map(Vec::as_slice).collect();
        let boxes: Vec<&[f32]> = views[k..2 * k].iter().map(Vec::as_slice).collect();
        let raws = decode(heads, &scores, &boxes, n as f32, self.spec.score_threshold);
        let px = side as f32;
        let (ox, oy) = (sq.x as f32, sq.y as f32);
        Ok(weighted_nms(raws, self.spec.iou_threshold)
            .into_iter()
            .map(|r| {
                let v = r.v;
                let (cw, ch) = (v[2] * px, v[3] * px);
                let mut keypoints = [[0f32; 2]; 6];
                for (i, kp) in keypoints.iter_mut().enumerate() {
                    *kp = [v[4 + 2 * i] * px + ox, v[5 + 2 * i] * px + oy];
                }
                BlazeFaceBox {
                    bbox: BBox {
                        x: v[0] * px + ox - cw / 2.0,
                        y: v[1] * px + oy - ch / 2.0,
                        w: cw,
                        h: ch,
                    },
                    score: r.score,
                    keypoints,
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(score: f32, cx: f32, cy: f32, s: f32) -> Raw {
        let mut v = [0f32; 16];
        v[..4].copy_from_slice(&[cx, cy, s, s]);
        Raw { score, v }
    }

    #[test]
    fn decode_places_anchor_offsets_in_the_right_cell() {
        // One head of 2x2 cells, 1 anchor a cell; only cell (x 1, y 0) scores.
        let scores = [-5.0, 3.0, -5.0, -5.0];
        let mut boxes = [0f32; 4 * REG];
        boxes[REG..REG + 4].copy_from_slice(&[8.0, -4.0, 32.0, 32.0]);
        let got = decode(&[[2, 1]], &[&scores], &[&boxes], 64.0, 0.5);
        assert_eq!(got.len(), 1);
        let v = got[0].v;
        // anchor centre (0.75, 0.25) + offset / input size
        assert!((v[0] - (0.75 + 8.0 / 64.0)).abs() < 1e-6);
        assert!((v[1] - (0.25 - 4.0 / 64.0)).abs() < 1e-6);
        assert!((v[2] - 0.5).abs() < 1e-6);
        // a keypoint with zero offset sits on the anchor
        assert_eq!([v[4], v[5]], [0.75, 0.25]);
        assert!((got[0].score - 1.0 / (1.0 + (-3.0f32).exp())).abs() < 1e-6);
    }

    #[test]
    fn weighted_nms_blends_overlaps_by_score_and_keeps_disjoint_faces() {
        let got = weighted_nms(
            vec![
                raw(0.9, 0.50, 0.5, 0.2),
                raw(0.6, 0.53, 0.5, 0.2),
                raw(0.8, 0.10, 0.1, 0.1),
            ],
            0.3,
        );
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].score, 0.9);
        let want = (0.9 * 0.50 + 0.6 * 0.53) / 1.5;
        assert!((got[0].v[0] - want).abs() < 1e-6);
        assert!((got[1].v[0] - 0.10).abs() < 1e-6);
    }

    /// On real photos: BlazeFace finds the one face where MTCNN does, its eyes near MTCNN's,
    /// and O-Net on its box gives landmarks within a few hundredths of the eye distance of the
    /// whole cascade's (what alignment needs); a photo without a face gives none.
    #[test]
    fn finds_the_face_where_mtcnn_does_on_real_photos() {
        let models = crate::ModelSet::builtin().unwrap();
        let mut p = crate::Pipeline::new(&models, None, None).unwrap();
        let mut fast = BlazeFace::new(&models).unwrap();
        for name in ["obama.jpg", "obama2.jpg", "biden.jpg", "astronaut.png"] {
            let img = crate::decode_file(&facegate_e2e::fixture(name)).unwrap();
            let want = p.detect(&img).unwrap().remove(0);
            let found = fast.detect(&img).unwrap();
            assert_eq!(found.len(), 1, "{name}: {found:?}");
            let f = &found[0];
            let lm = want.landmarks;
            let iod = (lm[1][0] - lm[0][0]).hypot(lm[1][1] - lm[0][1]);
            let dist = |a: [f32; 2], b: [f32; 2]| (a[0] - b[0]).hypot(a[1] - b[1]) / iod;
            // every MTCNN landmark inside the BlazeFace box
            for l in lm {
                assert!(
                    l[0] > f.bbox.x && l[0] < f.bbox.x + f.bbox.w,
                    "{name}: {l:?} outside {:?}",
                    f.bbox
                );
                assert!(l[1] > f.bbox.y && l[1] < f.bbox.y + f.bbox.h, "{name}");
            }
            let eyes = dist(f.keypoints[0], lm[0]).max(dist(f.keypoints[1], lm[1]));
            assert!(eyes < 0.3, "{name}: BlazeFace eyes {eyes} off");
            let onet = p.detector().landmarks_in(&img, &f.bbox).unwrap().unwrap();
            let off = (0..5)
                .map(|i| dist(onet.landmarks[i], lm[i]))
                .fold(0.0, f32::max);
            println!("{name}: BlazeFace eyes {eyes:.3}, O-Net on its box {off:.3} (inter-ocular)");
            assert!(off < 0.1, "{name}: O-Net on the BlazeFace box {off} off");
        }
        let none = crate::decode_file(&facegate_e2e::fixture("coffee.png")).unwrap();
        assert!(fast.detect(&none).unwrap().is_empty());
    }
}
