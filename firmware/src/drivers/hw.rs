//! The real drivers (cargo feature `hw`): a USB UVC camera through V4L2 (`v4l` crate) and the
//! lock relay on a GPIO line through the Linux GPIO character device (`gpiocdev`). Both fail with
//! a clear message when the device is absent, and both sit behind the traits of [`crate::hal`].

use crate::camera::{CameraConfig, PixelFormat};
use crate::door::lockpin::LockPin;
use crate::hal::{CameraError, CameraErrorKind, FrameSource, LockError, LockOutput, LockState};
use crate::vision::frame::{mjpeg_to_rgb, yuyv_to_rgb};
use gpiocdev::line::Value;
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
    /// The driver's sequence number of the last frame.
    sequence: Option<u64>,
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
            sequence: None,
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
            sequence: None,
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
        self.sequence = Some(u64::from(meta.sequence));
        let used = (meta.bytesused as usize).min(buf.len());
        let data = &buf[..used];
        let converted = if open.fourcc == FourCC::new(b"MJPG") {
            mjpeg_to_rgb(data, frame)
        } else {
            yuyv_to_rgb(data, open.width, open.height, frame)
        };
        converted.map_err(|e| err(CameraErrorKind::BadFrame, "bad frame", c, e))
    }

    fn sequence(&self) -> Option<u64> {
        self.sequence
    }

    fn reopen(&mut self) -> Result<(), CameraError> {
        self.sequence = None;
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
/// `Active` is the pin driven high (the line is requested without the active-low flag).
pub fn level(state: LockState, active_low: bool) -> Value {
    match (state, active_low) {
        (LockState::Unlocked, false) | (LockState::Locked, true) => Value::Active,
        (LockState::Locked, false) | (LockState::Unlocked, true) => Value::Inactive,
    }
}

/// Linux's EBUSY: the line is already requested by another process.
const EBUSY: i32 = 16;

/// The relay on a GPIO line, through the Linux GPIO character device (`/dev/gpiochip*`).
///
/// The line request is exclusive: a second requester (a second `facegated`) gets "busy" and
/// refuses to start instead of fighting for the pin. Every `set` reads the level back from the
/// kernel. When the process exits the line is released: the Raspberry Pi kernels keep a released
/// output at its last level, and the boot-time state comes from `config.txt` (see
/// docs/installing.md, "Wiring the lock").
pub struct GpioRelay {
    request: gpiocdev::Request,
    offset: u32,
    pin: LockPin,
}

impl GpioRelay {
    /// Finds the line named `GPIO<n>` and requests it as an output driven to "locked" from the
    /// first instant.
    pub fn open(pin: LockPin) -> Result<Self, LockError> {
        let name = format!("GPIO{}", pin.gpio);
        let Some(line) = gpiocdev::find_named_line(&name) else {
            let chips = gpiocdev::chip::chips().unwrap_or_default();
            return Err(LockError(if chips.is_empty() {
                format!(
                    "{name}: no GPIO chip (/dev/gpiochip*) is available: not a Raspberry Pi, or the daemon's user is not in the `gpio` group"
                )
            } else {
                let list: Vec<String> = chips.iter().map(|c| c.display().to_string()).collect();
                format!(
                    "{name}: no line of that name on {} (or they cannot be opened: the daemon's user must be in the `gpio` group)",
                    list.join(", ")
                )
            }));
        };
        let request = gpiocdev::Request::builder()
            .on_chip(&line.chip)
            .with_consumer("facegated")
            .with_line(line.info.offset)
            .as_output(level(LockState::Locked, pin.active_low))
            .request()
            .map_err(|e| match e {
                gpiocdev::Error::Uapi(_, gpiocdev_uapi::Error::Os(gpiocdev_uapi::Errno(EBUSY))) => {
                    LockError(format!(
                        "{name} is already in use by another process (is a second facegated running?)"
                    ))
                }
                e => LockError(format!("{name} on {}: {e}", line.chip.display())),
            })?;
        let mut relay = Self {
            request,
            offset: line.info.offset,
            pin,
        };
        relay.check(LockState::Locked)?;
        Ok(relay)
    }

    /// Reads the line back and compares it with what `state` needs.
    fn check(&mut self, state: LockState) -> Result<(), LockError> {
        let want = level(state, self.pin.active_low);
        let got = self
            .request
            .value(self.offset)
            .map_err(|e| LockError(format!("GPIO{}: cannot read back: {e}", self.pin.gpio)))?;
        if got != want {
            return Err(LockError(format!(
                "GPIO{} reads {got:?} after being driven {want:?} ({state:?})",
                self.pin.gpio
            )));
        }
        Ok(())
    }
}

impl LockOutput for GpioRelay {
    fn set(&mut self, state: LockState) -> Result<(), LockError> {
        self.request
            .set_value(self.offset, level(state, self.pin.active_low))
            .map_err(|e| LockError(format!("GPIO{}: {e}", self.pin.gpio)))?;
        self.check(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Value::{Active as High, Inactive as Low};

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
    }

    #[test]
    fn an_absent_gpio_chip_fails_with_a_clear_message() {
        if !gpiocdev::chip::chips().unwrap_or_default().is_empty() {
            // Opening would drive a real pin of this machine.
            eprintln!("skipped: this machine has a GPIO chip");
            return;
        }
        let e = GpioRelay::open(LockPin::default()).err().unwrap();
        assert!(
            e.0.contains("GPIO17: no GPIO chip (/dev/gpiochip*) is available"),
            "{e}"
        );
    }
}
