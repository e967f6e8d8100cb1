//! The real drivers (cargo feature `hw`): a USB UVC camera through V4L2 (`v4l` crate) and the
//! lock relay on a Raspberry Pi GPIO (`rppal`). Both fail with a clear message when the device is
//! absent, and both sit behind the traits of [`crate::hal`], so another driver (e.g. one built
//! on `gpiocdev`, since rppal is no longer maintained upstream) can replace them.

use crate::config::{CameraConfig, LockConfig, PixelFormat};
use crate::frame::{mjpeg_to_rgb, yuyv_to_rgb};
use crate::hal::{CameraError, CameraErrorKind, FrameSource, LockError, LockOutput, LockState};
use image::RgbImage;
use std::time::Duration;
use v4l::buffer::Type;
use v4l::io::mmap::Stream;
use v4l::io::traits::{CaptureStream, Stream as _};
use v4l::video::Capture;
use v4l::{Device, FourCC};

/// A V4L2 capture device delivering YUYV or MJPEG.
pub struct V4l2Camera {
    config: CameraConfig,
    open: Option<Open>,
}

struct Open {
    // Declared first: dropped before the device.
    stream: Stream<'static>,
    _device: Device,
    fourcc: FourCC,
    width: u32,
    height: u32,
}

fn err(
    kind: CameraErrorKind,
    what: &str,
    config: &CameraConfig,
    e: impl std::fmt::Display,
) -> CameraError {
    CameraError::new(kind, format!("{}: {what}: {e}", config.device.display()))
}

impl V4l2Camera {
    /// Opens the camera of `config`; fails if it is absent or offers neither YUYV nor MJPEG.
    pub fn open(config: &CameraConfig) -> Result<Self, CameraError> {
        let mut cam = Self {
            config: config.clone(),
            open: None,
        };
        cam.reopen()?;
        Ok(cam)
    }

    /// Like [`V4l2Camera::open`], but a camera that cannot be opened now (not plugged in yet) is
    /// logged and left to the daemon, which re-opens it with backoff until it appears.
    pub fn open_or_later(config: &CameraConfig) -> Self {
        let mut cam = Self {
            config: config.clone(),
            open: None,
        };
        if let Err(e) = cam.reopen() {
            tracing::error!("{e}; waiting for the camera");
        }
        cam
    }

    fn start(&self) -> Result<Open, CameraError> {
        let c = &self.config;
        let device = Device::with_path(&c.device).map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
                " (the daemon's user must be in the `video` group)"
            } else {
                ""
            };
            err(
                CameraErrorKind::Disconnected,
                "cannot open",
                c,
                format!("{e}{hint}"),
            )
        })?;
        let offered: Vec<FourCC> = device
            .enum_formats()
            .map_err(|e| err(CameraErrorKind::Other, "cannot list formats", c, e))?
            .into_iter()
            .map(|f| f.fourcc)
            .collect();
        let mjpg = FourCC::new(b"MJPG");
        let yuyv = FourCC::new(b"YUYV");
        let wanted = match c.format {
            PixelFormat::Mjpeg => vec![mjpg],
            PixelFormat::Yuyv => vec![yuyv],
            PixelFormat::Auto => vec![mjpg, yuyv],
        };
        let Some(fourcc) = wanted.into_iter().find(|f| offered.contains(f)) else {
            let list: Vec<String> = offered.iter().map(|f| f.to_string()).collect();
            return Err(err(
                CameraErrorKind::Other,
                "unsupported camera",
                c,
                format!(
                    "offers {} but facegate needs YUYV or MJPEG (a USB UVC camera; the Pi's CSI camera gives raw Bayer)",
                    list.join(", ")
                ),
            ));
        };
        let mut fmt = device
            .format()
            .map_err(|e| err(CameraErrorKind::Other, "cannot read the format", c, e))?;
        fmt.width = c.width;
        fmt.height = c.height;
        fmt.fourcc = fourcc;
        let fmt = device
            .set_format(&fmt)
            .map_err(|e| err(CameraErrorKind::Other, "cannot set the format", c, e))?;
        if fmt.fourcc != fourcc {
            return Err(err(CameraErrorKind::Other, "format refused", c, fmt.fourcc));
        }
        if (fmt.width, fmt.height) != (c.width, c.height) {
            tracing::warn!(
                "{}: asked for {}x{}, the camera gives {}x{}",
                c.device.display(),
                c.width,
                c.height,
                fmt.width,
                fmt.height
            );
        }
        if let Err(e) = device.set_params(&v4l::video::capture::Parameters::with_fps(c.fps)) {
            tracing::warn!("{}: cannot set {} fps: {e}", c.device.display(), c.fps);
        }
        let mut stream = Stream::with_buffers(&device, Type::VideoCapture, 4)
            .map_err(|e| err(CameraErrorKind::Other, "cannot map buffers", c, e))?;
        stream.set_timeout(Duration::from_secs_f64(c.timeout_seconds));
        tracing::info!(
            "{}: {}x{} {} at {} fps asked",
            c.device.display(),
            fmt.width,
            fmt.height,
            fourcc,
            c.fps
        );
        Ok(Open {
            stream,
            _device: device,
            fourcc,
            width: fmt.width,
            height: fmt.height,
        })
    }
}

fn close(open: Open) {
    let Open { mut stream, .. } = open;
    // v4l's Stream panics in Drop when STREAMOFF fails with anything but ENODEV; stop it here
    // first and keep a panic in drop from taking the daemon down.
    let _ = stream.stop();
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(stream)));
}

impl FrameSource for V4l2Camera {
    fn next_frame(&mut self, frame: &mut RgbImage) -> Result<(), CameraError> {
        let c = &self.config;
        let Some(open) = self.open.as_mut() else {
            return Err(err(
                CameraErrorKind::Disconnected,
                "not open",
                c,
                "re-opening",
            ));
        };
        let (buf, meta) = match open.stream.next() {
            Ok(x) => x,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                return Err(err(
                    CameraErrorKind::Timeout,
                    "no frame",
                    c,
                    format!("nothing within {} s", c.timeout_seconds),
                ));
            }
            Err(e) => return Err(err(CameraErrorKind::Disconnected, "capture failed", c, e)),
        };
        let used = (meta.bytesused as usize).min(buf.len());
        let data = &buf[..used];
        let converted = if open.fourcc == FourCC::new(b"MJPG") {
            mjpeg_to_rgb(data, frame)
        } else {
            yuyv_to_rgb(data, open.width, open.height, frame)
        };
        converted.map_err(|e| err(CameraErrorKind::BadFrame, "bad frame", c, e))
    }

    fn reopen(&mut self) -> Result<(), CameraError> {
        if let Some(open) = self.open.take() {
            close(open);
        }
        self.open = Some(self.start()?);
        Ok(())
    }
}

impl Drop for V4l2Camera {
    fn drop(&mut self) {
        if let Some(open) = self.open.take() {
            close(open);
        }
    }
}

/// The electrical level that puts the lock in `state`: the only place polarity is decided.
/// "Unlocked" energises the relay (the active level); "locked" leaves it released.
pub fn level(state: LockState, active_low: bool) -> rppal::gpio::Level {
    use rppal::gpio::Level::{High, Low};
    match (state, active_low) {
        (LockState::Unlocked, false) | (LockState::Locked, true) => High,
        (LockState::Locked, false) | (LockState::Unlocked, true) => Low,
    }
}

/// The relay on a GPIO pin of the Pi.
///
/// rppal resets a pin to its previous mode (an input, at boot) when dropped; this driver turns
/// that off so the pin keeps driving "locked" after the daemon exits. Nothing runs on SIGKILL or
/// power loss: then the wiring decides (see the README).
pub struct GpioRelay {
    pin: rppal::gpio::OutputPin,
    active_low: bool,
}

impl GpioRelay {
    /// Takes the pin of `config`, driven to "locked" from the first instant.
    pub fn open(config: &LockConfig) -> Result<Self, LockError> {
        let gpio = rppal::gpio::Gpio::new().map_err(|e| {
            LockError(format!(
                "cannot open the GPIO controller: {e} (no /dev/gpiomem*: not a Raspberry Pi, or the daemon's user is not in the `gpio` group)"
            ))
        })?;
        let pin = gpio
            .get(config.gpio)
            .map_err(|e| LockError(format!("GPIO{}: {e}", config.gpio)))?;
        let mut pin = match level(LockState::Locked, config.active_low) {
            rppal::gpio::Level::High => pin.into_output_high(),
            rppal::gpio::Level::Low => pin.into_output_low(),
        };
        pin.set_reset_on_drop(false);
        Ok(Self {
            pin,
            active_low: config.active_low,
        })
    }
}

impl LockOutput for GpioRelay {
    fn set(&mut self, state: LockState) -> Result<(), LockError> {
        self.pin.write(level(state, self.active_low));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rppal::gpio::Level::{High, Low};

    #[test]
    fn polarity() {
        assert_eq!(level(LockState::Unlocked, false), High);
        assert_eq!(level(LockState::Locked, false), Low);
        assert_eq!(level(LockState::Unlocked, true), Low);
        assert_eq!(level(LockState::Locked, true), High);
    }

    #[test]
    fn absent_devices_fail_with_a_clear_message() {
        let cfg = CameraConfig {
            device: "/dev/video-absent".into(),
            ..CameraConfig::default()
        };
        let e = V4l2Camera::open(&cfg).err().unwrap();
        assert_eq!(e.kind, CameraErrorKind::Disconnected);
        assert!(e.message.contains("/dev/video-absent"), "{e}");
        // This machine has no GPIO controller; a Pi would, and the test then only checks the pin.
        if !std::path::Path::new("/dev/gpiomem").exists()
            && !std::path::Path::new("/dev/gpiomem0").exists()
        {
            let e = GpioRelay::open(&LockConfig::default()).err().unwrap();
            assert!(e.0.contains("GPIO controller"), "{e}");
        }
    }
}
