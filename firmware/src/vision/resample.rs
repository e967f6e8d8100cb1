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
#[derive(Default)]
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
#[derive(Default)]
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

        // Horizontal pass over the source rows the output needs.
        let h = rect.h as usize;
        self.rows.clear();
        self.rows.resize(h * out_w * 3, 0.0);
        for r in 0..h {
            let sy = rect.y + r as i64;
            if sy < 0 || sy >= ih {
                continue;
            }
            let line = &src[(sy * iw * 3) as usize..((sy + 1) * iw * 3) as usize];
            let dst = &mut self.rows[r * out_w * 3..(r + 1) * out_w * 3];
            for (o, &(a, b)) in self.xs.spans.iter().enumerate() {
                let mut acc = [0f32; 3];
                for k in a..b {
                    let sx = self.xs.idx[k];
                    if sx < 0 || sx >= iw {
                        continue;
                    }
                    let wgt = self.xs.weight[k];
                    let p = &line[sx as usize * 3..sx as usize * 3 + 3];
                    acc[0] += wgt * f32::from(p[0]);
                    acc[1] += wgt * f32::from(p[1]);
                    acc[2] += wgt * f32::from(p[2]);
                }
                dst[o * 3..o * 3 + 3].copy_from_slice(&acc);
            }
        }

        // Vertical pass.
        out.clear();
        out.resize(out_h * out_w * 3, 0.0);
        for (o, &(a, b)) in self.ys.spans.iter().enumerate() {
            let dst = &mut out[o * out_w * 3..(o + 1) * out_w * 3];
            for k in a..b {
                let r = (self.ys.idx[k] - rect.y) as usize;
                let wgt = self.ys.weight[k];
                let row = &self.rows[r * out_w * 3..(r + 1) * out_w * 3];
                for (d, s) in dst.iter_mut().zip(row) {
                    *d += wgt * s;
                }
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
