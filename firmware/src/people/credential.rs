//! A person's card credential, sent to an access-control panel in reader mode: its number and
//! format, and the Wiegand bit frames (26-bit H10301 and 34-bit) with their parity rules.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A credential in the gallery (`[person.credential]`). The panel holds the rights; facegate
/// only says which card the recognised person carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "format", rename_all = "lowercase", deny_unknown_fields)]
pub enum Credential {
    /// 26-bit Wiegand, HID H10301: 8-bit facility code, 16-bit card number.
    Wiegand26 {
        /// Facility (site) code, 0 to 255.
        facility: u8,
        /// Card number, 0 to 65535.
        card: u16,
    },
    /// 34-bit Wiegand: 16-bit facility code, 16-bit card number.
    Wiegand34 {
        /// Facility (site) code, 0 to 65535.
        facility: u16,
        /// Card number, 0 to 65535.
        card: u16,
    },
    /// Raw card bits, for a reader output that carries any card (OSDP): the `bits` low bits of
    /// `value`, most significant first. Not sendable over Wiegand.
    Raw {
        /// Number of bits, 1 to 63.
        bits: u8,
        /// The bits, right-aligned.
        value: u64,
    },
}

/// Errors of credentials and Wiegand frames.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// A raw credential's bit count is out of range, or its value does not fit.
    #[error("raw credential: {0}")]
    Raw(String),
    /// A number is out of its format's range, or one the format needs is missing.
    #[error("{0}")]
    Range(String),
    /// A received frame has a length no format uses.
    #[error("a {0}-bit frame is neither Wiegand 26 nor 34")]
    Length(usize),
    /// A received frame fails its parity check.
    #[error("{0}-bit frame: parity error")]
    Parity(usize),
    /// The credential has no Wiegand form.
    #[error("a raw credential cannot be sent over Wiegand (only 26 or 34-bit formats)")]
    NotWiegand,
}

/// A credential's format, as the CLI (`--format`) and the control API name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// 26-bit Wiegand (HID H10301): facility 0-255, card 0-65535.
    Wiegand26,
    /// 34-bit Wiegand: facility 0-65535, card 0-65535.
    Wiegand34,
    /// Raw card bits, for OSDP: a bit count and the value.
    Raw,
}

impl Format {
    /// Its word: `wiegand26`, `wiegand34`, `raw`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Wiegand26 => "wiegand26",
            Format::Wiegand34 => "wiegand34",
            Format::Raw => "raw",
        }
    }

    /// The format named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "wiegand26" => Some(Format::Wiegand26),
            "wiegand34" => Some(Format::Wiegand34),
            "raw" => Some(Format::Raw),
            _ => None,
        }
    }
}

impl Credential {
    /// The credential of `format` from its numbers (`facility` for the Wiegand formats, `bits`
    /// for raw), each checked against its range: the one check of the CLI and the control API.
    pub fn from_parts(
        format: Format,
        facility: Option<u64>,
        card: u64,
        bits: Option<u8>,
    ) -> Result<Self, CredentialError> {
        let name = format.as_str();
        let fit = |what: &str, v: u64, max: u64| {
            if v > max {
                Err(CredentialError::Range(format!(
                    "{what} {v} is out of range for {name} (0 to {max})"
                )))
            } else {
                Ok(v)
            }
        };
        let c = match format {
            Format::Wiegand26 | Format::Wiegand34 => {
                if bits.is_some() {
                    return Err(CredentialError::Range(
                        "bits are only for the raw format".into(),
                    ));
                }
                let Some(facility) = facility else {
                    return Err(CredentialError::Range(format!(
                        "a facility code is needed for {name}"
                    )));
                };
                let card = fit("card", card, 0xFFFF)? as u16;
                if format == Format::Wiegand26 {
                    Credential::Wiegand26 {
                        facility: fit("facility", facility, 0xFF)? as u8,
                        card,
                    }
                } else {
                    Credential::Wiegand34 {
                        facility: fit("facility", facility, 0xFFFF)? as u16,
                        card,
                    }
                }
            }
            Format::Raw => {
                if facility.is_some() {
                    return Err(CredentialError::Range(
                        "a facility code is not used with the raw format".into(),
                    ));
                }
                let Some(bits) = bits else {
                    return Err(CredentialError::Range(
                        "the number of bits is needed for the raw format".into(),
                    ));
                };
                Credential::Raw { bits, value: card }
            }
        };
        c.check()?;
        Ok(c)
    }

    /// Its format.
    pub fn format(&self) -> Format {
        match self {
            Credential::Wiegand26 { .. } => Format::Wiegand26,
            Credential::Wiegand34 { .. } => Format::Wiegand34,
            Credential::Raw { .. } => Format::Raw,
        }
    }

    /// The numbers [`Credential::from_parts`] takes back: (facility or bits, card or value).
    pub fn parts(&self) -> (u64, u64) {
        match *self {
            Credential::Wiegand26 { facility, card } => (facility.into(), card.into()),
            Credential::Wiegand34 { facility, card } => (facility.into(), card.into()),
            Credential::Raw { bits, value } => (bits.into(), value),
        }
    }
}

impl Credential {
    /// Checks the ranges serde cannot (a raw credential's length and value).
    pub fn check(&self) -> Result<(), CredentialError> {
        if let Credential::Raw { bits, value } = *self {
            if !(1..=63).contains(&bits) {
                return Err(CredentialError::Raw(format!(
                    "bits must be 1 to 63 (got {bits})"
                )));
            }
            if value >> bits != 0 {
                return Err(CredentialError::Raw(format!(
                    "value {value} does not fit in {bits} bits"
                )));
            }
        }
        Ok(())
    }

    /// The Wiegand frame, most significant (first sent) bit first, parity bits included.
    pub fn wiegand_frame(&self) -> Result<Vec<bool>, CredentialError> {
        let (data, len) = match *self {
            Credential::Wiegand26 { facility, card } => {
                ((u64::from(facility) << 16) | u64::from(card), 24)
            }
            Credential::Wiegand34 { facility, card } => {
                ((u64::from(facility) << 16) | u64::from(card), 32)
            }
            Credential::Raw { .. } => return Err(CredentialError::NotWiegand),
        };
        let data = bits_of(data, len);
        let half = len / 2;
        // Leading bit: even parity over the first half; trailing bit: odd over the second.
        let even = data[..half].iter().filter(|b| **b).count() % 2 == 1;
        let odd = data[half..].iter().filter(|b| **b).count() % 2 == 0;
        let mut frame = Vec::with_capacity(len + 2);
        frame.push(even);
        frame.extend(data);
        frame.push(odd);
        Ok(frame)
    }

    /// The card bits reported over OSDP: the whole Wiegand frame for Wiegand formats (what a
    /// card reader reports), else the raw bits.
    pub fn card_bits(&self) -> Vec<bool> {
        match *self {
            Credential::Raw { bits, value } => bits_of(value, usize::from(bits)),
            _ => self.wiegand_frame().unwrap_or_default(),
        }
    }

    /// Decodes a received Wiegand frame, checking its length and parity.
    pub fn from_wiegand(frame: &[bool]) -> Result<Self, CredentialError> {
        let n = frame.len();
        if n != 26 && n != 34 {
            return Err(CredentialError::Length(n));
        }
        let data = &frame[1..n - 1];
        let value = data.iter().fold(0u64, |v, b| (v << 1) | u64::from(*b));
        let c = if n == 26 {
            Credential::Wiegand26 {
                facility: (value >> 16) as u8,
                card: value as u16,
            }
        } else {
            Credential::Wiegand34 {
                facility: (value >> 16) as u16,
                card: value as u16,
            }
        };
        if c.wiegand_frame()? != frame {
            return Err(CredentialError::Parity(n));
        }
        Ok(c)
    }
}

/// `value`'s low `len` bits, most significant first.
fn bits_of(value: u64, len: usize) -> Vec<bool> {
    (0..len).rev().map(|i| (value >> i) & 1 == 1).collect()
}

/// Packs bits, most significant first, into bytes (the last one padded with zeros).
pub fn pack_bits(bits: &[bool]) -> Vec<u8> {
    bits.chunks(8)
        .map(|c| {
            c.iter()
                .enumerate()
                .fold(0u8, |b, (i, bit)| b | (u8::from(*bit) << (7 - i)))
        })
        .collect()
}

impl fmt::Display for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Wiegand26 { facility, card } => {
                write!(f, "wiegand26 facility {facility} card {card}")
            }
            Credential::Wiegand34 { facility, card } => {
                write!(f, "wiegand34 facility {facility} card {card}")
            }
            Credential::Raw { bits, value } => write!(f, "raw {bits} bits {value:#x}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(frame: &[bool]) -> u64 {
        frame.iter().fold(0, |v, b| (v << 1) | u64::from(*b))
    }

    #[test]
    fn h10301_known_frames() {
        // Facility 1, card 1: one bit set in each half, so the even parity bit is 1 and the
        // odd one 0: 1 00000001 0000000000000001 0.
        let f = Credential::Wiegand26 {
            facility: 1,
            card: 1,
        }
        .wiegand_frame()
        .unwrap();
        assert_eq!(f.len(), 26);
        assert_eq!(value(&f), 0x202_0002);
        // All zeros: even parity 0, odd parity 1.
        let f = Credential::Wiegand26 {
            facility: 0,
            card: 0,
        }
        .wiegand_frame()
        .unwrap();
        assert_eq!(value(&f), 1);
        // All ones: 12 ones a half, so even parity 0 and odd parity 1.
        let f = Credential::Wiegand26 {
            facility: 255,
            card: 65535,
        }
        .wiegand_frame()
        .unwrap();
        assert_eq!(value(&f), 0x1FF_FFFF);
        // Facility 18 (0x12), card 36363 (0x8E0B): the first 12 data bits 0001 0010 1000 hold
        // three ones (parity 1); the last 12, 1110 0000 1011, hold six (parity 1).
        let f = Credential::Wiegand26 {
            facility: 18,
            card: 36363,
        }
        .wiegand_frame()
        .unwrap();
        assert_eq!(value(&f), (1 << 25) | (0x12_8E0B << 1) | 1);
    }

    #[test]
    fn wiegand34_known_frame() {
        // Facility 0x0001, card 0x0003: first 16 data bits one 1 -> even parity 1; last 16
        // bits two 1s -> odd parity 1.
        let f = Credential::Wiegand34 {
            facility: 1,
            card: 3,
        }
        .wiegand_frame()
        .unwrap();
        assert_eq!(f.len(), 34);
        assert_eq!(value(&f), (1 << 33) | (0x0001_0003 << 1) | 1);
    }

    #[test]
    fn frames_decode_back_and_bad_parity_is_refused() {
        for c in [
            Credential::Wiegand26 {
                facility: 42,
                card: 1234,
            },
            Credential::Wiegand34 {
                facility: 4321,
                card: 65000,
            },
        ] {
            let mut f = c.wiegand_frame().unwrap();
            assert_eq!(Credential::from_wiegand(&f), Ok(c));
            // Any single flipped bit breaks one parity.
            for i in 0..f.len() {
                f[i] = !f[i];
                assert!(
                    matches!(
                        Credential::from_wiegand(&f),
                        Err(CredentialError::Parity(_))
                    ),
                    "bit {i}"
                );
                f[i] = !f[i];
            }
        }
        assert_eq!(
            Credential::from_wiegand(&[true; 25]),
            Err(CredentialError::Length(25))
        );
    }

    #[test]
    fn raw_credentials_are_checked_and_not_wiegand() {
        let ok = Credential::Raw {
            bits: 40,
            value: 0xAB_CDEF_0123,
        };
        ok.check().unwrap();
        assert_eq!(ok.card_bits().len(), 40);
        assert_eq!(
            pack_bits(&ok.card_bits()),
            vec![0xAB, 0xCD, 0xEF, 0x01, 0x23]
        );
        assert_eq!(ok.wiegand_frame(), Err(CredentialError::NotWiegand));
        assert!(Credential::Raw {
            bits: 8,
            value: 256
        }
        .check()
        .is_err());
        assert!(Credential::Raw { bits: 0, value: 0 }.check().is_err());
    }

    #[test]
    fn credentials_are_made_from_checked_parts() {
        let c = Credential::from_parts(Format::Wiegand26, Some(18), 4660, None).unwrap();
        assert_eq!(
            c,
            Credential::Wiegand26 {
                facility: 18,
                card: 4660
            }
        );
        assert_eq!((c.format(), c.parts()), (Format::Wiegand26, (18, 4660)));
        assert_eq!(
            Credential::from_parts(Format::Wiegand34, Some(300), 1, None).unwrap(),
            Credential::Wiegand34 {
                facility: 300,
                card: 1
            }
        );
        let raw = Credential::from_parts(Format::Raw, None, 255, Some(8)).unwrap();
        assert_eq!(raw.parts(), (8, 255));
        for (f, fac, card, bits, why) in [
            (Format::Wiegand26, Some(256), 1, None, "out of range"),
            (Format::Wiegand26, Some(1), 65536, None, "out of range"),
            (Format::Wiegand34, None, 1, None, "facility code is needed"),
            (Format::Wiegand26, Some(1), 1, Some(8), "only for the raw"),
            (Format::Raw, None, 1, None, "bits is needed"),
            (Format::Raw, Some(1), 1, Some(8), "not used"),
            (Format::Raw, None, 16, Some(4), "fit"),
        ] {
            let e = Credential::from_parts(f, fac, card, bits).unwrap_err();
            assert!(e.to_string().contains(why), "{e}");
        }
        for f in [Format::Wiegand26, Format::Wiegand34, Format::Raw] {
            assert_eq!(Format::parse(f.as_str()), Some(f));
        }
        assert_eq!(Format::parse("wiegand"), None);
    }

    #[test]
    fn toml_form() {
        #[derive(Deserialize, Serialize)]
        struct P {
            credential: Credential,
        }
        let p: P =
            toml::from_str("credential = { format = \"wiegand26\", facility = 7, card = 99 }")
                .unwrap();
        assert_eq!(
            p.credential,
            Credential::Wiegand26 {
                facility: 7,
                card: 99
            }
        );
        let back: P = toml::from_str(&toml::to_string(&p).unwrap()).unwrap();
        assert_eq!(back.credential, p.credential);
        // Out of range and misspelt keys are refused.
        assert!(toml::from_str::<P>(
            "credential = { format = \"wiegand26\", facility = 300, card = 1 }"
        )
        .is_err());
        assert!(toml::from_str::<P>(
            "credential = { format = \"wiegand26\", facilty = 3, card = 1 }"
        )
        .is_err());
    }
}
