//! Area (box-filter) resampling of an integer rectangle of an RGB image, with zero padding outside
//! the image. Used for the detector's pyramid and crops, and to pre-shrink large faces before
//! alignment, so no stage aliases when it downsamples.

use image::RgbImage;

/// An integer rectangle in image pixels; it may extend past the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    /// Left column.
    pub x: i64,
    /// Top row.
    pub y: i64,
    /// Width, > 0.
    pub w: i64,
    /// Height, > 0.
    pub h: i64,
}

/// For each output index, the source indices and weights that average into it.
#[derive(Default, Clone)]
struct AxisMap {
    spans: Vec<(usize, usize)>,
    idx: Vec<i64>,
    weight: Vec<f32>,
}

impl AxisMap {
    /// Maps `len` source pixels starting at `start` onto `n` outputs. Each output averages the
    /// source pixels its footprint covers, weighted by coverage (nearest pixel when upsampling).
    fn build(&mut self, start: i64, len: i64, n: usize) {
        self.spans.clear();
        self.idx.clear();
        self.weight.clear();
        let step = len as f64 / n as f64;
        for o in 0..n {
            let a = o as f64 * step;
            let b = a + step;
            let from = self.idx.len();
            let mut i = a.floor();
            while i < b {
                let overlap = (b.min(i + 1.0) - a.max(i)) / step;
                if overlap > 1e-9 {
                    self.idx.push(start + i as i64);
                    self.weight.push(overlap as f32);
                }
                i += 1.0;
            }
            self.spans.push((from, self.idx.len()));
        }
    }
}

/// Reusable buffers for [`Resampler::resample`].
#[derive(Default, Clone)]
pub struct Resampler {
    xs: AxisMap,
    ys: AxisMap,
    rows: Vec<f32>,
}

impl Resampler {
    /// Resamples `rect` of `img` to `out_w` x `out_h` pixels, writing interleaved RGB `f32`
    /// values (0..255, row-major) into `out`. Pixels outside the image count as black.
    pub fn resample(
        &mut self,
        img: &RgbImage,
        rect: Rect,
        out_w: usize,
        out_h: usize,
        out: &mut Vec<f32>,
    ) {
        debug_assert!(rect.w > 0 && rect.h > 0 && out_w > 0 && out_h > 0);
        let (iw, ih) = (i64::from(img.width()), i64::from(img.height()));
        let src = img.as_raw();
        self.xs.build(rect.x, rect.w, out_w);
        self.ys.build(rect.y, rect.h, out_h);

        // Vertical pass first: an output row is a weighted sum of whole source rows, contiguous
        // memory that vectorises; the horizontal pass then runs on the few output rows only.
        // Columns of `rect` outside the image stay 0 (black).
        let cols = rect.w as usize;
        let (x0, x1) = (rect.x.clamp(0, iw), (rect.x + rect.w).clamp(0, iw));
        self.rows.clear();
        self.rows.resize(out_h * cols * 3, 0.0);
        if x1 > x0 {
            let off = ((x0 - rect.x) * 3) as usize;
            let n = ((x1 - x0) * 3) as usize;
            for (o, &(a, b)) in self.ys.spans.iter().enumerate() {
                let dst = &mut self.rows[o * cols * 3 + off..o * cols * 3 + off + n];
                for k in a..b {
                    let sy = self.ys.idx[k];
                    if sy < 0 || sy >= ih {
                        continue;
                    }
                    let wgt = self.ys.weight[k];
                    let from = ((sy * iw + x0) * 3) as usize;
                    for (d, s) in dst.iter_mut().zip(&src[from..from + n]) {
                        *d += wgt * f32::from(*s);
                    }
                }
            }
        }

        // Horizontal pass.
        out.clear();
        out.resize(out_h * out_w * 3, 0.0);
        for (row, dst) in self
            .rows
            .chunks_exact(cols * 3)
            .zip(out.chunks_exact_mut(out_w * 3))
        {
            for (&(a, b), px) in self.xs.spans.iter().zip(dst.chunks_exact_mut(3)) {
                let mut acc = [0f32; 3];
                for (&sx, &wgt) in self.xs.idx[a..b].iter().zip(&self.xs.weight[a..b]) {
                    // `idx` runs over rect.x..rect.x + rect.w, so this is within the row.
                    let c = (sx - rect.x) as usize * 3;
                    let p = &row[c..c + 3];
                    acc[0] += wgt * p[0];
                    acc[1] += wgt * p[1];
                    acc[2] += wgt * p[2];
                }
                px.copy_from_slice(&acc);
            }
        }
    }
}

/// Writes interleaved RGB values into planar (CHW) order, applying `(x - mean) * scale`.
pub fn hwc_to_chw(hwc: &[f32], mean: [f32; 3], scale: [f32; 3], chw: &mut [f32]) {
    let n = hwc.len() / 3;
    debug_assert_eq!(chw.len(), hwc.len());
    for (i, p) in hwc.chunks_exact(3).enumerate() {
        for c in 0..3 {
            chw[c * n + i] = (p[c] - mean[c]) * scale[c];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 100]))
    }

    #[test]
    fn identity_size_copies_pixels() {
        let img = gradient(7, 5);
        let mut r = Resampler::default();
        let mut out = Vec::new();
        r.resample(
            &img,
            Rect {
                x: 0,
                y: 0,
                w: 7,
                h: 5,
            },
            7,
            5,
            &mut out,
        );
        for (o, p) in out.chunks_exact(3).zip(img.pixels()) {
            assert!((o[0] - f32::from(p[0])).abs() < 1e-4 && (o[1] - f32::from(p[1])).abs() < 1e-4);
        }
    }

    #[test]
    fn halving_averages_blocks() {
        let img = gradient(8, 8);
        let mut r = Resampler::default();
        let mut out = Vec::new();
        r.resample(
            &img,
            Rect {
                x: 0,
                y: 0,
                w: 8,
                h: 8,
            },
            4,
            4,
            &mut out,
        );
        // Output (1, 2) averages columns 2..4 and rows 4..6: x mean 2.5, y mean 4.5.
        let p = &out[(2 * 4 + 1) * 3..(2 * 4 + 1) * 3 + 3];
        assert!((p[0] - 2.5).abs() < 1e-4, "{p:?}");
        assert!((p[1] - 4.5).abs() < 1e-4, "{p:?}");
        assert!((p[2] - 100.0).abs() < 1e-4);
    }

    /// Exact area average by brute force: each output pixel integrates the source over its
    /// footprint, pixels outside the image being black.
    fn area_reference(img: &RgbImage, r: Rect, ow: usize, oh: usize) -> Vec<f32> {
        let (sx, sy) = (r.w as f64 / ow as f64, r.h as f64 / oh as f64);
        let mut out = Vec::new();
        for oy in 0..oh {
            for ox in 0..ow {
                let (ax, ay) = (ox as f64 * sx, oy as f64 * sy);
                let mut acc = [0f64; 3];
                for y in ay.floor() as i64..(ay + sy).ceil() as i64 {
                    let cy = ((ay + sy).min(y as f64 + 1.0) - ay.max(y as f64)).max(0.0) / sy;
                    for x in ax.floor() as i64..(ax + sx).ceil() as i64 {
                        let cx = ((ax + sx).min(x as f64 + 1.0) - ax.max(x as f64)).max(0.0) / sx;
                        let (px, py) = (r.x + x, r.y + y);
                        if px < 0 || py < 0 || px >= img.width().into() || py >= img.height().into()
                        {
                            continue;
                        }
                        let p = img.get_pixel(px as u32, py as u32);
                        for c in 0..3 {
                            acc[c] += cx * cy * f64::from(p[c]);
                        }
                    }
                }
                out.extend(acc.iter().map(|v| *v as f32));
            }
        }
        out
    }

    #[test]
    fn matches_exact_area_average_inside_and_past_the_edges() {
        let img = RgbImage::from_fn(37, 29, |x, y| {
            image::Rgb([
                (x * 7 % 256) as u8,
                (y * 11 % 256) as u8,
                ((x * y) % 251) as u8,
            ])
        });
        let mut r = Resampler::default();
        let mut out = Vec::new();
        for (rect, ow, oh) in [
            (
                Rect {
                    x: 0,
                    y: 0,
                    w: 37,
                    h: 29,
                },
                11,
                9,
            ), // shrink by a fraction
            (
                Rect {
                    x: -5,
                    y: -3,
                    w: 20,
                    h: 24,
                },
                24,
                24,
            ), // past the top-left, upsampled
            (
                Rect {
                    x: 30,
                    y: 20,
                    w: 15,
                    h: 15,
                },
                6,
                6,
            ), // past the bottom-right
            (
                Rect {
                    x: 3,
                    y: 4,
                    w: 30,
                    h: 21,
                },
                30,
                21,
            ), // identity
        ] {
            r.resample(&img, rect, ow, oh, &mut out);
            let want = area_reference(&img, rect, ow, oh);
            assert_eq!(out.len(), want.len());
            for (i, (a, b)) in out.iter().zip(&want).enumerate() {
                assert!(
                    (a - b).abs() < 1e-3,
                    "{rect:?} -> {ow}x{oh}, value {i}: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn outside_is_black() {
        let img = gradient(4, 4);
        let mut r = Resampler::default();
        let mut out = Vec::new();
        r.resample(
            &img,
            Rect {
                x: -4,
                y: 0,
                w: 8,
                h: 4,
            },
            2,
            1,
            &mut out,
        );
        assert_eq!(&out[0..3], &[0.0, 0.0, 0.0]);
        assert!(
            out[5] > 99.0 && out[5] < 101.0,
            "right half is inside: {out:?}"
        );
    }
}
