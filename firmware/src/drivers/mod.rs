//! The real device behind the hardware traits (`hal`): the V4L2 camera and the GPIO relay, the
//! door inputs, the Wiegand lines, the Pi's CSI camera through `rpicam-vid`, systemd's notify
//! socket. Nothing else in the library imports them; `facegated` does.

#[cfg(feature = "hw")]
pub mod hw;
#[cfg(feature = "hw")]
pub mod hw_credentials;
#[cfg(feature = "hw")]
pub mod hw_inputs;
#[cfg(feature = "hw")]
pub mod hw_wiegand;
pub mod keypad;
pub mod rpicam;
pub mod service;

use crate::hal::{CredentialInput, InputError, Presented};

/// Several credential inputs read in turn (a Wiegand reader and a USB keypad).
pub struct Inputs(pub Vec<Box<dyn CredentialInput + Send>>);

impl CredentialInput for Inputs {
    fn poll(&mut self, now: std::time::Duration) -> Result<Option<Presented>, InputError> {
        let mut failed = None;
        for input in &mut self.0 {
            match input.poll(now) {
                Ok(Some(p)) => return Ok(Some(p)),
                Ok(None) => {}
                // One failing input does not silence the other.
                Err(e) => failed = Some(e),
            }
        }
        failed.map_or(Ok(None), Err)
    }
}

/// The inputs `[access.inputs]` names (none: `None`). A Wiegand reader's lines that cannot be
/// requested stop the start; a USB keypad is opened (and re-opened) as it comes and goes.
pub fn credential_inputs(
    c: &crate::people::policy::FactorInputs,
) -> Result<Option<Box<dyn CredentialInput + Send>>, InputError> {
    let mut all: Vec<Box<dyn CredentialInput + Send>> = Vec::new();
    if let (Some(d0), Some(d1)) = (c.wiegand_d0_gpio, c.wiegand_d1_gpio) {
        #[cfg(feature = "hw")]
        all.push(Box::new(hw_credentials::GpioWiegandInput::open(d0, d1)?));
        #[cfg(not(feature = "hw"))]
        return Err(InputError(format!(
            "a Wiegand reader on GPIO{d0}/GPIO{d1} needs the `hw` build"
        )));
    }
    if let Some(path) = &c.keypad {
        all.push(Box::new(keypad::EvdevKeypad::new(path)));
    }
    Ok(match all.len() {
        0 => None,
        1 => all.pop(),
        _ => Some(Box::new(Inputs(all))),
    })
}
