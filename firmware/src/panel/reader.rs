//! Reader mode: facegate as the face reader of an access-control panel. On a grant the gate
//! (`access::gate`) sends the person's card credential through a [`CredentialOutput`] (Wiegand
//! lines, or OSDP with Secure Channel) and the panel decides and drives the lock; facegate never
//! drives its relay in this mode.

use crate::people::credential::Credential;
use crate::problem::Problem;
use serde::{Deserialize, Serialize};

/// `[output] mode`: who drives the lock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputMode {
    /// facegate drives its own relay (`[lock]`).
    #[default]
    Relay,
    /// Wiegand reader on two GPIO lines (D0, D1).
    Wiegand,
    /// OSDP reader (PD) on an RS-485 serial line, Secure Channel by default.
    Osdp,
}

/// `[output]`: where a grant goes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutputConfig {
    /// `relay` (default), `wiegand` or `osdp`.
    pub mode: OutputMode,
    /// `[output.wiegand]`
    pub wiegand: WiegandConfig,
    /// `[output.osdp]`
    pub osdp: crate::panel::osdp::OsdpConfig,
}

/// `[output.wiegand]`: the two data lines and their timing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WiegandConfig {
    /// BCM GPIO driving D0 (the "zero" line).
    pub d0_gpio: u8,
    /// BCM GPIO driving D1 (the "one" line).
    pub d1_gpio: u8,
    /// Each pulse's length, in microseconds (the standard 50; panels accept 20 to 100).
    pub pulse_us: u32,
    /// From one pulse's start to the next, in microseconds (the standard 2000; 200 to 20000).
    pub interval_us: u32,
    /// `true` (default): each GPIO drives a transistor or opto-isolator that pulls the 5 V line
    /// low, so a pulse is the GPIO high. `false`: the GPIO reaches the line through a level
    /// shifter, so a pulse is the GPIO low.
    pub open_collector: bool,
}

impl Default for WiegandConfig {
    fn default() -> Self {
        Self {
            d0_gpio: 23,
            d1_gpio: 24,
            pulse_us: 50,
            interval_us: 2000,
            open_collector: true,
        }
    }
}

impl OutputConfig {
    /// Checks every value's range: `Err(Problem::new(key, problem))`.
    pub fn check(&self) -> Result<(), Problem> {
        let w = &self.wiegand;
        if self.mode == OutputMode::Wiegand {
            for (key, g) in [
                ("output.wiegand.d0_gpio", w.d0_gpio),
                ("output.wiegand.d1_gpio", w.d1_gpio),
            ] {
                if g > 27 {
                    return Err(Problem::new(
                        key,
                        format!("GPIO{g} is not on the 40-pin header (BCM 0 to 27)"),
                    ));
                }
            }
            if w.d0_gpio == w.d1_gpio {
                return Err(Problem::new(
                    "output.wiegand.d0_gpio/d1_gpio",
                    format!("D0 and D1 are both GPIO{}", w.d0_gpio),
                ));
            }
        }
        if self.mode == OutputMode::Osdp {
            self.osdp.check()?;
        }
        if !(20..=100).contains(&w.pulse_us) {
            return Err(Problem::new(
                "output.wiegand.pulse_us",
                format!("must be 20 to 100 microseconds (got {})", w.pulse_us),
            ));
        }
        if !(200..=20_000).contains(&w.interval_us) || w.interval_us < 4 * w.pulse_us {
            return Err(Problem::new(
                "output.wiegand.interval_us",
                format!(
                    "must be 200 to 20000 microseconds and at least 4 pulses long (got {})",
                    w.interval_us
                ),
            ));
        }
        Ok(())
    }

    /// Settings that loosen security (for the journal and the `start` event).
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.mode == OutputMode::Wiegand {
            w.push("output.mode = wiegand: card numbers cross the line in clear, unsupervised (prefer OSDP)".into());
        }
        if self.mode == OutputMode::Osdp {
            w.extend(self.osdp.warnings());
        }
        w
    }
}

/// A credential could not be sent.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OutputError {
    /// The person has no credential in the gallery (`facegate credential ID ...`).
    #[error("no credential is set for this person (facegate credential ID --card N ...)")]
    NoCredential,
    /// The credential has no form this output can send.
    #[error(transparent)]
    Format(#[from] crate::people::credential::CredentialError),
    /// The line or device failed.
    #[error("{0}")]
    Device(String),
}

/// A change of the link to the panel (OSDP: the panel started or stopped polling, or set this
/// reader's key), audited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkEvent {
    /// What changed.
    pub change: LinkChange,
    /// What changed, for the audit.
    pub detail: String,
}

/// The kinds of [`LinkEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkChange {
    /// The panel polls this reader.
    Online,
    /// The panel stopped polling this reader.
    Offline,
    /// The panel set (or tried to set) this reader's Secure Channel key: `detail` says whether
    /// it was saved, and why not.
    Key,
}

/// Where a grant's credential goes (Wiegand lines, an OSDP link).
pub trait CredentialOutput {
    /// Sends `credential` as one card read; `Ok` says what went on the line, for the audit.
    fn send(&mut self, credential: &Credential) -> Result<String, OutputError>;

    /// Link changes since the last call (an unsupervised line like Wiegand has none).
    fn link_events(&mut self) -> Vec<LinkEvent> {
        Vec::new()
    }
}

/// Sends `credential` (the granted person's, if any) on `out`.
pub fn send(
    out: &mut dyn CredentialOutput,
    credential: Option<&Credential>,
) -> Result<String, OutputError> {
    out.send(credential.ok_or(OutputError::NoCredential)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_is_the_default_and_ranges_are_checked() {
        let c = OutputConfig::default();
        assert_eq!(c.mode, OutputMode::Relay);
        assert_eq!((c.wiegand.pulse_us, c.wiegand.interval_us), (50, 2000));
        c.check().unwrap();
        let mut bad = c.clone();
        bad.mode = OutputMode::Wiegand;
        bad.wiegand.d1_gpio = bad.wiegand.d0_gpio;
        assert!(bad.check().unwrap_err().key.contains("d0_gpio/d1_gpio"));
        let mut bad = c;
        bad.wiegand.interval_us = 100;
        assert_eq!(bad.check().unwrap_err().key, "output.wiegand.interval_us");
    }

    struct Sink(Vec<Credential>);
    impl CredentialOutput for Sink {
        fn send(&mut self, c: &Credential) -> Result<String, OutputError> {
            self.0.push(*c);
            Ok(c.to_string())
        }
    }

    #[test]
    fn a_person_without_a_credential_sends_nothing() {
        let mut s = Sink(Vec::new());
        assert!(matches!(send(&mut s, None), Err(OutputError::NoCredential)));
        assert!(s.0.is_empty());
        let c = Credential::Wiegand26 {
            facility: 1,
            card: 2,
        };
        assert_eq!(
            send(&mut s, Some(&c)).unwrap(),
            "wiegand26 facility 1 card 2"
        );
        assert_eq!(s.0, vec![c]);
    }
}
