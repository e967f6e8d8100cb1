//! Which pin, with which polarity, to drive "locked" when nothing else can be trusted: the record
//! the running daemon leaves under `/run/facegate/`, else a tolerant read of only `[lock]` from the
//! config file, else the defaults. `facegated --lock` and the start of the daemon use this before
//! the strict config check, so a typo elsewhere in the file never keeps the door unlocked.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

/// `[lock]`: the relay output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LockConfig {
    /// BCM GPIO number driving the relay (GPIO17 is header pin 11).
    pub gpio: u8,
    /// `true` for relay boards that energise when their input is driven low.
    pub active_low: bool,
    /// How long the door stays unlocked after a grant.
    pub unlock_seconds: f64,
}

impl Default for LockConfig {
    fn default() -> Self {
        Self {
            gpio: 17,
            active_low: false,
            unlock_seconds: 5.0,
        }
    }
}

/// Where the running daemon records the pin it drives (the unit's `RuntimeDirectory=facegate`).
pub const RECORD_PATH: &str = "/run/facegate/lock.toml";

/// BCM GPIOs with a 1.8 kOhm pull-up on the Raspberry Pi board (I2C1 SDA/SCL): high from
/// power-on, so an active-high relay on them is energised ("unlocked") until the daemon runs.
pub const PULLED_UP_AT_BOOT: [u8; 2] = [2, 3];

/// A lock output: the pin and its polarity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockPin {
    /// BCM GPIO number.
    pub gpio: u8,
    /// The relay energises ("unlocked") when the pin is low.
    pub active_low: bool,
}

impl LockPin {
    /// The pin of a (strictly checked) `[lock]` section.
    pub fn of(config: &LockConfig) -> Self {
        Self {
            gpio: config.gpio,
            active_low: config.active_low,
        }
    }

    /// "GPIO17 (active-high)", for messages.
    pub fn describe(&self) -> String {
        let pol = if self.active_low {
            "active-low"
        } else {
            "active-high"
        };
        format!("GPIO{} ({pol})", self.gpio)
    }
}

impl Default for LockPin {
    fn default() -> Self {
        Self::of(&LockConfig::default())
    }
}

/// Where the chosen pin came from, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The record of the daemon that ran last (the pin it was actually driving).
    Record,
    /// The config file's `[lock]` section.
    Config,
    /// Defaults, for the reasons given (no file, or `[lock]` itself unreadable).
    Defaults(String),
}

/// The pin to lock and why that one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// The pin.
    pub pin: LockPin,
    /// Where it came from.
    pub source: Source,
    /// What was wrong on the way (a broken record, a broken config elsewhere), for the log.
    pub notes: Vec<String>,
}

impl std::fmt::Display for Choice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let from = match &self.source {
            Source::Record => "as recorded by the daemon that ran last".to_owned(),
            Source::Config => "from the config's [lock]".to_owned(),
            Source::Defaults(why) => format!("by default ({why})"),
        };
        write!(f, "{} {from}", self.pin.describe())
    }
}

/// Reads `[lock]` `gpio` and `active_low` from config text, however broken the rest is: the
/// whole file if it parses as TOML, else only the lines of its `[lock]` table. `Err` says why
/// no pin could be read (the caller then uses the defaults, which is also what a config
/// without `[lock]` means).
pub fn lock_from_config_text(text: &str) -> Result<(LockPin, Vec<String>), String> {
    let mut notes = Vec::new();
    let table: toml::Table = match text.parse::<toml::Table>() {
        Ok(t) => t,
        Err(e) => {
            notes.push(format!(
                "the file is not valid TOML ({}); reading its [lock] lines only",
                first_line(&e.to_string())
            ));
            lock_section(text)
                .parse::<toml::Table>()
                .map_err(|e| format!("[lock] is not valid TOML: {}", first_line(&e.to_string())))?
        }
    };
    let Some(lock) = table.get("lock") else {
        return Err("no [lock] in the config".into());
    };
    let lock = lock
        .as_table()
        .ok_or_else(|| "lock is not a table".to_owned())?;
    let default = LockPin::default();
    let gpio = match lock.get("gpio") {
        None => default.gpio,
        Some(v) => v
            .as_integer()
            .and_then(|g| u8::try_from(g).ok())
            .filter(|g| *g <= 27)
            .ok_or_else(|| format!("lock.gpio = {v} is not a BCM GPIO 0 to 27"))?,
    };
    let active_low = match lock.get("active_low") {
        None => default.active_low,
        Some(v) => v
            .as_bool()
            .ok_or_else(|| format!("lock.active_low = {v} is not true or false"))?,
    };
    Ok((LockPin { gpio, active_low }, notes))
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("").trim()
}

/// The `[lock]` header and the lines up to the next table header.
fn lock_section(text: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with('[') {
            inside = t
                .trim_start_matches('[')
                .trim_start()
                .strip_prefix("lock")
                .is_some_and(|rest| rest.trim_start().starts_with(']'));
        }
        if inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Chooses the pin to lock from the record's text (if any) and the config's text (if any).
/// Never fails: a door must be locked with the best knowledge there is.
pub fn choose(record: Option<&str>, config: Option<&str>) -> Choice {
    let mut notes = Vec::new();
    if let Some(text) = record {
        match toml::from_str::<LockPin>(text) {
            Ok(pin) if pin.gpio <= 27 => {
                return Choice {
                    pin,
                    source: Source::Record,
                    notes,
                }
            }
            Ok(pin) => notes.push(format!("the record names GPIO{}: ignored", pin.gpio)),
            Err(e) => notes.push(format!(
                "the record is unreadable ({}): ignored",
                first_line(&e.to_string())
            )),
        }
    }
    let Some(text) = config else {
        return Choice {
            pin: LockPin::default(),
            source: Source::Defaults("no config file".into()),
            notes,
        };
    };
    match lock_from_config_text(text) {
        Ok((pin, more)) => {
            notes.extend(more);
            Choice {
                pin,
                source: Source::Config,
                notes,
            }
        }
        Err(why) => Choice {
            pin: LockPin::default(),
            source: Source::Defaults(why),
            notes,
        },
    }
}

/// Writes the record of the pin being driven, atomically (temporary file, fsync, rename), so
/// `facegated --lock` after a kill reads either the old or the new record, never half of one.
pub fn write_record(path: &Path, pin: LockPin) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    let text = toml::to_string(&pin).map_err(std::io::Error::other)?;
    tmp.write_all(
        format!("# the lock output facegated drives (read by `facegated --lock`)\n{text}")
            .as_bytes(),
    )?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BROKEN: &str =
        "[camera]\nfps = \"fast\n[lock]\ngpio = 22\nactive_low = true\n[recognition]\nframes = 1\n";

    #[test]
    fn the_record_wins_over_the_config() {
        let c = choose(
            Some("gpio = 5\nactive_low = true\n"),
            Some("[lock]\ngpio = 22\n"),
        );
        assert_eq!(
            c.pin,
            LockPin {
                gpio: 5,
                active_low: true
            }
        );
        assert_eq!(c.source, Source::Record);
    }

    #[test]
    fn a_config_broken_elsewhere_still_gives_its_lock_section() {
        let c = choose(None, Some(BROKEN));
        assert_eq!(
            c.pin,
            LockPin {
                gpio: 22,
                active_low: true
            }
        );
        assert_eq!(c.source, Source::Config);
        assert!(c.notes[0].contains("not valid TOML"), "{:?}", c.notes);
        // Valid TOML with unknown keys and bad values outside [lock]: [lock] is still read.
        let c = choose(
            None,
            Some("[lock]\ngpio = 6\nunlock_secs = 3\n[recognition]\nframes = 0\n"),
        );
        assert_eq!(c.pin.gpio, 6);
    }

    #[test]
    fn a_broken_record_falls_back_to_the_config() {
        let c = choose(Some("gpio = \"x"), Some("[lock]\ngpio = 22\n"));
        assert_eq!(c.pin.gpio, 22);
        assert!(c.notes[0].contains("record"), "{:?}", c.notes);
    }

    #[test]
    fn an_unreadable_lock_section_gives_the_defaults_with_the_reason() {
        for text in ["[lock]\ngpio = 99\n", "[lock]\nactive_low = 1\n", "[lock\n"] {
            let c = choose(None, Some(text));
            assert_eq!(c.pin, LockPin::default(), "{text}");
            assert!(matches!(c.source, Source::Defaults(_)), "{text}");
        }
        let c = choose(None, None);
        assert_eq!(c.source, Source::Defaults("no config file".into()));
        let c = choose(None, Some("[camera]\nfps = 5\n"));
        assert_eq!(c.source, Source::Defaults("no [lock] in the config".into()));
    }

    #[test]
    fn only_the_lock_table_is_cut_out() {
        let s = lock_section("[a]\nx=1\n[ lock ]\ngpio=4\n[lock.extra]\ny=2\n[b]\n");
        assert_eq!(s, "[ lock ]\ngpio=4\n");
    }

    #[test]
    fn the_record_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock.toml");
        let pin = LockPin {
            gpio: 27,
            active_low: true,
        };
        write_record(&path, pin).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(choose(Some(&text), None).pin, pin);
    }
}
