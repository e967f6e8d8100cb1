//! The door's GPIO inputs and alarm output on the Pi (`[door]`), through the GPIO character
//! device like the lock relay: the exit button and the door contact with the kernel's edge
//! events, bias and debounce, so a press shorter than a frame is never missed; the alarm output
//! driven like the lock.
//!
//! Wiring faults: a plain contact gives two levels only, so a cut wire cannot be told from an
//! open door. With the default polarity (a contact to ground, closed while the door is closed,
//! the pull-up on) a cut wire or an unplugged contact reads "open" and raises `forced_open`:
//! the fault is never silent. A short to ground reads "closed" and hides an opening: route the
//! cable inside the secure side.

use crate::access::supervision::{Bias, DoorConfig};
use crate::hal::{DoorInputs, DoorSensors, InputError};
use gpiocdev::line::{EdgeDetection, EdgeKind, Value};
use std::time::Duration;

/// One requested line: its request and offset.
struct Line {
    request: gpiocdev::Request,
    offset: u32,
    gpio: u8,
}

fn find(gpio: u8) -> Result<gpiocdev::FoundLine, InputError> {
    let name = format!("GPIO{gpio}");
    gpiocdev::find_named_line(&name).ok_or_else(|| {
        InputError(format!(
            "{name}: no such GPIO line (not a Raspberry Pi, or the daemon's user is not in the `gpio` group)"
        ))
    })
}

impl Line {
    fn input(gpio: u8, active_low: bool, c: &DoorConfig) -> Result<Self, InputError> {
        let line = find(gpio)?;
        let mut b = gpiocdev::Request::builder();
        b.on_chip(&line.chip)
            .with_consumer("facegated")
            .with_line(line.info.offset)
            .as_input()
            .with_edge_detection(EdgeDetection::BothEdges)
            .with_bias(match c.bias {
                Bias::PullUp => Some(gpiocdev::line::Bias::PullUp),
                Bias::PullDown => Some(gpiocdev::line::Bias::PullDown),
                Bias::None => Some(gpiocdev::line::Bias::Disabled),
            });
        if c.debounce_ms > 0 {
            b.with_debounce_period(Duration::from_millis(u64::from(c.debounce_ms)));
        }
        if active_low {
            b.as_active_low();
        }
        let request = b
            .request()
            .map_err(|e| InputError(format!("GPIO{gpio}: {e}")))?;
        Ok(Self {
            request,
            offset: line.info.offset,
            gpio,
        })
    }

    fn active(&self) -> Result<bool, InputError> {
        self.request
            .value(self.offset)
            .map(|v| v == Value::Active)
            .map_err(|e| InputError(format!("GPIO{}: {e}", self.gpio)))
    }

    /// Drains the queued edge events: whether one of them was to the active level.
    fn activated_since_last(&self) -> Result<bool, InputError> {
        let mut rising = Vec::new();
        let err = |e: gpiocdev::Error| InputError(format!("GPIO{}: {e}", self.gpio));
        while self.request.has_edge_event().map_err(err)? {
            let ev = self.request.read_edge_event().map_err(err)?;
            rising.push(ev.kind == EdgeKind::Rising);
        }
        Ok(pressed(false, rising))
    }
}

/// Whether the button counts as pressed: pressed now, or pressed (an edge to active) at any
/// time since the last read, even if released again.
pub fn pressed(now: bool, edges_to_active: impl IntoIterator<Item = bool>) -> bool {
    now || edges_to_active.into_iter().any(|r| r)
}

/// Exit button, door contact and alarm output on GPIO lines, as `[door]` says.
pub struct GpioDoorIo {
    exit: Option<Line>,
    contact: Option<Line>,
    alarm: Option<(gpiocdev::Request, u32, u8)>,
}

impl GpioDoorIo {
    /// Requests the configured lines (none configured: a device that reads nothing).
    pub fn open(c: &DoorConfig) -> Result<Self, InputError> {
        let exit = c
            .exit_gpio
            .map(|g| Line::input(g, c.exit_active_low, c))
            .transpose()?;
        let contact = c
            .contact_gpio
            .map(|g| Line::input(g, c.contact_active_low, c))
            .transpose()?;
        let alarm = match c.alarm_gpio {
            None => None,
            Some(gpio) => {
                let line = find(gpio)?;
                let mut b = gpiocdev::Request::builder();
                b.on_chip(&line.chip)
                    .with_consumer("facegated")
                    .with_line(line.info.offset)
                    .as_output(Value::Inactive);
                if c.alarm_active_low {
                    b.as_active_low();
                }
                let r = b
                    .request()
                    .map_err(|e| InputError(format!("GPIO{gpio} (alarm): {e}")))?;
                Some((r, line.info.offset, gpio))
            }
        };
        Ok(Self {
            exit,
            contact,
            alarm,
        })
    }
}

impl DoorSensors for GpioDoorIo {
    fn read(&mut self) -> Result<DoorInputs, InputError> {
        let exit_button = match &self.exit {
            Some(l) => pressed(l.active()?, [l.activated_since_last()?]),
            None => false,
        };
        let door_open = match &self.contact {
            Some(l) => {
                // Its edges only matter as the level they leave.
                l.activated_since_last()?;
                Some(l.active()?)
            }
            None => None,
        };
        Ok(DoorInputs {
            exit_button,
            door_open,
        })
    }

    fn set_alarm(&mut self, on: bool) -> Result<(), InputError> {
        let Some((r, offset, gpio)) = &self.alarm else {
            return Ok(());
        };
        let v = if on { Value::Active } else { Value::Inactive };
        r.set_value(*offset, v)
            .map(drop)
            .map_err(|e| InputError(format!("GPIO{gpio} (alarm): {e}")))
    }
}

impl Drop for GpioDoorIo {
    fn drop(&mut self) {
        // A siren must not keep sounding after the daemon is gone.
        let _ = self.set_alarm(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_press_released_before_the_read_still_counts() {
        assert!(pressed(false, [true, false]));
        assert!(pressed(true, []));
        assert!(!pressed(false, [false]));
        assert!(!pressed(false, []));
    }

    #[test]
    fn no_configured_line_opens_without_hardware() {
        let mut io = GpioDoorIo::open(&DoorConfig::default()).unwrap();
        assert_eq!(io.read().unwrap(), DoorInputs::default());
        io.set_alarm(true).unwrap();
    }
}
