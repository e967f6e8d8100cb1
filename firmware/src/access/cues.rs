//! Presentation-attack cues besides the liveness networks: the near-infrared camera's view of
//! the face (`[liveness.nir]`), a paper or screen border framing the face (`[liveness]
//! border`) and planar motion of the landmarks over a track (`[liveness] motion`). Each is one more condition of the acceptance rule's liveness stage, independent of
//! the networks' level; see docs/security.md, "Presentation attacks".

use crate::camera::CameraConfig;
use crate::hal::CameraError;
use crate::hal::Captured;
use crate::vision::detect::{BBox, Detection};
use crate::Pipeline;
use image::RgbImage;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Judged by the acceptance rule, which is below the cues: defined there.
pub use crate::access::acceptance::Cue;

/// `[liveness]` in the config.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LivenessConfig {
    /// The networks' operating point.
    pub level: crate::vision::liveness::Level,
    /// `[liveness.nir]`: a near-infrared camera must also see the face (absent: no NIR mode).
    pub nir: Option<NirConfig>,
    /// Refuse a face framed by straight edges (a print's paper edge, a phone's bezel).
    pub border: bool,
    /// Refuse a face whose landmarks, over a track, tilt as a flat picture (no nose parallax).
    pub motion: bool,
}

impl LivenessConfig {
    /// Whether any presentation cue (`crate::access::cues`) is on.
    pub fn cues_on(&self) -> bool {
        self.nir.is_some() || self.border || self.motion
    }
}

/// `[liveness.nir]`: a second camera, sensitive to near infrared (Pi NoIR camera or a USB IR
/// camera with an 850 nm illuminator), looking at the same place as the colour camera.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NirConfig {
    /// The NIR camera: the same keys as `[camera]` (for a second CSI camera, e.g.
    /// `source = "rpicam"`, `rpicam_command = ["rpicam-vid", "--camera", "1"]`).
    pub camera: CameraConfig,
    /// The newest NIR frame is used only if taken at most this long before or after the colour
    /// frame.
    pub max_age_seconds: f64,
    /// Calibration, colour to NIR pixels: `x_nir = x * scale + offset_x` (same for y).
    pub scale: f32,
    /// See `scale`.
    pub offset_x: f32,
    /// See `scale`.
    pub offset_y: f32,
    /// How far the NIR face may be from the mapped colour face: its centre within this fraction
    /// of the face size, its size within a factor `1 + 2 * tolerance`.
    pub tolerance: f32,
    /// Smallest standard deviation of the grey levels (0..255) in the NIR face box: a lit face
    /// has shading and features, a dark screen has none.
    pub min_contrast: f32,
}

impl Default for NirConfig {
    fn default() -> Self {
        Self {
            camera: CameraConfig {
                device: "/dev/video2".into(),
                ..CameraConfig::default()
            },
            max_age_seconds: 0.25,
            scale: 1.0,
            offset_x: 0.0,
            offset_y: 0.0,
            tolerance: 0.3,
            min_contrast: 12.0,
        }
    }
}

impl NirConfig {
    /// The first value out of range, as (key, problem).
    pub fn problem(&self) -> Option<(&'static str, String)> {
        if !(self.max_age_seconds.is_finite() && (0.01..=5.0).contains(&self.max_age_seconds)) {
            return Some((
                "liveness.nir.max_age_seconds",
                format!("must be 0.01 to 5 (got {})", self.max_age_seconds),
            ));
        }
        if !(self.scale.is_finite() && (0.1..=10.0).contains(&self.scale)) {
            return Some((
                "liveness.nir.scale",
                format!("must be 0.1 to 10 (got {})", self.scale),
            ));
        }
        if !(self.offset_x.is_finite() && self.offset_y.is_finite()) {
            return Some(("liveness.nir.offset_x/offset_y", "must be finite".into()));
        }
        if !(self.tolerance.is_finite() && (0.05..=1.0).contains(&self.tolerance)) {
            return Some((
                "liveness.nir.tolerance",
                format!("must be 0.05 to 1 (got {})", self.tolerance),
            ));
        }
        if !(self.min_contrast.is_finite() && (0.0..=128.0).contains(&self.min_contrast)) {
            return Some((
                "liveness.nir.min_contrast",
                format!("must be 0 to 128 (got {})", self.min_contrast),
            ));
        }
        None
    }

    /// The colour face box `b` in NIR pixels.
    pub fn map(&self, b: &BBox) -> BBox {
        BBox {
            x: b.x * self.scale + self.offset_x,
            y: b.y * self.scale + self.offset_y,
            w: b.w * self.scale,
            h: b.h * self.scale,
        }
    }
}

/// The cues a door runs, with the state they keep between frames (the newest NIR frame).
#[derive(Debug, Default)]
pub struct Cues {
    nir: Option<NirConfig>,
    border: bool,
    motion: Option<MotionTrack>,
    newest_nir: Option<Captured>,
}

impl Cues {
    /// The cues `[liveness]` turns on.
    pub fn new(nir: Option<NirConfig>, border: bool, motion: bool) -> Self {
        Self {
            nir,
            border,
            motion: motion.then(MotionTrack::default),
            newest_nir: None,
        }
    }

    /// Whether any cue is on (then a face must pass them all to be let in).
    pub fn any(&self) -> bool {
        self.nir.is_some() || self.border || self.motion.is_some()
    }

    /// Whether NIR mode is on.
    pub fn nir_on(&self) -> bool {
        self.nir.is_some()
    }

    /// A frame from the NIR camera; the newest is kept.
    pub fn offer_nir(&mut self, frame: Captured) {
        if self
            .newest_nir
            .as_ref()
            .is_none_or(|n| frame.taken >= n.taken)
        {
            self.newest_nir = Some(frame);
        }
    }

    /// The cues' verdict on the face `det` of the colour frame `frame` taken at `taken`.
    pub fn check(
        &mut self,
        pipeline: &mut Pipeline,
        frame: &RgbImage,
        taken: Duration,
        det: &Detection,
    ) -> Result<(), Cue> {
        let face = &det.bbox;
        // Tracked first, so the history stays whole whatever the other cues say.
        let planar = self.motion.as_mut().and_then(|m| m.observe(det));
        if let Some(p) = &self.nir {
            let max_age = Duration::from_secs_f64(p.max_age_seconds);
            let nir = self
                .newest_nir
                .as_ref()
                .filter(|n| n.taken.abs_diff(taken) <= max_age)
                .ok_or(Cue::NirMissing)?;
            nir_face(pipeline, &nir.image, face, p)?;
        }
        if self.border && border(frame, face) {
            return Err(Cue::Border);
        }
        planar.map_or(Ok(()), Err)
    }
}

/// Grey level of a pixel (ITU-R BT.601 luma).
fn luma(p: &image::Rgb<u8>) -> f32 {
    0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2])
}

/// Integer corners of `b` scaled by `k` about its centre, clipped to a `w` x `h` image; `None`
/// when nothing is left.
fn region(b: &BBox, k: f32, w: u32, h: u32) -> Option<(u32, u32, u32, u32)> {
    let (cx, cy) = (b.x + b.w / 2.0, b.y + b.h / 2.0);
    let (hw, hh) = (b.w * k / 2.0, b.h * k / 2.0);
    let x0 = (cx - hw).max(0.0).floor();
    let y0 = (cy - hh).max(0.0).floor();
    let x1 = (cx + hw).min(w as f32).ceil();
    let y1 = (cy + hh).min(h as f32).ceil();
    // NaN fails both comparisons: no region.
    if x1 - x0 >= 2.0 && y1 - y0 >= 2.0 {
        Some((x0 as u32, y0 as u32, (x1 - x0) as u32, (y1 - y0) as u32))
    } else {
        None
    }
}

/// Whether the NIR frame shows a plausible face at the place of the colour face `face`: a face
/// detected near the mapped box, of about its size, with IR shading (contrast).
pub fn nir_face(
    pipeline: &mut Pipeline,
    nir: &RgbImage,
    face: &BBox,
    p: &NirConfig,
) -> Result<(), Cue> {
    let m = p.map(face);
    // Only the neighbourhood of the mapped box is searched: cheaper than the whole frame.
    let (x0, y0, w, h) = region(&m, 2.0, nir.width(), nir.height()).ok_or(Cue::NirNoFace)?;
    let crop = image::imageops::crop_imm(nir, x0, y0, w, h).to_image();
    // The largest face there (the door's own detector; a failure is no face).
    let found = pipeline.detect_largest(&crop).ok().flatten();
    let (mcx, mcy) = (m.x + m.w / 2.0, m.y + m.h / 2.0);
    let max_ratio = (1.0 + 2.0 * p.tolerance).ln();
    let at_place = found.iter().any(|d| {
        let b = &d.bbox;
        let (cx, cy) = (x0 as f32 + b.x + b.w / 2.0, y0 as f32 + b.y + b.h / 2.0);
        (cx - mcx).hypot(cy - mcy) <= p.tolerance * m.size()
            && (b.size() / m.size()).ln().abs() <= max_ratio
    });
    if !at_place {
        return Err(Cue::NirNoFace);
    }
    let (bx, by, bw, bh) = region(&m, 1.0, nir.width(), nir.height()).ok_or(Cue::NirNoFace)?;
    let (mut sum, mut sq, mut n) = (0.0f64, 0.0f64, 0.0f64);
    for y in by..by + bh {
        for x in bx..bx + bw {
            let v = f64::from(luma(nir.get_pixel(x, y)));
            sum += v;
            sq += v * v;
            n += 1.0;
        }
    }
    let mean = sum / n;
    let sd = (sq / n - mean * mean).max(0.0).sqrt();
    if sd < f64::from(p.min_contrast) {
        return Err(Cue::NirFlat);
    }
    Ok(())
}

/// Smallest Sobel response (on 0..255 grey) of a pixel on a border edge.
const EDGE_MIN: f32 = 80.0;
/// Share of a candidate line's pixels that must be edge pixels across the line.
const LINE_COVER: f32 = 0.75;
/// Sides of the face (of 4) with such a line to call it framed.
const MIN_SIDES: usize = 3;

/// Whether straight edges frame the face in box `face`: on at least three of its four sides,
/// between 0.6 and 2 face sizes from its centre, a line (tilted at most about 8 degrees) along
/// which nearly every pixel is a strong edge across it, and at least a face size long. A print's
/// paper edge or a phone's bezel does this; a head in a room seldom has such lines on three
/// sides. Worked at half resolution (a border is a large structure).
pub fn border(frame: &RgbImage, face: &BBox) -> bool {
    let Some((x0, y0, w, h)) = region(face, 4.0, frame.width(), frame.height()) else {
        return false;
    };
    // Half resolution: each cell the mean of 2x2 pixels.
    let (w, h) = ((w / 2) as usize, (h / 2) as usize);
    if w < 3 || h < 3 {
        return false;
    }
    let mut grey = vec![0.0f32; w * h];
    for (i, g) in grey.iter_mut().enumerate() {
        let (x, y) = (x0 + 2 * (i % w) as u32, y0 + 2 * (i / w) as u32);
        *g = (luma(frame.get_pixel(x, y))
            + luma(frame.get_pixel(x + 1, y))
            + luma(frame.get_pixel(x, y + 1))
            + luma(frame.get_pixel(x + 1, y + 1)))
            / 4.0;
    }
    let at = |x: usize, y: usize| grey[y * w + x];
    // Edge maps: 1 where a strong Sobel response runs across a vertical (resp. horizontal) line.
    let mut vert = vec![false; w * h];
    let mut horiz = vec![false; w * h];
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let gx = (at(x + 1, y - 1) + 2.0 * at(x + 1, y) + at(x + 1, y + 1))
                - (at(x - 1, y - 1) + 2.0 * at(x - 1, y) + at(x - 1, y + 1));
            let gy = (at(x - 1, y + 1) + 2.0 * at(x, y + 1) + at(x + 1, y + 1))
                - (at(x - 1, y - 1) + 2.0 * at(x, y - 1) + at(x + 1, y - 1));
            vert[y * w + x] = gx.abs() >= EDGE_MIN && gx.abs() > gy.abs();
            horiz[y * w + x] = gy.abs() >= EDGE_MIN && gy.abs() > gx.abs();
        }
    }
    let s = (face.size() / 2.0).max(1.0);
    let (cx, cy) = (
        (face.x + face.w / 2.0 - x0 as f32) / 2.0,
        (face.y + face.h / 2.0 - y0 as f32) / 2.0,
    );
    // A side: lines `across = c + t * (along - centre)`, `across` measured from the face centre
    // outward, over `along` within 1.5 face sizes of the centre.
    let side = |vertical: bool, sign: f32| -> bool {
        let (c_across, c_along, n_across, n_along) = if vertical {
            (cx, cy, w, h)
        } else {
            (cy, cx, h, w)
        };
        let along0 = (c_along - 1.5 * s).max(1.0) as usize;
        let along1 = ((c_along + 1.5 * s).max(0.0) as usize).min(n_along - 1);
        if along1 <= along0 || ((along1 - along0) as f32) < s {
            return false;
        }
        let edge = |across: usize, along: usize| {
            if vertical {
                vert[along * w + across]
            } else {
                horiz[across * w + along]
            }
        };
        let mut d = 0.6 * s;
        while d <= 2.0 * s {
            for k in -6..=6 {
                let t = k as f32 * 0.025;
                let (mut hits, mut total) = (0usize, 0usize);
                // Every other cell along the line: enough to tell a line from texture.
                for along in (along0..along1).step_by(2) {
                    let across = c_across + sign * d + t * (along as f32 - c_along);
                    if across >= 1.0 && across < (n_across - 1) as f32 {
                        total += 1;
                        // The edge may fall on either cell next to the line.
                        let a = across as usize;
                        if edge(a, along) || edge(a + 1, along) {
                            hits += 1;
                        }
                    }
                }
                // At least a face size of the line in view, nearly all of it edge.
                if total as f32 * 2.0 >= s && hits as f32 >= LINE_COVER * total as f32 {
                    return true;
                }
            }
            d += 1.0;
        }
        false
    };
    let sides = [(true, -1.0), (true, 1.0), (false, -1.0), (false, 1.0)]
        .into_iter()
        .filter(|&(v, sign)| side(v, sign))
        .count();
    sides >= MIN_SIDES
}

/// Frames of a track kept for the motion cue.
const MOTION_FRAMES: usize = 30;
/// Least tilt (anisotropy of the eyes-and-mouth plane's affine change, `1 / cos(angle) - 1`)
/// for the motion cue to judge: about 18 degrees. Less motion says nothing.
const MIN_TILT: f32 = 0.05;
/// Most nose parallax (its distance from where the eyes-and-mouth plane puts it, in eye
/// distances) of a flat picture.
const MAX_PARALLAX: f32 = 0.04;

/// The landmarks of the current track (faces whose boxes overlap from frame to frame).
#[derive(Debug, Default)]
pub struct MotionTrack {
    history: std::collections::VecDeque<[[f32; 2]; 5]>,
    last_box: Option<BBox>,
}

impl MotionTrack {
    /// Adds the face `det` of the next frame; `Some(PlanarMotion)` once the track shows a tilt
    /// that moved the nose as a plane would.
    pub fn observe(&mut self, det: &Detection) -> Option<Cue> {
        if !self
            .last_box
            .is_some_and(|b| crate::access::decision::same_track(&b, &det.bbox))
        {
            self.history.clear();
        }
        self.last_box = Some(det.bbox);
        if self.history.len() == MOTION_FRAMES {
            self.history.pop_front();
        }
        self.history.push_back(det.landmarks);
        let now = &det.landmarks;
        self.history
            .iter()
            .any(|then| planar(then, now).is_some_and(|flat| flat))
            .then_some(Cue::PlanarMotion)
    }
}

/// Between two sets of landmarks (left eye, right eye, nose, mouth corners): `Some(true)` when
/// the eyes-and-mouth plane tilted (by [`MIN_TILT`]) and the nose stayed on it (within
/// [`MAX_PARALLAX`]), `Some(false)` when it tilted and the nose did not, `None` without tilt.
pub fn planar(a: &[[f32; 2]; 5], b: &[[f32; 2]; 5]) -> Option<bool> {
    // Least-squares affine map of the four outer points from `a` to `b`.
    let outer = [0, 1, 3, 4];
    let mean = |p: &[[f32; 2]; 5], k: usize| outer.iter().map(|&i| p[i][k]).sum::<f32>() / 4.0;
    let (ax, ay, bx, by) = (mean(a, 0), mean(a, 1), mean(b, 0), mean(b, 1));
    let (mut sxx, mut sxy, mut syy) = (0.0f32, 0.0f32, 0.0f32);
    let (mut ux, mut uy, mut vx, mut vy) = (0.0f32, 0.0f32, 0.0f32, 0.0f32);
    for &i in &outer {
        let (px, py) = (a[i][0] - ax, a[i][1] - ay);
        let (qx, qy) = (b[i][0] - bx, b[i][1] - by);
        sxx += px * px;
        sxy += px * py;
        syy += py * py;
        ux += qx * px;
        uy += qx * py;
        vx += qy * px;
        vy += qy * py;
    }
    let det = sxx * syy - sxy * sxy;
    if det.abs() < 1e-6 {
        return None;
    }
    // A = [[m00, m01], [m10, m11]] = [[ux, uy], [vx, vy]] * inverse([[sxx, sxy], [sxy, syy]]).
    let (i00, i01, i11) = (syy / det, -sxy / det, sxx / det);
    let (m00, m01) = (ux * i00 + uy * i01, ux * i01 + uy * i11);
    let (m10, m11) = (vx * i00 + vy * i01, vx * i01 + vy * i11);
    // Singular values of A: their ratio says how much the plane foreshortened one way.
    let (p, q) = (m00 * m00 + m10 * m10, m01 * m01 + m11 * m11);
    let r = m00 * m01 + m10 * m11;
    let tr = p + q;
    let disc = ((p - q).powi(2) + 4.0 * r * r).sqrt();
    let (s1, s2) = (
        ((tr + disc) / 2.0).sqrt(),
        ((tr - disc) / 2.0).max(0.0).sqrt(),
    );
    // Also false for NaN (degenerate landmarks): no verdict.
    let tilted = s2 > 0.0 && s1 / s2 - 1.0 >= MIN_TILT;
    if !tilted {
        return None;
    }
    let (nx, ny) = (a[2][0] - ax, a[2][1] - ay);
    let (px, py) = (bx + m00 * nx + m01 * ny, by + m10 * nx + m11 * ny);
    let eyes = (b[1][0] - b[0][0]).hypot(b[1][1] - b[0][1]).max(1.0);
    let parallax = (b[2][0] - px).hypot(b[2][1] - py) / eyes;
    Some(parallax <= MAX_PARALLAX)
}

/// Keeps the NIR camera's health for the audit log and the status line: the error that started
/// a failure, and whether frames came again.
#[derive(Debug, Default)]
pub struct NirHealth {
    /// The failure's message and when it started, while the NIR camera fails.
    pub lost: Option<(Duration, String)>,
}

/// What to record about the NIR camera.
#[derive(Debug, Clone, PartialEq)]
pub enum NirNews {
    /// It failed (the message, prefixed `NIR camera: `).
    Failed(String),
    /// Frames come again.
    Recovered,
}

impl NirHealth {
    /// A read of the NIR camera at `now`: what to record, if anything (only the start and the
    /// end of a failure, not each failed read).
    pub fn read(&mut self, now: Duration, r: Result<(), &CameraError>) -> Option<NirNews> {
        match (r, &self.lost) {
            (Ok(()), None) => None,
            (Ok(()), Some(_)) => {
                self.lost = None;
                Some(NirNews::Recovered)
            }
            (Err(e), None) => {
                let msg = format!("NIR camera: {e}");
                self.lost = Some((now, msg.clone()));
                Some(NirNews::Failed(msg))
            }
            (Err(_), Some(_)) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    fn bbox(x: f32, y: f32, w: f32, h: f32) -> BBox {
        BBox { x, y, w, h }
    }

    #[test]
    fn the_calibration_maps_colour_boxes_to_nir_pixels() {
        let p = NirConfig {
            scale: 0.5,
            offset_x: 10.0,
            offset_y: -4.0,
            ..NirConfig::default()
        };
        assert_eq!(
            p.map(&bbox(100.0, 50.0, 80.0, 60.0)),
            bbox(60.0, 21.0, 40.0, 30.0)
        );
        assert!(NirConfig::default().problem().is_none());
        let bad = NirConfig {
            scale: 0.0,
            ..NirConfig::default()
        };
        assert_eq!(bad.problem().unwrap().0, "liveness.nir.scale");
    }

    #[test]
    fn a_bright_frame_around_the_face_is_a_border_and_a_plain_scene_is_not() {
        // A face-sized blob on a grey wall: no border.
        let face = bbox(270.0, 190.0, 100.0, 100.0);
        let mut scene = RgbImage::from_pixel(640, 480, Rgb([118, 118, 118]));
        for y in 190..290 {
            for x in 270..370 {
                scene.put_pixel(x, y, Rgb([180, 150, 130]));
            }
        }
        assert!(!border(&scene, &face));
        // The same, on a white sheet whose edges are 1.2 face sizes from the face centre.
        let mut print = RgbImage::from_pixel(640, 480, Rgb([118, 118, 118]));
        for y in 120..360 {
            for x in 200..440 {
                print.put_pixel(x, y, Rgb([235, 235, 230]));
            }
        }
        for y in 190..290 {
            for x in 270..370 {
                print.put_pixel(x, y, *scene.get_pixel(x, y));
            }
        }
        assert!(border(&print, &face));
        // Only two sides in view (the sheet runs out of the frame left and below): not framed.
        let mut cut = RgbImage::from_pixel(640, 480, Rgb([118, 118, 118]));
        for y in 120..480 {
            for x in 0..440 {
                cut.put_pixel(x, y, Rgb([235, 235, 230]));
            }
        }
        let face2 = bbox(270.0, 300.0, 100.0, 100.0);
        assert!(!border(&cut, &face2));
    }

    /// A face's landmarks in 3D (x right, y down, z towards the camera; eye distance 60), seen
    /// by a pinhole camera (focal 800, at 1000) after a turn of `yaw` degrees about the vertical
    /// axis through the face; `flat`: the nose pressed into the plane of the others (a photo).
    fn seen(yaw: f32, flat: bool) -> [[f32; 2]; 5] {
        let pts = [
            [-30.0, -20.0, 0.0],
            [30.0, -20.0, 0.0],
            [0.0, 10.0, if flat { 0.0 } else { 35.0 }],
            [-22.0, 40.0, 0.0],
            [22.0, 40.0, 0.0],
        ];
        let (s, c) = yaw.to_radians().sin_cos();
        pts.map(|[x, y, z]| {
            let (x, z) = (x * c + z * s, -x * s + z * c);
            let k = 800.0 / (1000.0 - z);
            [320.0 + x * k, 240.0 + y * k]
        })
    }

    #[test]
    fn a_turning_head_shows_nose_parallax_and_a_tilted_photo_does_not() {
        // A flat picture turned by 25 degrees: planar.
        assert_eq!(planar(&seen(0.0, true), &seen(25.0, true)), Some(true));
        // A head turning as much: the nose leaves the plane.
        assert_eq!(planar(&seen(0.0, false), &seen(25.0, false)), Some(false));
        // Too little motion to say anything.
        assert_eq!(planar(&seen(0.0, true), &seen(3.0, true)), None);
        // Over a track: the tilted photo is flagged once it has tilted enough.
        let mut m = MotionTrack::default();
        let face = |yaw: f32, flat: bool| Detection {
            bbox: BBox {
                x: 270.0,
                y: 190.0,
                w: 100.0,
                h: 100.0,
            },
            score: 1.0,
            landmarks: seen(yaw, flat),
        };
        let flags: Vec<bool> = (0..6)
            .map(|k| m.observe(&face(k as f32 * 6.0, true)).is_some())
            .collect();
        assert_eq!(flags, [false, false, false, true, true, true]);
        let mut m = MotionTrack::default();
        assert!((0..6).all(|k| m.observe(&face(k as f32 * 6.0, false)).is_none()));
    }

    #[test]
    fn nir_failures_are_recorded_once_and_the_recovery_too() {
        let mut h = NirHealth::default();
        let e = CameraError::new(crate::hal::CameraErrorKind::Disconnected, "gone");
        assert_eq!(h.read(Duration::ZERO, Ok(())), None);
        assert_eq!(
            h.read(Duration::from_secs(1), Err(&e)),
            Some(NirNews::Failed("NIR camera: gone".into()))
        );
        assert_eq!(h.read(Duration::from_secs(2), Err(&e)), None);
        assert!(h.lost.is_some());
        assert_eq!(
            h.read(Duration::from_secs(3), Ok(())),
            Some(NirNews::Recovered)
        );
        assert!(h.lost.is_none());
    }
}
