//! Image quality of a face: sharpness, exposure and pose, measured on the aligned chip and the 5
//! landmarks, and the thresholds that say whether a face is good enough to be judged at all.
//!
//! A blurred, badly lit or turned face gives an embedding far from the person's, or, worse, near
//! somebody else's; the door ignores such frames and enrolment refuses such photos.

use crate::problem::Problem;
use image::RgbImage;
use serde::{Deserialize, Serialize};

/// Why a face's image is too poor to be judged at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QualityIssue {
    /// Out of focus or moving (little fine detail in the face).
    Blurry,
    /// Under-exposed.
    TooDark,
    /// Over-exposed.
    TooBright,
    /// Head turned or tilted too far from frontal.
    Turned,
}

impl QualityIssue {
    /// The issue's name in the audit log and on the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            QualityIssue::Blurry => "blurry",
            QualityIssue::TooDark => "too_dark",
            QualityIssue::TooBright => "too_bright",
            QualityIssue::Turned => "turned",
        }
    }
}

/// Side of the grid the face's centre is averaged onto before measuring, so the measures do not
/// depend on the chip's size: about the resolution of the smallest face the door recognises.
const GRID: usize = 40;
/// Grey levels at or below / at or above which a pixel is clipped.
const CLIP_DARK: u8 = 8;
const CLIP_BRIGHT: u8 = 247;

/// What is measured on one face.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Measures {
    /// Fine detail: variance of the Laplacian over the variance of the grey levels, on the face
    /// centre averaged to a fixed grid (independent of chip size and of contrast).
    pub sharpness: f32,
    /// Mean grey level of the face centre (0 to 255).
    pub brightness: f32,
    /// Share of the face centre's pixels clipped to black.
    pub dark_clipped: f32,
    /// Share of the face centre's pixels clipped to white.
    pub bright_clipped: f32,
    /// Head turn: the nose's offset from the middle of the eyes, along the eye line, in half eye
    /// distances (0 frontal; 1 with the nose in front of an eye).
    pub yaw: f32,
    /// Head nod: where the nose lies from the eye line (0) to the mouth line (1); about 0.55
    /// for a frontal face, less when the head tilts back, more when it bows.
    pub pitch: f32,
    /// Head tilt: angle of the eye line from the horizontal, in degrees.
    pub roll: f32,
}

/// The quality thresholds (the config's `[recognition.quality]`). Defaults come from the
/// measurements on real photos in the module tests and in docs/administering.md ("How the door
/// decides over frames").
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QualityParams {
    /// Smallest `sharpness`.
    pub min_sharpness: f32,
    /// Darkest mean grey level of the face.
    pub min_brightness: f32,
    /// Brightest mean grey level of the face.
    pub max_brightness: f32,
    /// Largest share of the face clipped to black or to white.
    pub max_clipped: f32,
    /// Largest head turn (`yaw`, either way).
    pub max_yaw: f32,
    /// Range of the head nod (`pitch`).
    pub min_pitch: f32,
    /// See `min_pitch`.
    pub max_pitch: f32,
    /// Largest head tilt in degrees.
    pub max_roll_degrees: f32,
}

impl Default for QualityParams {
    fn default() -> Self {
        Self {
            min_sharpness: 0.05,
            min_brightness: 30.0,
            max_brightness: 230.0,
            max_clipped: 0.3,
            max_yaw: 1.0,
            min_pitch: 0.2,
            max_pitch: 0.9,
            max_roll_degrees: 40.0,
        }
    }
}

impl QualityParams {
    /// Stricter thresholds for enrolment photos: a poor enrolment harms every later decision,
    /// and the admin can simply take another photo.
    pub fn for_enrolment(&self) -> Self {
        Self {
            min_sharpness: self.min_sharpness * 1.5,
            min_brightness: self.min_brightness + 10.0,
            max_brightness: self.max_brightness - 10.0,
            max_clipped: self.max_clipped * 0.5,
            max_yaw: self.max_yaw * 0.75,
            min_pitch: self.min_pitch + 0.05,
            max_pitch: self.max_pitch - 0.05,
            max_roll_degrees: self.max_roll_degrees * 0.75,
        }
    }

    /// Checks the values' ranges; the error names the config key and the problem.
    pub fn check(&self) -> Result<(), Problem> {
        let in_range = |key: &'static str, v: f32, lo: f32, hi: f32| {
            if v.is_finite() && (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(Problem::new(
                    key,
                    format!("must be between {lo} and {hi} (got {v})"),
                ))
            }
        };
        in_range(
            "recognition.quality.min_sharpness",
            self.min_sharpness,
            0.0,
            10.0,
        )?;
        in_range(
            "recognition.quality.min_brightness",
            self.min_brightness,
            0.0,
            255.0,
        )?;
        in_range(
            "recognition.quality.max_brightness",
            self.max_brightness,
            0.0,
            255.0,
        )?;
        in_range(
            "recognition.quality.max_clipped",
            self.max_clipped,
            0.0,
            1.0,
        )?;
        in_range("recognition.quality.max_yaw", self.max_yaw, 0.0, 10.0)?;
        in_range("recognition.quality.min_pitch", self.min_pitch, -10.0, 10.0)?;
        in_range("recognition.quality.max_pitch", self.max_pitch, -10.0, 10.0)?;
        in_range(
            "recognition.quality.max_roll_degrees",
            self.max_roll_degrees,
            0.0,
            180.0,
        )?;
        if self.min_brightness > self.max_brightness {
            return Err(Problem::new(
                "recognition.quality.min_brightness",
                "must not be above max_brightness".to_owned(),
            ));
        }
        if self.min_pitch > self.max_pitch {
            return Err(Problem::new(
                "recognition.quality.min_pitch",
                "must not be above max_pitch".to_owned(),
            ));
        }
        Ok(())
    }

    /// The verdict on `m`: the first issue found, in the order pose, exposure, sharpness (a
    /// dark or turned face also looks blurred; the cause is what the admin can fix). NaN never
    /// passes.
    pub fn judge(&self, m: &Measures) -> Result<(), QualityIssue> {
        // Written so that NaN fails every comparison.
        let within = |v: f32, lo: f32, hi: f32| v >= lo && v <= hi;
        if !(within(m.yaw.abs(), 0.0, self.max_yaw)
            && within(m.pitch, self.min_pitch, self.max_pitch)
            && within(m.roll.abs(), 0.0, self.max_roll_degrees))
        {
            return Err(QualityIssue::Turned);
        }
        let inf = f32::INFINITY;
        if !(within(m.brightness, self.min_brightness, inf)
            && within(m.dark_clipped, 0.0, self.max_clipped))
        {
            return Err(QualityIssue::TooDark);
        }
        if !(within(m.brightness, -inf, self.max_brightness)
            && within(m.bright_clipped, 0.0, self.max_clipped))
        {
            return Err(QualityIssue::TooBright);
        }
        if !within(m.sharpness, self.min_sharpness, inf) {
            return Err(QualityIssue::Blurry);
        }
        Ok(())
    }
}

/// Measures a face: `chip` is its aligned chip, made with `template` (the landmarks' places in
/// the chip), `landmarks` its 5 points in the image it was found in. Allocates nothing.
pub fn measure(chip: &RgbImage, template: &[[f32; 2]; 5], landmarks: &[[f32; 2]; 5]) -> Measures {
    let (sharpness, brightness, dark_clipped, bright_clipped) = exposure_and_detail(chip, template);
    let (yaw, pitch, roll) = pose(landmarks);
    Measures {
        sharpness,
        brightness,
        dark_clipped,
        bright_clipped,
        yaw,
        pitch,
        roll,
    }
}

/// Sharpness, mean grey and clipped shares of the face centre: the template's points with a
/// quarter of the eye distance around them (eyebrows to chin, cheek to cheek), box-averaged onto
/// a [`GRID`] square.
fn exposure_and_detail(chip: &RgbImage, template: &[[f32; 2]; 5]) -> (f32, f32, f32, f32) {
    if chip.width() == 0 || chip.height() == 0 {
        return (0.0, f32::NAN, 1.0, 1.0);
    }
    let (cw, ch) = (chip.width() as f32, chip.height() as f32);
    let eye = (template[1][0] - template[0][0]).hypot(template[1][1] - template[0][1]);
    let pad = 0.25 * eye;
    let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
    for p in template {
        x0 = x0.min(p[0]);
        y0 = y0.min(p[1]);
        x1 = x1.max(p[0]);
        y1 = y1.max(p[1]);
    }
    let x0 = (x0 - pad).clamp(0.0, cw - 1.0) as u32;
    let y0 = (y0 - pad).clamp(0.0, ch - 1.0) as u32;
    let x1 = ((x1 + pad).clamp(0.0, cw) as u32).max(x0 + 1);
    let y1 = ((y1 + pad).clamp(0.0, ch) as u32).max(y0 + 1);
    let (rw, rh) = ((x1 - x0) as usize, (y1 - y0) as usize);
    // Integer sums: grey levels times 256 (Rec. 601 luma in 8.8 fixed point).
    let mut sum = [0u32; GRID * GRID];
    let mut count = [0u32; GRID * GRID];
    let (mut dark, mut bright, mut total) = (0u32, 0u32, 0u32);
    let raw = chip.as_raw();
    let stride = chip.width() as usize * 3;
    for y in y0..y1 {
        let row = (y - y0) as usize * GRID / rh * GRID;
        let line = &raw[y as usize * stride..][x0 as usize * 3..x1 as usize * 3];
        for (i, px) in line.chunks_exact(3).enumerate() {
            let grey = 77 * u32::from(px[0]) + 150 * u32::from(px[1]) + 29 * u32::from(px[2]);
            let cell = row + i * GRID / rw;
            sum[cell] += grey;
            count[cell] += 1;
            dark += u32::from(grey <= u32::from(CLIP_DARK) << 8);
            bright += u32::from(grey >= u32::from(CLIP_BRIGHT) << 8);
        }
        total += x1 - x0;
    }
    // A chip smaller than the grid leaves cells empty: fill them from their left neighbour.
    let mut grid = [0f32; GRID * GRID];
    for i in 0..GRID * GRID {
        grid[i] = if count[i] > 0 {
            sum[i] as f32 / 256.0 / count[i] as f32
        } else if i > 0 {
            grid[i - 1]
        } else {
            0.0
        };
    }
    let n = (GRID * GRID) as f32;
    let mean = grid.iter().sum::<f32>() / n;
    let var = grid.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    let (mut lsum, mut lsq, mut ln) = (0f32, 0f32, 0f32);
    for y in 1..GRID - 1 {
        for x in 1..GRID - 1 {
            let i = y * GRID + x;
            let l = grid[i - 1] + grid[i + 1] + grid[i - GRID] + grid[i + GRID] - 4.0 * grid[i];
            lsum += l;
            lsq += l * l;
            ln += 1.0;
        }
    }
    let lmean = lsum / ln;
    let lvar = lsq / ln - lmean * lmean;
    let sharpness = if var > 1e-3 { lvar / var } else { 0.0 };
    let total = total.max(1) as f32;
    (sharpness, mean, dark as f32 / total, bright as f32 / total)
}

/// Yaw, pitch and roll (see [`Measures`]) from the 5 landmarks; NaN when they are degenerate.
fn pose(lm: &[[f32; 2]; 5]) -> (f32, f32, f32) {
    let [le, re, nose, lm_, rm] = *lm;
    let (vx, vy) = (re[0] - le[0], re[1] - le[1]);
    let d = vx.hypot(vy);
    if d.is_nan() || d <= 1e-3 {
        return (f32::NAN, f32::NAN, f32::NAN);
    }
    let (ux, uy) = (vx / d, vy / d);
    // Down the face: the eye line turned by 90 degrees.
    let (dx, dy) = (-uy, ux);
    let eyes = [(le[0] + re[0]) / 2.0, (le[1] + re[1]) / 2.0];
    let mouth = [(lm_[0] + rm[0]) / 2.0, (lm_[1] + rm[1]) / 2.0];
    let (nx, ny) = (nose[0] - eyes[0], nose[1] - eyes[1]);
    let yaw = (nx * ux + ny * uy) / (d / 2.0);
    let down = (mouth[0] - eyes[0]) * dx + (mouth[1] - eyes[1]) * dy;
    let pitch = if down > 1e-3 {
        (nx * dx + ny * dy) / down
    } else {
        f32::NAN
    };
    let roll = vy.atan2(vx).to_degrees();
    (yaw, pitch, roll)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    /// dlib's template in its 150 px chip.
    const TEMPLATE: [[f32; 2]; 5] = [
        [46.61, 44.79],
        [101.44, 45.05],
        [74.21, 77.37],
        [48.51, 101.10],
        [99.88, 101.03],
    ];

    /// A frontal face's landmarks in a frame: the template scaled by `k` and moved.
    fn frontal(k: f32) -> [[f32; 2]; 5] {
        TEMPLATE.map(|p| [100.0 + k * p[0], 50.0 + k * p[1]])
    }

    /// A chip with fine detail: a checkerboard of 2 px squares between `lo` and `hi`.
    fn textured(size: u32, lo: u8, hi: u8) -> RgbImage {
        RgbImage::from_fn(size, size, |x, y| {
            let v = if (x / 2 + y / 2) % 2 == 0 { lo } else { hi };
            Rgb([v, v, v])
        })
    }

    /// The same chip blurred: a smooth gradient between the same levels.
    fn smooth(size: u32, lo: u8, hi: u8) -> RgbImage {
        RgbImage::from_fn(size, size, |x, _| {
            let t = x as f32 / size as f32;
            let v = (f32::from(lo) + t * f32::from(hi - lo)) as u8;
            Rgb([v, v, v])
        })
    }

    #[test]
    fn a_frontal_face_has_no_turn_and_its_nose_between_eyes_and_mouth() {
        let (yaw, pitch, roll) = pose(&frontal(1.3));
        assert!(yaw.abs() < 0.05, "{yaw}");
        assert!((pitch - 0.58).abs() < 0.02, "{pitch}");
        assert!(roll.abs() < 0.5, "{roll}");
    }

    #[test]
    fn turn_tilt_and_nod_are_measured() {
        // Nose moved halfway towards the right eye: yaw 0.5.
        let mut lm = frontal(1.0);
        lm[2][0] += (lm[1][0] - lm[0][0]) / 4.0;
        assert!((pose(&lm).0 - 0.5).abs() < 0.02);
        // The whole face turned by 30 degrees in the image: roll 30, yaw and pitch unchanged.
        let (s, c) = 30f32.to_radians().sin_cos();
        let rolled = frontal(1.0).map(|p| [c * p[0] - s * p[1], s * p[0] + c * p[1]]);
        let (yaw, pitch, roll) = pose(&rolled);
        assert!((roll - 30.0).abs() < 0.5, "{roll}");
        assert!(yaw.abs() < 0.05 && (pitch - 0.58).abs() < 0.02);
        // Nose up at the eye line: head tilted far back.
        let mut lm = frontal(1.0);
        lm[2][1] = lm[0][1];
        assert!(pose(&lm).1.abs() < 0.02);
        // Degenerate landmarks give NaN, which no threshold passes.
        let m = Measures {
            yaw: f32::NAN,
            ..measure(&textured(150, 60, 190), &TEMPLATE, &frontal(1.0))
        };
        assert_eq!(
            QualityParams::default().judge(&m),
            Err(QualityIssue::Turned)
        );
    }

    #[test]
    fn sharpness_does_not_depend_on_the_chip_size() {
        let t = TEMPLATE.map(|p| p.map(|v| v * 112.0 / 150.0));
        let a = measure(&textured(150, 60, 190), &TEMPLATE, &frontal(1.0)).sharpness;
        let b = measure(&textured(112, 60, 190), &t, &frontal(1.0)).sharpness;
        // The same pattern at another scale is a different signal; what matters is the order
        // of magnitude against blurred chips.
        let blurred = measure(&smooth(150, 60, 190), &TEMPLATE, &frontal(1.0)).sharpness;
        assert!(a > 0.5 && b > 0.5, "{a} {b}");
        assert!(blurred < 0.01, "{blurred}");
    }

    #[test]
    fn each_issue_is_named() {
        let q = QualityParams::default();
        let lm = frontal(1.0);
        let good = measure(&textured(150, 60, 190), &TEMPLATE, &lm);
        assert_eq!(q.judge(&good), Ok(()));
        assert!((good.brightness - 125.0).abs() < 1.0, "{good:?}");
        let dark = measure(&textured(150, 0, 20), &TEMPLATE, &lm);
        assert_eq!(q.judge(&dark), Err(QualityIssue::TooDark), "{dark:?}");
        let bright = measure(&textured(150, 235, 255), &TEMPLATE, &lm);
        assert_eq!(q.judge(&bright), Err(QualityIssue::TooBright), "{bright:?}");
        let blurred = measure(&smooth(150, 60, 190), &TEMPLATE, &lm);
        assert_eq!(q.judge(&blurred), Err(QualityIssue::Blurry), "{blurred:?}");
        let mut turned = lm;
        turned[2][0] = turned[1][0];
        let turned = measure(&textured(150, 60, 190), &TEMPLATE, &turned);
        assert_eq!(q.judge(&turned), Err(QualityIssue::Turned), "{turned:?}");
    }

    #[test]
    fn an_empty_chip_is_refused_not_a_panic() {
        let m = measure(&RgbImage::new(0, 0), &TEMPLATE, &frontal(1.0));
        assert!(QualityParams::default().judge(&m).is_err());
    }

    #[test]
    fn enrolment_is_stricter_and_ranges_are_checked() {
        let q = QualityParams::default();
        let e = q.for_enrolment();
        assert!(e.min_sharpness > q.min_sharpness && e.max_yaw < q.max_yaw);
        assert_eq!(e.check(), Ok(()));
        assert_eq!(q.check(), Ok(()));
        let bad = QualityParams {
            max_clipped: 2.0,
            ..q
        };
        assert_eq!(
            bad.check().unwrap_err().key,
            "recognition.quality.max_clipped"
        );
        let bad = QualityParams {
            min_pitch: 0.9,
            max_pitch: 0.1,
            ..q
        };
        assert_eq!(
            bad.check().unwrap_err().key,
            "recognition.quality.min_pitch"
        );
    }
}
