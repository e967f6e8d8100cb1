//! Camera tamper detection: a covered (uniform) or blinded (saturated) camera for
//! `tamper.blind_seconds`, and a camera that stays gone for `tamper.camera_lost_seconds`, raise
//! `tamper` / `camera_lost` alarm events, distinct from a one-off `camera_error`.

use crate::problem::Problem;
use image::RgbImage;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `[tamper]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TamperConfig {
    /// Uniform or saturated frames for this long are a `tamper` event (0: off). An empty, evenly
    /// lit corridor is not uniform; a hand or tape over the lens, or a torch into it, is.
    pub blind_seconds: f64,
    /// A camera failing without a break for this long is a `camera_lost` event (0: off).
    pub camera_lost_seconds: f64,
}

impl Default for TamperConfig {
    fn default() -> Self {
        Self {
            blind_seconds: 0.0,
            camera_lost_seconds: 60.0,
        }
    }
}

impl TamperConfig {
    /// Checks the ranges; `Err(Problem::new(key, problem))`.
    pub fn check(&self) -> Result<(), Problem> {
        for (key, v) in [
            ("tamper.blind_seconds", self.blind_seconds),
            ("tamper.camera_lost_seconds", self.camera_lost_seconds),
        ] {
            if !(v.is_finite() && (0.0..=86_400.0).contains(&v)) {
                return Err(Problem::new(
                    key,
                    format!("must be 0 to 86400 seconds (got {v})"),
                ));
            }
        }
        Ok(())
    }
}

/// Why a frame shows nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blind {
    /// Almost one grey level everywhere: the lens is covered (or the image is black).
    Covered,
    /// Nearly all pixels at full brightness: a light shone into the lens.
    Saturated,
}

impl Blind {
    /// Its name in the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Blind::Covered => "covered",
            Blind::Saturated => "saturated",
        }
    }
}

/// Luma standard deviation under which a frame is uniform (sensor noise is 1 to 3 levels).
const UNIFORM_STD: f64 = 4.0;
/// Fraction of samples at or above [`SATURATED_LEVEL`] that makes a frame saturated.
const SATURATED_SHARE: f64 = 0.9;
const SATURATED_LEVEL: u8 = 250;

/// Whether `frame` shows nothing: judged on a grid of about 4000 samples, so it costs
/// microseconds next to detection.
pub fn blind(frame: &RgbImage) -> Option<Blind> {
    let (w, h) = frame.dimensions();
    if w == 0 || h == 0 {
        return None;
    }
    let step = ((u64::from(w) * u64::from(h) / 4096) as f64)
        .sqrt()
        .max(1.0) as u32;
    let (mut n, mut sum, mut sq, mut bright) = (0u64, 0f64, 0f64, 0u64);
    for y in (0..h).step_by(step as usize) {
        for x in (0..w).step_by(step as usize) {
            let p = frame.get_pixel(x, y).0;
            let l = (u32::from(p[0]) * 77 + u32::from(p[1]) * 150 + u32::from(p[2]) * 29) >> 8;
            n += 1;
            sum += f64::from(l);
            sq += f64::from(l * l);
            bright += u64::from(l >= u32::from(SATURATED_LEVEL));
        }
    }
    let n = n as f64;
    let mean = sum / n;
    let std = (sq / n - mean * mean).max(0.0).sqrt();
    if bright as f64 >= SATURATED_SHARE * n {
        Some(Blind::Saturated)
    } else if std < UNIFORM_STD {
        Some(Blind::Covered)
    } else {
        None
    }
}

/// What the watch saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TamperEvent {
    /// The camera has shown nothing for the configured time.
    Tamper(Blind),
    /// The camera shows a scene again after a tamper.
    Cleared,
    /// The camera has failed for the configured time.
    CameraLost,
}

/// Watches frames and camera failures over time.
#[derive(Debug, Clone)]
pub struct TamperWatch {
    blind_for: Option<Duration>,
    lost_for: Option<Duration>,
    blind_since: Option<Duration>,
    raised: bool,
    failing_since: Option<Duration>,
    lost_raised: bool,
}

impl TamperWatch {
    /// A watch as `[tamper]` says.
    pub fn new(c: &TamperConfig) -> Self {
        let secs = |s: f64| (s > 0.0).then(|| Duration::from_secs_f64(s));
        Self {
            blind_for: secs(c.blind_seconds),
            lost_for: secs(c.camera_lost_seconds),
            blind_since: None,
            raised: false,
            failing_since: None,
            lost_raised: false,
        }
    }

    /// Whether frames are judged at all (skips the work when off).
    pub fn watches_frames(&self) -> bool {
        self.blind_for.is_some()
    }

    /// A frame arrived at `now`; `blind` is what [`blind`] says of it.
    pub fn frame(&mut self, now: Duration, blind: Option<Blind>) -> Option<TamperEvent> {
        self.failing_since = None;
        self.lost_raised = false;
        let limit = self.blind_for?;
        match blind {
            None => {
                self.blind_since = None;
                std::mem::take(&mut self.raised).then_some(TamperEvent::Cleared)
            }
            Some(b) => {
                let since = *self.blind_since.get_or_insert(now);
                if !self.raised && now.saturating_sub(since) >= limit {
                    self.raised = true;
                    return Some(TamperEvent::Tamper(b));
                }
                None
            }
        }
    }

    /// The camera failed at `now` (stall, unplug); a bad single frame is not a failure.
    pub fn failed(&mut self, now: Duration) -> Option<TamperEvent> {
        let limit = self.lost_for?;
        let since = *self.failing_since.get_or_insert(now);
        if !self.lost_raised && now.saturating_sub(since) >= limit {
            self.lost_raised = true;
            return Some(TamperEvent::CameraLost);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: f64) -> Duration {
        Duration::from_secs_f64(v)
    }

    fn noise(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            let v = ((x * 31 + y * 17) % 200) as u8 + 20;
            image::Rgb([v, v / 2 + 10, v])
        })
    }

    #[test]
    fn covered_and_saturated_frames_are_told_from_a_scene() {
        assert_eq!(blind(&RgbImage::new(640, 480)), Some(Blind::Covered));
        let grey = RgbImage::from_pixel(640, 480, image::Rgb([128, 128, 128]));
        assert_eq!(blind(&grey), Some(Blind::Covered));
        let white = RgbImage::from_pixel(640, 480, image::Rgb([255, 255, 255]));
        assert_eq!(blind(&white), Some(Blind::Saturated));
        assert_eq!(blind(&noise(640, 480)), None);
    }

    #[test]
    fn tamper_after_the_time_once_and_cleared_by_a_scene() {
        let mut w = TamperWatch::new(&TamperConfig {
            blind_seconds: 5.0,
            camera_lost_seconds: 0.0,
        });
        assert_eq!(w.frame(s(0.0), Some(Blind::Covered)), None);
        assert_eq!(w.frame(s(4.9), Some(Blind::Covered)), None);
        assert_eq!(
            w.frame(s(5.0), Some(Blind::Covered)),
            Some(TamperEvent::Tamper(Blind::Covered))
        );
        assert_eq!(w.frame(s(9.0), Some(Blind::Covered)), None);
        assert_eq!(w.frame(s(10.0), None), Some(TamperEvent::Cleared));
        // A short cover (a head very close) is nothing.
        assert_eq!(w.frame(s(11.0), Some(Blind::Covered)), None);
        assert_eq!(w.frame(s(12.0), None), None);
        assert_eq!(w.failed(s(100.0)), None);
    }

    #[test]
    fn camera_lost_after_the_time_once_per_outage() {
        let mut w = TamperWatch::new(&TamperConfig::default());
        assert!(!w.watches_frames());
        assert_eq!(w.failed(s(0.0)), None);
        assert_eq!(w.failed(s(59.0)), None);
        assert_eq!(w.failed(s(60.0)), Some(TamperEvent::CameraLost));
        assert_eq!(w.failed(s(70.0)), None);
        assert_eq!(w.frame(s(71.0), None), None);
        assert_eq!(w.failed(s(80.0)), None);
        assert_eq!(w.failed(s(140.0)), Some(TamperEvent::CameraLost));
    }
}
