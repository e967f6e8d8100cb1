//! The camera's settings (`[camera]`): which device or CSI camera, size, rate, format, stall
//! time-out. Read by the drivers (`hw`, `rpicam`) and the presentation cues' NIR camera.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Pixel format asked of the camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PixelFormat {
    /// MJPEG if the camera offers it at the size asked for, else YUYV.
    Auto,
    /// Motion JPEG.
    Mjpeg,
    /// YUYV 4:2:2.
    Yuyv,
}

/// Where the daemon's frames come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CameraSource {
    /// A V4L2 device (USB UVC camera): `camera.device`.
    #[default]
    V4l2,
    /// The Raspberry Pi CSI camera through an `rpicam-vid` child process (`camera.rpicam_command`).
    Rpicam,
}

/// `[camera]`: the V4L2 camera or the Pi's CSI camera (ignored by the simulator).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CameraConfig {
    /// The V4L2 device.
    pub device: PathBuf,
    /// Frame width asked for.
    pub width: u32,
    /// Frame height asked for.
    pub height: u32,
    /// Frames per second asked for.
    pub fps: u32,
    /// Pixel format.
    pub format: PixelFormat,
    /// A frame not delivered within this many seconds is a stall.
    pub timeout_seconds: f64,
    /// `v4l2` (default) or `rpicam`.
    pub source: CameraSource,
    /// For `rpicam`: the program and its extra arguments (e.g. `["rpicam-vid", "--rotation",
    /// "180"]`); the size, rate and MJPEG-to-stdout arguments are appended.
    pub rpicam_command: Vec<String>,
}

impl Default for CameraConfig {
    fn default() -> Self {
        Self {
            device: PathBuf::from("/dev/video0"),
            width: 640,
            height: 480,
            fps: 15,
            format: PixelFormat::Auto,
            timeout_seconds: 1.0,
            source: CameraSource::V4l2,
            rpicam_command: vec!["rpicam-vid".into()],
        }
    }
}
