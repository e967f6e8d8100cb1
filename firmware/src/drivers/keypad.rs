//! A USB keypad (or a USB card reader that types its number) through the Linux input event
//! device (evdev, `/dev/input/event*`): key presses read without blocking, as the kernel's
//! 24-byte `input_event` records. Opened again after it is unplugged; absent, every poll says
//! so (the daemon logs it once).

use crate::hal::{CredentialInput, InputError, Presented};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One `struct input_event` on 64-bit Linux: a `timeval` (16 bytes), type, code, value.
const EVENT_SIZE: usize = 24;
/// `EV_KEY`.
const EV_KEY: u16 = 1;
/// A key went down (1: press, 0: release, 2: autorepeat).
const PRESSED: i32 = 1;
/// Events read per poll at most.
const MAX_EVENTS_PER_POLL: usize = 64;
/// While absent, tried again this often.
const RETRY: Duration = Duration::from_secs(1);

/// A keypad on an event device.
pub struct EvdevKeypad {
    path: PathBuf,
    file: Option<std::fs::File>,
    next_try: Duration,
    buf: Vec<u8>,
}

impl EvdevKeypad {
    /// The keypad at `path` (opened on the first poll).
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            file: None,
            next_try: Duration::ZERO,
            buf: Vec::with_capacity(EVENT_SIZE * MAX_EVENTS_PER_POLL),
        }
    }

    fn open(&mut self, now: Duration) -> Result<(), InputError> {
        if self.file.is_some() {
            return Ok(());
        }
        if now < self.next_try {
            return Err(InputError(format!("{}: not open", self.path.display())));
        }
        self.next_try = now + RETRY;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&self.path)
            .map_err(|e| InputError(format!("keypad {}: {e}", self.path.display())))?;
        tracing::info!("keypad {} open", self.path.display());
        self.file = Some(f);
        Ok(())
    }
}

impl CredentialInput for EvdevKeypad {
    fn poll(&mut self, now: Duration) -> Result<Option<Presented>, InputError> {
        loop {
            // Whole records first: a key decoded from what is already read.
            while self.buf.len() >= EVENT_SIZE {
                let rec: Vec<u8> = self.buf.drain(..EVENT_SIZE).collect();
                if let Some(k) = key_of(&rec) {
                    return Ok(Some(Presented::Key(k)));
                }
            }
            self.open(now)?;
            let Some(f) = self.file.as_mut() else {
                return Ok(None);
            };
            let mut chunk = [0u8; EVENT_SIZE * MAX_EVENTS_PER_POLL];
            match f.read(&mut chunk) {
                Ok(0) => {
                    self.file = None;
                    return Err(InputError(format!("keypad {}: gone", self.path.display())));
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) => {
                    // ENODEV after an unplug: open again later.
                    self.file = None;
                    self.buf.clear();
                    return Err(InputError(format!("keypad {}: {e}", self.path.display())));
                }
            }
        }
    }
}

/// The key a record presses, if it is a key press of a key a PIN uses.
pub fn key_of(rec: &[u8]) -> Option<char> {
    let kind = u16::from_ne_bytes([rec[16], rec[17]]);
    let code = u16::from_ne_bytes([rec[18], rec[19]]);
    let value = i32::from_ne_bytes([rec[20], rec[21], rec[22], rec[23]]);
    if kind != EV_KEY || value != PRESSED {
        return None;
    }
    // linux/input-event-codes.h: KEY_1..KEY_9 = 2..10, KEY_0 = 11, keypad digits, Enter, *, #.
    Some(match code {
        2..=10 => char::from(b'1' + (code - 2) as u8),
        11 => '0',
        79..=81 => char::from(b'1' + (code - 79) as u8),
        75..=77 => char::from(b'4' + (code - 75) as u8),
        71..=73 => char::from(b'7' + (code - 71) as u8),
        82 => '0',
        28 | 96 => '#',     // KEY_ENTER, KEY_KPENTER
        55 | 1 | 14 => '*', // KEY_KPASTERISK, KEY_ESC, KEY_BACKSPACE: clear
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(kind: u16, code: u16, value: i32) -> Vec<u8> {
        let mut r = vec![0u8; 16];
        r.extend(kind.to_ne_bytes());
        r.extend(code.to_ne_bytes());
        r.extend(value.to_ne_bytes());
        r
    }

    #[test]
    fn key_presses_of_digits_enter_and_clear_only() {
        assert_eq!(key_of(&rec(EV_KEY, 2, 1)), Some('1'));
        assert_eq!(key_of(&rec(EV_KEY, 11, 1)), Some('0'));
        assert_eq!(key_of(&rec(EV_KEY, 79, 1)), Some('1'));
        assert_eq!(key_of(&rec(EV_KEY, 73, 1)), Some('9'));
        assert_eq!(key_of(&rec(EV_KEY, 82, 1)), Some('0'));
        assert_eq!(key_of(&rec(EV_KEY, 96, 1)), Some('#'));
        assert_eq!(key_of(&rec(EV_KEY, 14, 1)), Some('*'));
        // Releases, repeats, other event types and letters are not keys.
        assert_eq!(key_of(&rec(EV_KEY, 2, 0)), None);
        assert_eq!(key_of(&rec(EV_KEY, 2, 2)), None);
        assert_eq!(key_of(&rec(4, 2, 1)), None);
        assert_eq!(key_of(&rec(EV_KEY, 30, 1)), None);
    }

    #[test]
    fn an_absent_keypad_fails_cleanly_and_is_tried_again_later() {
        let mut k = EvdevKeypad::new(Path::new("/nonexistent/input/event9"));
        let e = k.poll(Duration::ZERO).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/input/event9"), "{e}");
        // Not retried before a second has passed; then tried again.
        assert!(k.poll(Duration::from_millis(10)).is_err());
        assert!(k.poll(Duration::from_secs(2)).is_err());
    }

    #[test]
    fn records_read_from_a_file_become_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("event0");
        let mut bytes = Vec::new();
        for (code, v) in [(2, 1), (2, 0), (3, 1), (3, 0), (96, 1)] {
            bytes.extend(rec(EV_KEY, code, v));
        }
        std::fs::write(&path, bytes).unwrap();
        let mut k = EvdevKeypad::new(&path);
        let mut keys = Vec::new();
        while let Ok(Some(Presented::Key(c))) = k.poll(Duration::ZERO) {
            keys.push(c);
        }
        assert_eq!(keys, vec!['1', '2', '#']);
    }
}
