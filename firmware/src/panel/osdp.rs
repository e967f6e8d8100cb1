//! OSDP reader mode's settings and the parts that need no OSDP stack: `[output.osdp]`, the
//! Secure Channel key file (SCBK, 0600), and the status output the panel's LED, buzzer and
//! output commands reach. The PD itself (LibOSDP) is in `osdp_pd`.

use crate::problem::Problem;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Baud rates OSDP (and LibOSDP) allow.
pub const BAUD_RATES: [u32; 6] = [9600, 19200, 38400, 57600, 115_200, 230_400];

/// `[output.osdp]`: the RS-485 line, this reader's address and its Secure Channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OsdpConfig {
    /// The serial device of the RS-485 adapter or HAT (e.g. `/dev/ttyUSB0`, `/dev/ttyAMA0`).
    pub device: Option<PathBuf>,
    /// Line speed; the panel's (9600 default).
    pub baud: u32,
    /// This reader's address on the bus, 0 to 126 (127 is broadcast), as set in the panel.
    pub address: u8,
    /// Secure Channel (default on). `false` sends card numbers in clear: warned loudly.
    pub secure_channel: bool,
    /// The Secure Channel Base Key: 32 hex digits in a file only the daemon's user can read.
    /// In the state directory by default: pairing (install mode) writes the panel's key there.
    pub key_file: PathBuf,
    /// Pairing: accept one Secure Channel session with the well-known install key (SCBK-D),
    /// in which the panel sets this reader's own key (saved to `key_file`). Off after pairing.
    /// Only while no key file exists: with one, it is ignored and a panel's key set refused, so
    /// a rogue panel on the line cannot replace the paired key.
    pub install_mode: bool,
    /// IEEE OUI this reader reports (`osdp_PDID`), 24 bits.
    pub vendor_code: u32,
    /// Model number reported to the panel.
    pub model: u8,
    /// Hardware version reported to the panel.
    pub version: u8,
    /// Serial number reported to the panel.
    pub serial_number: u32,
    /// LEDs the panel may drive (reported as a capability).
    pub leds: u8,
    /// Whether a buzzer is reported to the panel.
    pub buzzer: bool,
    /// Outputs the panel may switch (reported as a capability).
    pub outputs: u8,
}

impl Default for OsdpConfig {
    fn default() -> Self {
        Self {
            device: None,
            baud: 9600,
            address: 0,
            secure_channel: true,
            key_file: PathBuf::from("/var/lib/facegate/osdp.key"),
            install_mode: false,
            vendor_code: 0,
            model: 1,
            version: 1,
            serial_number: 0,
            leds: 1,
            buzzer: true,
            outputs: 0,
        }
    }
}

impl OsdpConfig {
    /// Checks the values when OSDP is the output: `Err(Problem::new(key, problem))`.
    pub fn check(&self) -> Result<(), Problem> {
        match &self.device {
            None => {
                return Err(Problem::new(
                    "output.osdp.device",
                    "missing: the RS-485 adapter's serial device (e.g. /dev/ttyUSB0)",
                ))
            }
            Some(d) if !d.is_absolute() => {
                return Err(Problem::new(
                    "output.osdp.device",
                    format!("{} is not an absolute path", d.display()),
                ))
            }
            Some(_) => {}
        }
        if !BAUD_RATES.contains(&self.baud) {
            return Err(Problem::new(
                "output.osdp.baud",
                format!("{} is not an OSDP speed ({BAUD_RATES:?})", self.baud),
            ));
        }
        if self.address > 126 {
            return Err(Problem::new(
                "output.osdp.address",
                format!(
                    "must be 0 to 126 (got {}; 127 is the broadcast address)",
                    self.address
                ),
            ));
        }
        if self.vendor_code > 0xff_ffff {
            return Err(Problem::new(
                "output.osdp.vendor_code",
                format!("must fit in 24 bits (got {:#x})", self.vendor_code),
            ));
        }
        if self.secure_channel && !self.key_file.is_absolute() {
            return Err(Problem::new(
                "output.osdp.key_file",
                format!("{} is not an absolute path", self.key_file.display()),
            ));
        }
        Ok(())
    }

    /// Settings that loosen security.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if !self.secure_channel {
            w.push(
                "output.osdp.secure_channel = false: card numbers cross the RS-485 line in clear, \
                 anyone on the wire can read and replay them"
                    .into(),
            );
        } else if self.install_mode {
            w.push(
                "output.osdp.install_mode = true: a panel may pair with the well-known install key; \
                 turn it off once paired"
                    .into(),
            );
        }
        w
    }
}

/// The Secure Channel key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file cannot be read (missing, no permission).
    #[error("{}: {source} (create it with 32 hex digits, mode 0600, owned by the daemon's user)", path.display())]
    Read {
        /// The key file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Others than the owner may read it.
    #[error("{}: mode {mode:04o} lets others read the key: chmod 600 it", path.display())]
    Exposed {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Not 32 hex digits.
    #[error("{}: not a key (expected 32 hex digits, 16 bytes)", path.display())]
    Format {
        /// The key file.
        path: PathBuf,
    },
    /// A new key (set by the panel) could not be saved.
    #[error("{}: saving the new key: {source}", path.display())]
    Write {
        /// The key file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Parses 32 hex digits (surrounding whitespace allowed).
pub fn parse_key(text: &str) -> Option<[u8; 16]> {
    let t = text.trim();
    if t.len() != 32 || !t.is_ascii() {
        return None;
    }
    let mut key = [0u8; 16];
    for (i, b) in key.iter_mut().enumerate() {
        *b = u8::from_str_radix(&t[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(key)
}

/// Reads the SCBK from `path`, refusing a file that group or others may read.
pub fn read_key(path: &Path) -> Result<[u8; 16], KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let read = |source| KeyError::Read {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read)?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Exposed {
            path: path.to_owned(),
            mode,
        });
    }
    let text = std::fs::read_to_string(path).map_err(read)?;
    parse_key(&text).ok_or_else(|| KeyError::Format {
        path: path.to_owned(),
    })
}

/// Writes `key` to `path` atomically, mode 0600 (the panel's KEYSET when pairing).
pub fn write_key(path: &Path, key: &[u8; 16]) -> Result<(), KeyError> {
    use std::io::Write;
    let err = |source| KeyError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    // tempfile creates the file 0600; the rename makes the new key whole or absent.
    let mut f = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    writeln!(f, "{hex}").map_err(err)?;
    f.as_file().sync_all().map_err(err)?;
    f.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

/// A command of the panel to this reader's status output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PanelCommand {
    /// Set an LED: `color` (OSDP colour name) for `on_ms`, then `off_color` for `off_ms`,
    /// repeating; `for_ms` > 0 is a temporary state that reverts after that long.
    Led {
        /// LED number.
        led: u8,
        /// Colour while on.
        color: &'static str,
        /// Colour while off.
        off_color: &'static str,
        /// On time of each flash (0: steady).
        on_ms: u32,
        /// Off time of each flash.
        off_ms: u32,
        /// Temporary state's length (0: permanent).
        for_ms: u32,
    },
    /// Sound the buzzer `count` times (0: until told otherwise); `on_ms` 0 silences it.
    Buzzer {
        /// On time of each beep.
        on_ms: u32,
        /// Off time between beeps.
        off_ms: u32,
        /// Beeps.
        count: u8,
    },
    /// Switch an output on or off, for `for_ms` (0: permanently).
    Output {
        /// Output number.
        output: u8,
        /// On or off.
        on: bool,
        /// Timed operation's length (0: permanent).
        for_ms: u32,
    },
    /// Show text (a reader with a display).
    Text(String),
}

/// Where the panel's LED, buzzer and output commands go: a GPIO LED or buzzer implements this.
pub trait StatusOutput: Send {
    /// Carries out `cmd`; an error is logged, and the panel is told the command failed.
    fn apply(&mut self, cmd: &PanelCommand) -> Result<(), String>;
}

/// Counts of the panel's commands, shared with whoever reports them.
#[derive(Debug, Default)]
pub struct CommandCounts {
    /// LED commands.
    pub led: AtomicU64,
    /// Buzzer commands.
    pub buzzer: AtomicU64,
    /// Output commands.
    pub output: AtomicU64,
    /// Text commands.
    pub text: AtomicU64,
}

/// The status output of a reader without LED or buzzer hardware: logs and counts each command.
#[derive(Debug, Default, Clone)]
pub struct LoggedStatus {
    /// The counts so far.
    pub counts: Arc<CommandCounts>,
}

impl StatusOutput for LoggedStatus {
    fn apply(&mut self, cmd: &PanelCommand) -> Result<(), String> {
        let c = &self.counts;
        let n = match cmd {
            PanelCommand::Led { .. } => &c.led,
            PanelCommand::Buzzer { .. } => &c.buzzer,
            PanelCommand::Output { .. } => &c.output,
            PanelCommand::Text(_) => &c.text,
        };
        n.fetch_add(1, Ordering::Relaxed);
        tracing::info!(?cmd, "panel command");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn good() -> OsdpConfig {
        OsdpConfig {
            device: Some("/dev/ttyUSB0".into()),
            ..OsdpConfig::default()
        }
    }

    #[test]
    fn config_errors_name_the_key() {
        assert_eq!(
            OsdpConfig::default().check().unwrap_err().key,
            "output.osdp.device"
        );
        good().check().unwrap();
        let bad = OsdpConfig {
            address: 127,
            ..good()
        };
        assert_eq!(bad.check().unwrap_err().key, "output.osdp.address");
        let bad = OsdpConfig {
            baud: 9601,
            ..good()
        };
        assert_eq!(bad.check().unwrap_err().key, "output.osdp.baud");
        let bad = OsdpConfig {
            key_file: "osdp.key".into(),
            ..good()
        };
        assert_eq!(bad.check().unwrap_err().key, "output.osdp.key_file");
        assert!(good().warnings().is_empty());
        let clear = OsdpConfig {
            secure_channel: false,
            ..good()
        };
        assert!(clear.warnings()[0].contains("in clear"));
    }

    #[test]
    fn the_key_file_must_be_private_and_well_formed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("osdp.key");
        let key: [u8; 16] = *b"0123456789abcdef";
        write_key(&path, &key).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read_key(&path).unwrap(), key);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_key(&path).unwrap_err();
        assert!(matches!(e, KeyError::Exposed { mode: 0o644, .. }), "{e}");
        std::fs::write(&path, "not a key\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(read_key(&path), Err(KeyError::Format { .. })));
        assert!(matches!(
            read_key(&dir.path().join("none")),
            Err(KeyError::Read { .. })
        ));
        assert_eq!(
            parse_key(" 000102030405060708090a0b0c0d0e0f\n").unwrap()[15],
            15
        );
        assert!(parse_key("000102030405060708090a0b0c0d0e0g").is_none());
    }
}
