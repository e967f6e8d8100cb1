//! The real Wiegand lines (cargo feature `hw`): D0 and D1 on two GPIO lines through the Linux GPIO
//! character device (`gpiocdev`), each driving a transistor or opto-isolator on the panel's 5 V
//! line (or a level shifter: `open_collector = false`).

use crate::panel::reader::{OutputError, WiegandConfig};
use crate::panel::wiegand::WiegandLines;
use gpiocdev::line::Value;
use std::time::{Duration, Instant};

/// D0 and D1 held released from the moment they are requested.
pub struct GpioWiegand {
    request: gpiocdev::Request,
    d0: u32,
    d1: u32,
    open_collector: bool,
}

fn find(gpio: u8) -> Result<gpiocdev::FoundLine, OutputError> {
    let name = format!("GPIO{gpio}");
    gpiocdev::find_named_line(&name).ok_or_else(|| {
        OutputError::Device(format!(
            "{name}: no such GPIO line (not a Raspberry Pi, or the daemon's user is not in the `gpio` group)"
        ))
    })
}

impl GpioWiegand {
    /// Requests both lines as outputs, released (idle).
    pub fn open(c: &WiegandConfig) -> Result<Self, OutputError> {
        let (l0, l1) = (find(c.d0_gpio)?, find(c.d1_gpio)?);
        if l0.chip != l1.chip {
            return Err(OutputError::Device(format!(
                "GPIO{} and GPIO{} are on different chips",
                c.d0_gpio, c.d1_gpio
            )));
        }
        let idle = level(false, c.open_collector);
        let request = gpiocdev::Request::builder()
            .on_chip(&l0.chip)
            .with_consumer("facegated-wiegand")
            .with_lines(&[l0.info.offset, l1.info.offset])
            .as_output(idle)
            .request()
            .map_err(|e| OutputError::Device(format!("Wiegand D0/D1: {e}")))?;
        Ok(Self {
            request,
            d0: l0.info.offset,
            d1: l1.info.offset,
            open_collector: c.open_collector,
        })
    }
}

/// The GPIO level that pulls the line low (`pulled`) or releases it.
fn level(pulled: bool, open_collector: bool) -> Value {
    // Open collector: GPIO high turns the transistor on, which pulls the line low.
    if pulled == open_collector {
        Value::Active
    } else {
        Value::Inactive
    }
}

impl WiegandLines for GpioWiegand {
    fn pulse(&mut self, one: bool, width: Duration) -> Result<(), OutputError> {
        let line = if one { self.d1 } else { self.d0 };
        let err = |e: gpiocdev::Error| OutputError::Device(format!("Wiegand line: {e}"));
        self.request
            .set_value(line, level(true, self.open_collector))
            .map_err(err)?;
        // Tens of microseconds: a sleep would overshoot, so spin.
        let t = Instant::now();
        while t.elapsed() < width {
            std::hint::spin_loop();
        }
        self.request
            .set_value(line, level(false, self.open_collector))
            .map_err(err)?;
        Ok(())
    }

    fn gap(&mut self, d: Duration) {
        std::thread::sleep(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polarity() {
        assert_eq!(level(true, true), Value::Active);
        assert_eq!(level(false, true), Value::Inactive);
        assert_eq!(level(true, false), Value::Inactive);
        assert_eq!(level(false, false), Value::Active);
    }
}
