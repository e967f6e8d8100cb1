//! Wiegand *input*: a card reader or keypad wired to the door (second factors), read back from
//! the time stamps of its data lines' falling edges (a pulse on D0 is a 0 bit, on D1 a 1). A
//! quiet line for [`FRAME_GAP`] ends a frame; the frame's length says what it is:
//!
//! - 26 or 34 bits: a card (H10301 / 34-bit), parity checked ([`Credential::from_wiegand`]);
//! - 4 bits: one key of a keypad ("burst" mode): 0-9, 10 = `*`, 11 = `#`;
//! - 8 bits: one key with its complement in the high nibble (HID's 8-bit keypad format),
//!   checked.
//!
//! Anything else (a noisy line, a cut frame) is refused and named, never guessed at.

use crate::hal::Presented;
pub use crate::panel::wiegand::FRAME_GAP;
use crate::people::credential::{Credential, CredentialError};
use std::time::Duration;

/// Longest frame kept: a noisy line cannot grow the buffer.
pub const MAX_BITS: usize = 64;

/// A frame that is not a card or a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A card frame that fails its parity or length check.
    #[error(transparent)]
    Card(#[from] CredentialError),
    /// An 8-bit key whose high nibble is not the complement of the low one.
    #[error("8-bit keypad frame {0:#04x}: check nibble wrong")]
    KeyCheck(u8),
    /// A key code no keypad sends (12-15).
    #[error("keypad code {0} is not a key")]
    KeyCode(u8),
    /// A length no reader sends.
    #[error("a {0}-bit frame is neither a card (26, 34) nor a key (4, 8)")]
    Length(usize),
    /// More than [`MAX_BITS`] bits without a gap.
    #[error("more than {MAX_BITS} bits without a gap: line noise")]
    TooLong,
}

/// Bits as they arrive, cut into frames by the quiet gap.
#[derive(Debug, Default)]
pub struct Decoder {
    bits: Vec<bool>,
    last: Option<Duration>,
    overflow: bool,
}

impl Decoder {
    /// A bit whose pulse began at `t` (`true`: D1). A gap of [`FRAME_GAP`] since the previous
    /// bit ends the frame before it: its result, if one was pending.
    pub fn bit(&mut self, t: Duration, one: bool) -> Option<Result<Presented, FrameError>> {
        let ended = self.end_if_quiet(t);
        if self.bits.len() >= MAX_BITS {
            self.overflow = true;
        } else {
            self.bits.push(one);
        }
        self.last = Some(t);
        ended
    }

    /// The frame, once the line has been quiet for [`FRAME_GAP`] at `now`.
    pub fn end_if_quiet(&mut self, now: Duration) -> Option<Result<Presented, FrameError>> {
        let last = self.last?;
        if now.saturating_sub(last) < FRAME_GAP {
            return None;
        }
        self.last = None;
        let bits = std::mem::take(&mut self.bits);
        if std::mem::take(&mut self.overflow) {
            return Some(Err(FrameError::TooLong));
        }
        Some(decode(&bits))
    }
}

/// What a whole frame is.
pub fn decode(bits: &[bool]) -> Result<Presented, FrameError> {
    let value = bits.iter().fold(0u32, |v, b| (v << 1) | u32::from(*b));
    let key = |code: u32| match code {
        0..=9 => Ok(Presented::Key(char::from(b'0' + code as u8))),
        10 => Ok(Presented::Key('*')),
        11 => Ok(Presented::Key('#')),
        c => Err(FrameError::KeyCode(c as u8)),
    };
    match bits.len() {
        26 | 34 => Ok(Presented::Card(Credential::from_wiegand(bits)?)),
        4 => key(value),
        8 => {
            let (hi, lo) = (value >> 4, value & 0xf);
            if hi != !lo & 0xf {
                return Err(FrameError::KeyCheck(value as u8));
            }
            key(lo)
        }
        n => Err(FrameError::Length(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(x: f64) -> Duration {
        Duration::from_secs_f64(x / 1000.0)
    }

    /// Feeds `bits` 2 ms apart from `start`; returns what ended meanwhile.
    fn feed(d: &mut Decoder, start: f64, bits: &[bool]) -> Vec<Result<Presented, FrameError>> {
        bits.iter()
            .enumerate()
            .filter_map(|(i, b)| d.bit(ms(start + 2.0 * i as f64), *b))
            .collect()
    }

    fn nibble(v: u8, n: usize) -> Vec<bool> {
        (0..n).rev().map(|i| (v >> i) & 1 == 1).collect()
    }

    #[test]
    fn cards_decode_after_the_gap_and_parity_errors_are_refused() {
        let card = Credential::Wiegand26 {
            facility: 18,
            card: 36363,
        };
        let mut frame = card.wiegand_frame().unwrap();
        let mut d = Decoder::default();
        assert!(feed(&mut d, 0.0, &frame).is_empty());
        // 50 ms of bits; not over until the line is quiet.
        assert_eq!(d.end_if_quiet(ms(60.0)), None);
        assert_eq!(d.end_if_quiet(ms(80.0)), Some(Ok(Presented::Card(card))));
        assert_eq!(d.end_if_quiet(ms(200.0)), None, "reported once");
        frame[3] = !frame[3];
        feed(&mut d, 300.0, &frame);
        assert!(matches!(
            d.end_if_quiet(ms(400.0)),
            Some(Err(FrameError::Card(CredentialError::Parity(26))))
        ));
        let c34 = Credential::Wiegand34 {
            facility: 700,
            card: 9,
        };
        feed(&mut d, 500.0, &c34.wiegand_frame().unwrap());
        assert_eq!(d.end_if_quiet(ms(700.0)), Some(Ok(Presented::Card(c34))));
    }

    #[test]
    fn four_and_eight_bit_keys_and_the_gap_between_them() {
        let mut d = Decoder::default();
        // "1", "2", "#" as 4-bit bursts 100 ms apart: each ends when the next begins.
        assert!(feed(&mut d, 0.0, &nibble(1, 4)).is_empty());
        let out = feed(&mut d, 100.0, &nibble(2, 4));
        assert_eq!(out, vec![Ok(Presented::Key('1'))]);
        let out = feed(&mut d, 200.0, &nibble(11, 4));
        assert_eq!(out, vec![Ok(Presented::Key('2'))]);
        assert_eq!(d.end_if_quiet(ms(300.0)), Some(Ok(Presented::Key('#'))));
        // 8-bit: complement in the high nibble.
        feed(&mut d, 400.0, &nibble(0xF0, 8));
        assert_eq!(d.end_if_quiet(ms(500.0)), Some(Ok(Presented::Key('0'))));
        feed(&mut d, 600.0, &nibble(0x5A, 8));
        assert_eq!(d.end_if_quiet(ms(700.0)), Some(Ok(Presented::Key('*'))));
        feed(&mut d, 800.0, &nibble(0x55, 8));
        assert_eq!(
            d.end_if_quiet(ms(900.0)),
            Some(Err(FrameError::KeyCheck(0x55)))
        );
        feed(&mut d, 1000.0, &nibble(13, 4));
        assert_eq!(
            d.end_if_quiet(ms(1100.0)),
            Some(Err(FrameError::KeyCode(13)))
        );
    }

    #[test]
    fn bits_closer_than_the_gap_are_one_frame_and_noise_is_bounded() {
        let mut d = Decoder::default();
        // Two 4-bit bursts 10 ms apart are one 8-bit frame (a bad one here).
        feed(&mut d, 0.0, &nibble(1, 4));
        feed(&mut d, 16.0, &nibble(2, 4));
        assert_eq!(
            d.end_if_quiet(ms(100.0)),
            Some(Err(FrameError::KeyCheck(0x12)))
        );
        feed(&mut d, 200.0, &[true; 5]);
        assert_eq!(d.end_if_quiet(ms(300.0)), Some(Err(FrameError::Length(5))));
        feed(&mut d, 400.0, &[false; 200]);
        assert_eq!(d.end_if_quiet(ms(1200.0)), Some(Err(FrameError::TooLong)));
        assert!(d.bits.capacity() <= 2 * MAX_BITS);
    }
}
