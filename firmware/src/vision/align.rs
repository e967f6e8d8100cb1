//! Face alignment: a similarity transform of the 5 landmarks onto the model's template, then the
//! face chip is resampled through it.

use super::resample::{Rect, Resampler};
use image::RgbImage;
use nalgebra::{Matrix2, Vector2};

/// A 2-D similarity transform `p -> s R p + t` (rotation, uniform scale, translation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Similarity {
    /// `s cos(theta)`.
    pub a: f64,
    /// `s sin(theta)`.
    pub b: f64,
    /// Translation x.
    pub tx: f64,
    /// Translation y.
    pub ty: f64,
}

impl Similarity {
    /// Least-squares similarity taking `src` points onto `dst` points (Umeyama, 1991).
    /// `None` when the source points are degenerate (all equal, or not finite).
    pub fn estimate(src: &[[f32; 2]], dst: &[[f32; 2]]) -> Option<Self> {
        let n = src.len().min(dst.len());
        if n < 2 {
            return None;
        }
        let pt = |p: &[f32; 2]| Vector2::new(f64::from(p[0]), f64::from(p[1]));
        let mean_s = src[..n].iter().map(pt).sum::<Vector2<f64>>() / n as f64;
        let mean_d = dst[..n].iter().map(pt).sum::<Vector2<f64>>() / n as f64;
        let mut cov = Matrix2::zeros();
        let mut var_s = 0.0;
        for (s, d) in src[..n].iter().zip(&dst[..n]) {
            let (cs, cd) = (pt(s) - mean_s, pt(d) - mean_d);
            cov += cd * cs.transpose();
            var_s += cs.norm_squared();
        }
        cov /= n as f64;
        var_s /= n as f64;
        if !(var_s.is_finite() && var_s > 1e-12) {
            return None;
        }
        let svd = cov.svd(true, true);
        let (u, v_t) = (svd.u?, svd.v_t?);
        let mut d = Matrix2::identity();
        if u.determinant() * v_t.determinant() < 0.0 {
            d[(1, 1)] = -1.0;
        }
        let r = u * d * v_t;
        let scale = (Matrix2::from_diagonal(&svd.singular_values) * d).trace() / var_s;
        let t = mean_d - scale * r * mean_s;
        let sim = Self {
            a: scale * r[(0, 0)],
            b: scale * r[(1, 0)],
            tx: t.x,
            ty: t.y,
        };
        sim.is_finite().then_some(sim)
    }

    fn is_finite(&self) -> bool {
        [self.a, self.b, self.tx, self.ty]
            .iter()
            .all(|v| v.is_finite())
    }

    /// The scale factor `s`.
    pub fn scale(&self) -> f64 {
        self.a.hypot(self.b)
    }

    /// Maps a point.
    pub fn apply(&self, x: f64, y: f64) -> (f64, f64) {
        (
            self.a * x - self.b * y + self.tx,
            self.b * x + self.a * y + self.ty,
        )
    }

    /// The inverse transform.
    pub fn inverse(&self) -> Self {
        let s2 = self.a * self.a + self.b * self.b;
        let (a, b) = (self.a / s2, -self.b / s2);
        Self {
            a,
            b,
            tx: -(a * self.tx - b * self.ty),
            ty: -(b * self.tx + a * self.ty),
        }
    }
}

/// Makes aligned face chips; keeps its buffers between faces.
#[derive(Default, Clone)]
pub struct Aligner {
    resampler: Resampler,
    buf: Vec<f32>,
}

impl Aligner {
    /// The `size`x`size` chip for `landmarks` (image pixels) placed onto `template` (chip pixels).
    /// `None` when the landmarks are degenerate.
    pub fn chip(
        &mut self,
        img: &RgbImage,
        landmarks: &[[f32; 2]; 5],
        template: &[[f32; 2]; 5],
        size: u32,
    ) -> Option<RgbImage> {
        let to_chip = Similarity::estimate(landmarks, template)?;
        let to_img = to_chip.inverse();
        // Footprint of the chip in the image.
        let corners = [
            (0.0, 0.0),
            (f64::from(size), 0.0),
            (0.0, f64::from(size)),
            (f64::from(size), f64::from(size)),
        ]
        .map(|(x, y)| to_img.apply(x, y));
        let (x0, x1) = corners.iter().fold((f64::MAX, f64::MIN), |(lo, hi), c| {
            (lo.min(c.0), hi.max(c.0))
        });
        let (y0, y1) = corners.iter().fold((f64::MAX, f64::MIN), |(lo, hi), c| {
            (lo.min(c.1), hi.max(c.1))
        });

        // Bilinear sampling aliases when the face is much larger than the chip: first shrink the
        // footprint by an integer factor with an area filter, so at most 2 image pixels map to
        // one chip pixel.
        let k = (1.0 / to_chip.scale()).floor().max(1.0) as i64;
        let k = if k >= 2 { k } else { 1 };
        let rect = Rect {
            x: x0.floor() as i64 - k,
            y: y0.floor() as i64 - k,
            w: ((x1 - x0).ceil() as i64 + 2 * k + 1).max(1),
            h: ((y1 - y0).ceil() as i64 + 2 * k + 1).max(1),
        };
        let (sw, sh) = (
            ((rect.w + k - 1) / k) as usize,
            ((rect.h + k - 1) / k) as usize,
        );
        let rect = Rect {
            w: sw as i64 * k,
            h: sh as i64 * k,
            ..rect
        };
        self.resampler.resample(img, rect, sw, sh, &mut self.buf);
        // Source pixel j of the shrunk buffer averages image pixels x..x+k-1: its centre is at
        // image coordinate x + j k + (k - 1) / 2.
        let kf = k as f64;
        let off = (kf - 1.0) / 2.0;
        let mut chip = RgbImage::new(size, size);
        for v in 0..size {
            for u in 0..size {
                let (ix, iy) = to_img.apply(f64::from(u), f64::from(v));
                let sx = (ix - rect.x as f64 - off) / kf;
                let sy = (iy - rect.y as f64 - off) / kf;
                let px = bilinear(&self.buf, sw, sh, sx, sy);
                chip.put_pixel(
                    u,
                    v,
                    image::Rgb(px.map(|c| c.round().clamp(0.0, 255.0) as u8)),
                );
            }
        }
        Some(chip)
    }
}

/// Bilinear sample of an interleaved RGB f32 buffer; outside is black.
fn bilinear(buf: &[f32], w: usize, h: usize, x: f64, y: f64) -> [f32; 3] {
    let (fx, fy) = (x.floor(), y.floor());
    let (dx, dy) = ((x - fx) as f32, (y - fy) as f32);
    let (ix, iy) = (fx as i64, fy as i64);
    let at = |xx: i64, yy: i64| -> [f32; 3] {
        if xx < 0 || yy < 0 || xx >= w as i64 || yy >= h as i64 {
            return [0.0; 3];
        }
        let i = (yy as usize * w + xx as usize) * 3;
        [buf[i], buf[i + 1], buf[i + 2]]
    };
    let (p00, p10, p01, p11) = (
        at(ix, iy),
        at(ix + 1, iy),
        at(ix, iy + 1),
        at(ix + 1, iy + 1),
    );
    let mut out = [0f32; 3];
    for c in 0..3 {
        let top = p00[c] + (p10[c] - p00[c]) * dx;
        let bottom = p01[c] + (p11[c] - p01[c]) * dx;
        out[c] = top + (bottom - top) * dy;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_recovers_a_known_similarity() {
        let truth = Similarity {
            a: 0.8 * 0.3f64.cos(),
            b: 0.8 * 0.3f64.sin(),
            tx: 12.0,
            ty: -7.0,
        };
        let src = [
            [10.0, 20.0],
            [60.0, 22.0],
            [35.0, 50.0],
            [15.0, 80.0],
            [55.0, 78.0],
        ];
        let dst = src.map(|p| {
            let (x, y) = truth.apply(f64::from(p[0]), f64::from(p[1]));
            [x as f32, y as f32]
        });
        let est = Similarity::estimate(&src, &dst).unwrap();
        for (e, t) in [est.a, est.b, est.tx, est.ty]
            .iter()
            .zip([truth.a, truth.b, truth.tx, truth.ty])
        {
            assert!((e - t).abs() < 1e-4, "{est:?} vs {truth:?}");
        }
        let inv = est.inverse();
        let (x, y) = inv.apply(est.apply(3.0, 4.0).0, est.apply(3.0, 4.0).1);
        assert!((x - 3.0).abs() < 1e-9 && (y - 4.0).abs() < 1e-9);
    }

    #[test]
    fn degenerate_points_are_refused() {
        let same = [[5.0, 5.0]; 5];
        assert!(Similarity::estimate(
            &same,
            &[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 2.0]]
        )
        .is_none());
        let nan = [
            [f32::NAN, 0.0],
            [1.0, 0.0],
            [0.0, 1.0],
            [1.0, 1.0],
            [2.0, 2.0],
        ];
        assert!(Similarity::estimate(&nan, &same).is_none());
    }

    #[test]
    fn chip_places_landmarks_on_the_template() {
        // A dark image with a bright dot at each landmark; after alignment the dots must sit at
        // the template positions, whatever the face's scale (including the pre-shrink path).
        let template = [
            [46.0, 44.0],
            [101.0, 44.0],
            [75.0, 77.0],
            [48.0, 102.0],
            [100.0, 102.0],
        ];
        for scale in [0.7f32, 1.0, 3.0, 6.5] {
            let lm = template.map(|p| [200.0 + p[0] * scale, 150.0 + p[1] * scale]);
            let mut img = RgbImage::new(1400, 1200);
            for p in &lm {
                let r = (2.0 * scale).ceil() as i32;
                for dy in -r..=r {
                    for dx in -r..=r {
                        img.put_pixel(
                            (p[0] as i32 + dx) as u32,
                            (p[1] as i32 + dy) as u32,
                            image::Rgb([255, 255, 255]),
                        );
                    }
                }
            }
            let chip = Aligner::default().chip(&img, &lm, &template, 150).unwrap();
            for t in &template {
                let px = chip.get_pixel(t[0] as u32, t[1] as u32);
                assert!(px[0] > 150, "scale {scale}: landmark not at {t:?}: {px:?}");
            }
            assert_eq!(
                chip.get_pixel(75, 10)[0],
                0,
                "scale {scale}: background must stay dark"
            );
        }
    }
}
