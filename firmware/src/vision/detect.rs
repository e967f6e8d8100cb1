//! Face detection and 5-point landmarks with the MTCNN cascade (P-Net, R-Net, O-Net).
//!
//! Follows the reference cascade (Zhang et al. 2016, as in facenet-pytorch): an image pyramid
//! through P-Net, candidates refined by R-Net, then O-Net for the final box and landmarks.
//! Internally boxes use the reference's 1-based inclusive pixel convention; everything returned
//! is in 0-based pixel coordinates of the original image. Crops past the image edge are padded
//! with black (as the original MTCNN does), so partial faces at the edge keep their proportions.

use super::net::{self, Plan, ShapedNet};
use super::resample::{hwc_to_chw, Rect, Resampler};
use crate::vision::models::{DetectorManifest, ModelError, ModelSet};
use image::RgbImage;

/// A face box in 0-based pixel coordinates: `x`, `y` is the top-left corner.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BBox {
    /// Left edge.
    pub x: f32,
    /// Top edge.
    pub y: f32,
    /// Width.
    pub w: f32,
    /// Height.
    pub h: f32,
}

impl BBox {
    /// Area in square pixels.
    pub fn area(&self) -> f32 {
        self.w.max(0.0) * self.h.max(0.0)
    }
    /// Side of the box as a face size: the smaller of width and height.
    pub fn size(&self) -> f32 {
        self.w.min(self.h)
    }
}

/// One detected face.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// Face box in the original image.
    pub bbox: BBox,
    /// O-Net's face probability.
    pub score: f32,
    /// Left eye, right eye, nose, left and right mouth corner (as seen in the image).
    pub landmarks: [[f32; 2]; 5],
}

/// Detection settings that are not properties of the network.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectorParams {
    /// Smallest face looked for, in pixels of the original image.
    pub min_face: f32,
    /// Images with a longer side than this are shrunk for the proposal stage (speed).
    pub max_side: u32,
    /// Score thresholds of the three stages.
    pub thresholds: [f32; 3],
}

impl DetectorParams {
    /// Defaults for photos: faces from 80 pixels (what recognition needs, and the detector's
    /// cost falls with the square of this), the proposal stage on at most 640 pixels a side,
    /// the manifest's thresholds.
    pub fn for_photos(manifest: &DetectorManifest) -> Self {
        Self {
            min_face: 80.0,
            max_side: 640,
            thresholds: manifest.thresholds,
        }
    }
}

/// The whole of `img` as a rectangle.
fn whole(img: &RgbImage) -> Rect {
    Rect {
        x: 0,
        y: 0,
        w: img.width().into(),
        h: img.height().into(),
    }
}

/// A candidate box in the reference's convention (1-based, inclusive), with its regression.
#[derive(Debug, Clone, Copy)]
pub struct Candidate {
    x1: f32,
    y1: f32,
    x2: f32,
    y2: f32,
    score: f32,
    reg: [f32; 4],
}

impl Candidate {
    fn area(&self) -> f32 {
        (self.x2 - self.x1 + 1.0).max(0.0) * (self.y2 - self.y1 + 1.0).max(0.0)
    }

    /// Applies the network's box regression (offsets relative to the box size).
    fn regress(&mut self, plus_one: bool) {
        let extra = if plus_one { 1.0 } else { 0.0 };
        let w = self.x2 - self.x1 + extra;
        let h = self.y2 - self.y1 + extra;
        self.x1 += self.reg[0] * w;
        self.y1 += self.reg[1] * h;
        self.x2 += self.reg[2] * w;
        self.y2 += self.reg[3] * h;
    }

    /// Makes the box square around its centre, on its longer side.
    fn square(&mut self) {
        let w = self.x2 - self.x1;
        let h = self.y2 - self.y1;
        let l = w.max(h);
        self.x1 += w * 0.5 - l * 0.5;
        self.y1 += h * 0.5 - l * 0.5;
        self.x2 = self.x1 + l;
        self.y2 = self.y1 + l;
    }

    /// The integer pixel rectangle the next network looks at (0-based).
    fn crop(&self) -> Option<Rect> {
        let (x1, y1, x2, y2) = (
            self.x1.trunc() as i64,
            self.y1.trunc() as i64,
            self.x2.trunc() as i64,
            self.y2.trunc() as i64,
        );
        let (w, h) = (x2 - x1 + 1, y2 - y1 + 1);
        (w > 0 && h > 0).then_some(Rect {
            x: x1 - 1,
            y: y1 - 1,
            w,
            h,
        })
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Overlap {
    Union,
    Min,
}

/// Greedy non-maximum suppression: indices of the boxes kept, best score first.
fn nms_keep(c: &[Candidate], threshold: f32, mode: Overlap) -> Vec<usize> {
    let mut order: Vec<usize> = (0..c.len()).collect();
    order.sort_by(|&a, &b| c[b].score.total_cmp(&c[a].score));
    let mut keep: Vec<usize> = Vec::with_capacity(c.len());
    'next: for i in order {
        let cand = &c[i];
        for &j in &keep {
            let k = &c[j];
            let iw = (cand.x2.min(k.x2) - cand.x1.max(k.x1) + 1.0).max(0.0);
            let ih = (cand.y2.min(k.y2) - cand.y1.max(k.y1) + 1.0).max(0.0);
            let inter = iw * ih;
            let denom = match mode {
                Overlap::Union => cand.area() + k.area() - inter,
                Overlap::Min => cand.area().min(k.area()),
            };
            if denom > 0.0 && inter / denom > threshold {
                continue 'next;
            }
        }
        keep.push(i);
    }
    keep
}

fn nms(c: Vec<Candidate>, threshold: f32, mode: Overlap) -> Vec<Candidate> {
    nms_keep(&c, threshold, mode)
        .into_iter()
        .map(|i| c[i])
        .collect()
}

const PNET_OUT: [&str; 2] = ["prob", "reg"];
const RNET_OUT: [&str; 2] = ["prob", "reg"];
const ONET_OUT: [&str; 3] = ["prob", "reg", "landmarks"];
/// Candidates go through R-Net and O-Net one at a time, on plans made for a batch of one:
/// in tract 0.23 a batch dimension above one (or left symbolic) keeps the per-channel PReLU
/// off its fast path, which costs more than batching saves.
const RNET_BATCH: usize = 1;
const ONET_BATCH: usize = 1;

/// The MTCNN detector with its plans and scratch buffers.
#[derive(Clone)]
pub struct Detector {
    params: DetectorParams,
    mean: f32,
    scale: f32,
    factor: f32,
    pnet: ShapedNet,
    rnet: ShapedNet,
    onet: ShapedNet,
    pnet_out: Vec<usize>,
    /// P-Net's "prob" output carries logits (softmax done here, see `net::bypass_softmax`).
    pnet_logits: bool,
    rnet_out: Vec<usize>,
    onet_out: Vec<usize>,
    resampler: Resampler,
    /// The shrunk copy of a big image (kept to reuse its allocation).
    work: RgbImage,
    hwc: Vec<f32>,
    /// Network input: a pyramid level for P-Net, then the crops for R-Net and O-Net.
    chw: Vec<f32>,
}

impl Detector {
    /// Loads the three networks of `models` (checksums verified).
    pub fn new(models: &ModelSet, params: DetectorParams) -> Result<Self, ModelError> {
        let d = &models.manifest.detector;
        let load = |f: &crate::vision::models::ModelFile| net::load(models, &f.file, &f.sha256);
        let (mut p, r, o) = (load(&d.pnet)?, load(&d.rnet)?, load(&d.onet)?);
        // Positions first: the bypass keeps the output's position but not its name.
        let pnet_out = net::output_positions(&p, &PNET_OUT, &d.pnet.file)?;
        let pnet_logits = net::bypass_softmax(&mut p, PNET_OUT[0], &d.pnet.file)?;
        tracing::debug!(pnet_logits, "P-Net softmax bypass");
        let rnet_out = net::output_positions(&r, &RNET_OUT, &d.rnet.file)?;
        let onet_out = net::output_positions(&o, &ONET_OUT, &d.onet.file)?;
        Ok(Self {
            params,
            mean: d.mean,
            scale: d.scale,
            factor: d.pyramid_factor,
            // A camera uses one pyramid; photos of assorted sizes reuse recent ones.
            pnet: ShapedNet::new(p, &["1", "3", "H", "W"], 64, &d.pnet.file)?,
            rnet: ShapedNet::fixed(r, &["1", "3", "24", "24"], &d.rnet.file)?,
            onet: ShapedNet::fixed(o, &["1", "3", "48", "48"], &d.onet.file)?,
            pnet_out,
            pnet_logits,
            rnet_out,
            onet_out,
            resampler: Resampler::default(),
            work: RgbImage::new(0, 0),
            hwc: Vec::new(),
            chw: Vec::new(),
        })
    }

    /// The current settings.
    pub fn params(&self) -> &DetectorParams {
        &self.params
    }

    /// Changes the settings (plans are unaffected).
    pub fn set_params(&mut self, params: DetectorParams) {
        self.params = params;
    }

    /// Finds every face with its landmarks, largest first.
    pub fn detect(&mut self, img: &RgbImage) -> Result<Vec<Detection>, ModelError> {
        let candidates = self.propose(img)?;
        self.landmarks(img, &candidates)
    }

    /// Stages 1 and 2 (P-Net over the pyramid, R-Net): square candidate boxes, in the original
    /// image's coordinates.
    pub fn propose(&mut self, img: &RgbImage) -> Result<Vec<Candidate>, ModelError> {
        let (w, h) = img.dimensions();
        if w < 12 || h < 12 {
            return Ok(Vec::new());
        }
        // Big photos are shrunk once; both proposal stages work on the shrunk copy, where a
        // crop costs a fraction of one from the full-resolution photo.
        let long = w.max(h);
        let f = if long > self.params.max_side {
            let f = self.params.max_side as f32 / long as f32;
            let (sw, sh) = (
                ((w as f32 * f).round() as u32).max(12),
                ((h as f32 * f).round() as u32).max(12),
            );
            self.resampler
                .resample(img, whole(img), sw as usize, sh as usize, &mut self.hwc);
            // Reuse the previous shrunk image's allocation.
            let mut buf = std::mem::take(&mut self.work).into_raw();
            buf.clear();
            buf.extend(self.hwc.iter().map(|v| v.round().clamp(0.0, 255.0) as u8));
            self.work = RgbImage::from_raw(sw, sh, buf).expect("buffer sized to the image");
            sw as f32 / w as f32
        } else {
            1.0
        };
        let work = std::mem::take(&mut self.work);
        let result = (|| {
            let src = if f < 1.0 { &work } else { img };
            let c = self.pnet_stage(src, f)?;
            let n = c.len();
            let r = self.rnet_stage(src, c)?;
            tracing::debug!(pnet = n, rnet = r.len(), "face candidates");
            Ok(r)
        })();
        self.work = work;
        let mut cands = result?;
        if f < 1.0 {
            for c in &mut cands {
                for v in [&mut c.x1, &mut c.y1, &mut c.x2, &mut c.y2] {
                    *v /= f;
                }
            }
        }
        Ok(cands)
    }

    /// Stage 1 on `work`, an image shrunk by `f` from the original.
    fn pnet_stage(&mut self, work: &RgbImage, f: f32) -> Result<Vec<Candidate>, ModelError> {
        let (ww, wh) = work.dimensions();
        let min_face = (self.params.min_face * f).max(12.0);
        let m = 12.0 / min_face;
        let mut minl = ww.min(wh) as f32 * m;
        let mut scale = m;
        let mut all = Vec::new();
        while minl >= 12.0 {
            let hs = (wh as f32 * scale + 1.0) as usize;
            let ws = (ww as f32 * scale + 1.0) as usize;
            let found = self.pnet_scale(work, hs, ws, scale)?;
            all.extend(nms(found, 0.5, Overlap::Union));
            scale *= self.factor;
            minl *= self.factor;
        }
        let mut all = nms(all, 0.7, Overlap::Union);
        for c in &mut all {
            c.regress(false);
            c.square();
        }
        Ok(all)
    }

    /// P-Net at one pyramid level; boxes come back in original-image coordinates.
    fn pnet_scale(
        &mut self,
        work: &RgbImage,
        hs: usize,
        ws: usize,
        scale: f32,
    ) -> Result<Vec<Candidate>, ModelError> {
        self.resampler
            .resample(work, whole(work), ws, hs, &mut self.hwc);
        self.chw.resize(self.hwc.len(), 0.0);
        hwc_to_chw(&self.hwc, [self.mean; 3], [self.scale; 3], &mut self.chw);
        let plan = self.pnet.plan(&[hs as i64, ws as i64])?;
        let file = "P-Net";
        let out = net::run(&plan, &[1, 3, hs, ws], &self.chw, file)?;
        let prob = net::view(&out, self.pnet_out[0], file)?;
        let reg = net::view(&out, self.pnet_out[1], file)?;
        let (oh, ow) = (prob.shape()[2], prob.shape()[3]);
        let mut found = Vec::new();
        for y in 0..oh {
            for x in 0..ow {
                let p = if self.pnet_logits {
                    net::softmax2(prob[[0, 0, y, x]], prob[[0, 1, y, x]])
                } else {
                    prob[[0, 1, y, x]]
                };
                if p >= self.params.thresholds[0] {
                    let (bx, by) = (x as f32, y as f32);
                    found.push(Candidate {
                        x1: ((2.0 * bx + 1.0) / scale).floor(),
                        y1: ((2.0 * by + 1.0) / scale).floor(),
                        x2: ((2.0 * bx + 12.0) / scale).floor(),
                        y2: ((2.0 * by + 12.0) / scale).floor(),
                        score: p,
                        reg: [
                            reg[[0, 0, y, x]],
                            reg[[0, 1, y, x]],
                            reg[[0, 2, y, x]],
                            reg[[0, 3, y, x]],
                        ],
                    });
                }
            }
        }
        Ok(found)
    }

    /// Crops each candidate to `size`x`size`, normalised, into one NCHW batch in `self.chw`
    /// (P-Net's input buffer, free once the pyramid is done), reused from call to call.
    fn batch(&mut self, img: &RgbImage, cands: &[Candidate], size: usize) {
        let per = 3 * size * size;
        self.chw.clear();
        self.chw.resize(cands.len() * per, 0.0);
        for (c, dst) in cands.iter().zip(self.chw.chunks_exact_mut(per)) {
            if let Some(rect) = c.crop() {
                self.resampler
                    .resample(img, rect, size, size, &mut self.hwc);
                hwc_to_chw(&self.hwc, [self.mean; 3], [self.scale; 3], dst);
            }
        }
    }

    fn rnet_stage(
        &mut self,
        img: &RgbImage,
        cands: Vec<Candidate>,
    ) -> Result<Vec<Candidate>, ModelError> {
        let cands: Vec<Candidate> = cands.into_iter().filter(|c| c.crop().is_some()).collect();
        let mut kept = Vec::new();
        for chunk in cands.chunks(RNET_BATCH) {
            self.batch(img, chunk, 24);
            let plan: Plan = self.rnet.plan(&[])?;
            let out = net::run(&plan, &[chunk.len(), 3, 24, 24], &self.chw, "R-Net")?;
            let prob = net::view(&out, self.rnet_out[0], "R-Net")?;
            let reg = net::view(&out, self.rnet_out[1], "R-Net")?;
            for (i, c) in chunk.iter().enumerate() {
                let score = prob[[i, 1]];
                if score > self.params.thresholds[1] {
                    kept.push(Candidate {
                        score,
                        reg: [reg[[i, 0]], reg[[i, 1]], reg[[i, 2]], reg[[i, 3]]],
                        ..*c
                    });
                }
            }
        }
        let mut kept = nms(kept, 0.7, Overlap::Union);
        for c in &mut kept {
            c.regress(true);
            c.square();
        }
        Ok(kept)
    }

    /// The largest face only, with its landmarks (the door needs no other): candidates go
    /// through O-Net largest first and the first one it confirms is the answer, which saves
    /// O-Net on the others (usually several boxes around the same face).
    pub fn detect_largest(&mut self, img: &RgbImage) -> Result<Option<Detection>, ModelError> {
        let mut cands = self.propose(img)?;
        cands.sort_by(|a, b| {
            let area = |c: &Candidate| (c.x2 - c.x1 + 1.0) * (c.y2 - c.y1 + 1.0);
            area(b).total_cmp(&area(a))
        });
        for c in cands {
            if let Some(d) = self.landmarks(img, &[c])?.into_iter().next() {
                return Ok(Some(d));
            }
        }
        Ok(None)
    }

    /// O-Net alone on the square around `bbox` (a box from another detector, 0-based): the
    /// face's refined box, O-Net's score and the 5 landmarks; `None` if O-Net rejects it.
    pub fn landmarks_in(
        &mut self,
        img: &RgbImage,
        bbox: &BBox,
    ) -> Result<Option<Detection>, ModelError> {
        let side = bbox.w.max(bbox.h);
        let (cx, cy) = (bbox.x + bbox.w / 2.0, bbox.y + bbox.h / 2.0);
        // To the reference's 1-based inclusive convention.
        let c = Candidate {
            x1: cx - side / 2.0 + 1.0,
            y1: cy - side / 2.0 + 1.0,
            x2: cx + side / 2.0,
            y2: cy + side / 2.0,
            score: 1.0,
            reg: [0.0; 4],
        };
        Ok(self.landmarks(img, &[c])?.into_iter().next())
    }

    /// Stage 3 (O-Net): final boxes, scores and the 5 landmarks, largest face first.
    pub fn landmarks(
        &mut self,
        img: &RgbImage,
        cands: &[Candidate],
    ) -> Result<Vec<Detection>, ModelError> {
        let cands: Vec<Candidate> = cands
            .iter()
            .copied()
            .filter(|c| c.crop().is_some())
            .collect();
        let mut kept: Vec<(Candidate, [[f32; 2]; 5])> = Vec::new();
        for chunk in cands.chunks(ONET_BATCH) {
            self.batch(img, chunk, 48);
            let plan = self.onet.plan(&[])?;
            let out = net::run(&plan, &[chunk.len(), 3, 48, 48], &self.chw, "O-Net")?;
            let prob = net::view(&out, self.onet_out[0], "O-Net")?;
            let reg = net::view(&out, self.onet_out[1], "O-Net")?;
            let pts = net::view(&out, self.onet_out[2], "O-Net")?;
            for (i, c) in chunk.iter().enumerate() {
                let score = prob[[i, 1]];
                if score <= self.params.thresholds[2] {
                    continue;
                }
                let w = c.x2 - c.x1 + 1.0;
                let h = c.y2 - c.y1 + 1.0;
                let mut lm = [[0f32; 2]; 5];
                for (k, p) in lm.iter_mut().enumerate() {
                    *p = [
                        w * pts[[i, k]] + c.x1 - 1.0,
                        h * pts[[i, k + 5]] + c.y1 - 1.0,
                    ];
                }
                let mut c = Candidate {
                    score,
                    reg: [reg[[i, 0]], reg[[i, 1]], reg[[i, 2]], reg[[i, 3]]],
                    ..*c
                };
                c.regress(true);
                kept.push((c, lm));
            }
        }
        // NMS in "min" mode also removes a box nested inside a larger one.
        let boxes: Vec<Candidate> = kept.iter().map(|k| k.0).collect();
        let mut out: Vec<Detection> = nms_keep(&boxes, 0.7, Overlap::Min)
            .into_iter()
            .map(|i| {
                let (c, landmarks) = kept[i];
                Detection {
                    bbox: BBox {
                        x: c.x1 - 1.0,
                        y: c.y1 - 1.0,
                        w: c.x2 - c.x1 + 1.0,
                        h: c.y2 - c.y1 + 1.0,
                    },
                    score: c.score,
                    landmarks,
                }
            })
            .collect();
        out.sort_by(|a, b| b.bbox.area().total_cmp(&a.bbox.area()));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(x1: f32, y1: f32, x2: f32, y2: f32, score: f32) -> Candidate {
        Candidate {
            x1,
            y1,
            x2,
            y2,
            score,
            reg: [0.0; 4],
        }
    }

    #[test]
    fn nms_keeps_best_of_overlapping_and_all_disjoint() {
        let kept = nms(
            vec![
                cand(0.0, 0.0, 9.0, 9.0, 0.8),
                cand(1.0, 1.0, 10.0, 10.0, 0.9),
                cand(50.0, 50.0, 59.0, 59.0, 0.7),
            ],
            0.5,
            Overlap::Union,
        );
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0].score, 0.9);
        assert_eq!(kept[1].score, 0.7);
    }

    #[test]
    fn nms_min_mode_removes_nested_box() {
        let outer = cand(0.0, 0.0, 99.0, 99.0, 0.9);
        let inner = cand(10.0, 10.0, 39.0, 39.0, 0.95);
        assert_eq!(nms(vec![outer, inner], 0.7, Overlap::Union).len(), 2);
        assert_eq!(nms(vec![outer, inner], 0.7, Overlap::Min).len(), 1);
    }

    #[test]
    fn square_keeps_centre_and_uses_longer_side() {
        let mut c = cand(10.0, 20.0, 30.0, 60.0, 1.0);
        c.square();
        assert_eq!((c.x2 - c.x1, c.y2 - c.y1), (40.0, 40.0));
        assert_eq!((c.x1 + c.x2) / 2.0, 20.0);
        assert_eq!((c.y1 + c.y2) / 2.0, 40.0);
    }
}
