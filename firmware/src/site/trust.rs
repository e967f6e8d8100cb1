//! The door's side of the site link: what makes a message from the site count. The site link
//! (its own process, `facegate-site`) only forwards signed messages over the control API; the
//! door checks every one here — signature, site, door, model, version and time — and keeps the
//! versions it took, so a compromised, crashed or replaying site link can do no more than the
//! site's signing key allows.
//!
//! Refusals are words of a fixed vocabulary ([`Refusal`]) with numbers of the door's own, never
//! the message's text: nothing an attacker on the broker writes reaches the audit log.

use super::signing::{load_public, Envelope, SignError};
use super::{Command, MqttConfig};
use crate::door::control_api::is_name;
use crate::people::gallery::{write_atomic, Gallery, Locked};
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Largest command message (a signed envelope around a few words is ~500 bytes).
pub const MAX_COMMAND_BYTES: usize = 4096;
/// Bytes a person may take in a signed gallery (a 512-d embedding in base64 is ~2.7 KB: room
/// for a few photos each).
pub const BYTES_PER_PERSON: usize = 8 << 10;
/// A version (the admin machine's clock at signing) further ahead of the door's clock than
/// this is refused: an admin PC whose clock runs ahead must not lock out every later message.
pub const MAX_AHEAD: Duration = Duration::from_secs(5 * 60);
/// A remote unlock signed longer ago (or further ahead) than this is refused: a delayed or
/// replayed unlock.
pub const UNLOCK_WINDOW: Duration = Duration::from_secs(30);

/// The largest signed gallery a door takes when it may hold `max_people` people.
pub fn max_gallery_bytes(max_people: usize) -> usize {
    max_people.saturating_mul(BYTES_PER_PERSON) + (64 << 10)
}

/// Why a site message was not taken: a fixed vocabulary, safe to log and to publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// Larger than its kind may be.
    TooLarge,
    /// Not a signed facegate message.
    Malformed,
    /// Signed by another key, or altered.
    BadSignature,
    /// A gallery where a command was expected, or the reverse.
    WrongKind,
    /// Signed for another site.
    OtherSite,
    /// A gallery made with another embedding model.
    OtherModel,
    /// Not newer than what the door already took.
    Replayed,
    /// Dated further ahead of the door's clock than [`MAX_AHEAD`].
    FromTheFuture,
    /// A remote unlock outside its [`UNLOCK_WINDOW`].
    Expired,
    /// A command this door does not know, or a name it cannot record.
    UnknownCommand,
    /// This door does not take commands (`mqtt.commands = false`) or has no site key.
    NotTaken,
    /// More people than `mqtt.max_people`.
    TooManyPeople,
    /// The gallery in it does not parse.
    BadGallery,
    /// The door could not save what it took (disk): it stays as it was.
    NotSaved,
}

impl Refusal {
    /// Every refusal, in order.
    pub const ALL: [Refusal; 14] = [
        Self::TooLarge,
        Self::Malformed,
        Self::BadSignature,
        Self::WrongKind,
        Self::OtherSite,
        Self::OtherModel,
        Self::Replayed,
        Self::FromTheFuture,
        Self::Expired,
        Self::UnknownCommand,
        Self::NotTaken,
        Self::TooManyPeople,
        Self::BadGallery,
        Self::NotSaved,
    ];

    /// Its word (`too_large`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::Malformed => "malformed",
            Self::BadSignature => "bad_signature",
            Self::WrongKind => "wrong_kind",
            Self::OtherSite => "other_site",
            Self::OtherModel => "other_model",
            Self::Replayed => "replayed",
            Self::FromTheFuture => "from_the_future",
            Self::Expired => "expired",
            Self::UnknownCommand => "unknown_command",
            Self::NotTaken => "not_taken",
            Self::TooManyPeople => "too_many_people",
            Self::BadGallery => "bad_gallery",
            Self::NotSaved => "not_saved",
        }
    }

    /// The refusal named `word`.
    pub fn parse(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == word)
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal with the door's own numbers (versions, sizes): no text from the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Why.
    pub why: Refusal,
    /// Details in the door's words.
    pub detail: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.detail.is_empty() {
            write!(f, "{}", self.why)
        } else {
            write!(f, "{}: {}", self.why, self.detail)
        }
    }
}

fn refused(why: Refusal, detail: impl Into<String>) -> Refused {
    Refused {
        why,
        detail: detail.into(),
    }
}

impl From<SignError> for Refused {
    fn from(e: SignError) -> Self {
        match e {
            SignError::BadSignature => refused(Refusal::BadSignature, ""),
            _ => refused(Refusal::Malformed, ""),
        }
    }
}

/// What a site message, once checked, asks of the door.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// Lockdown on or off (a state: the newest wins).
    Lockdown {
        /// On.
        on: bool,
        /// Who signed it off (a checked NAME).
        by: String,
        /// Its version.
        version: u64,
    },
    /// One remote unlock through the gate.
    Unlock {
        /// Who asked (a checked NAME).
        by: String,
    },
    /// A new site gallery was saved for the door's reloader.
    Gallery {
        /// Its version.
        version: u64,
        /// People in it.
        people: usize,
    },
    /// Nothing to do: for another door, the retained message again, or a lockdown state
    /// older than the one in force.
    Nothing,
}

/// What the door took from the site, kept across restarts (`<gallery>.site.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SiteState {
    /// The version of the site gallery in use.
    pub gallery_version: u64,
    /// The version of the last remote unlock taken.
    pub command_version: u64,
    /// The version of the lockdown state in force.
    pub lockdown_version: u64,
    /// Who put the door in lockdown, while it is.
    pub lockdown_by: Option<String>,
}

/// What the door found of its site state at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Startup {
    /// No state yet, or a state without lockdown.
    Normal,
    /// A lockdown from before the restart is still in force.
    Lockdown {
        /// Who asked for it.
        by: String,
    },
    /// The state file could not be read: the door starts in lockdown (fails towards locked)
    /// until a signed clear, or `facegate door site-reset`, says otherwise.
    Unreadable {
        /// What is wrong, in the door's words.
        problem: String,
    },
}

/// The door's judge of site messages.
#[derive(Debug)]
pub struct SiteTrust {
    key: VerifyingKey,
    site: String,
    door: String,
    fingerprint: String,
    commands: bool,
    max_people: usize,
    gallery_path: PathBuf,
    state_path: PathBuf,
    state: SiteState,
}

/// Where the site state of the door with this gallery is kept.
pub fn state_path(gallery: &Path) -> PathBuf {
    let mut p = gallery.as_os_str().to_owned();
    p.push(".site.json");
    PathBuf::from(p)
}

impl SiteTrust {
    /// The judge for the door of `cfg` whose gallery is at `gallery_path`, running the model
    /// with `fingerprint`; `None` without a site key (the door takes nothing from the site).
    pub fn open(
        cfg: &MqttConfig,
        gallery_path: &Path,
        fingerprint: &str,
    ) -> Result<Option<(Self, Startup)>, SignError> {
        let Some(key_path) = &cfg.site_key else {
            return Ok(None);
        };
        let key = load_public(key_path)?;
        let state_path = state_path(gallery_path);
        let (state, startup) = match std::fs::read(&state_path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                (SiteState::default(), Startup::Normal)
            }
            Err(e) => (
                SiteState::default(),
                Startup::Unreadable {
                    problem: format!("{}: {e}", state_path.display()),
                },
            ),
            Ok(bytes) => match serde_json::from_slice::<SiteState>(&bytes) {
                Ok(s) => {
                    let startup = match &s.lockdown_by {
                        Some(by) if cfg.commands => Startup::Lockdown { by: by.clone() },
                        _ => Startup::Normal,
                    };
                    (s, startup)
                }
                Err(e) => (
                    SiteState::default(),
                    Startup::Unreadable {
                        problem: format!("{}: not a site state ({e})", state_path.display()),
                    },
                ),
            },
        };
        Ok(Some((
            Self {
                key,
                site: cfg.site.clone(),
                door: cfg.door.clone(),
                fingerprint: fingerprint.to_owned(),
                commands: cfg.commands,
                max_people: cfg.max_people,
                gallery_path: gallery_path.to_owned(),
                state_path,
                state,
            },
            startup,
        )))
    }

    /// The largest gallery message this door takes.
    pub fn max_gallery_bytes(&self) -> usize {
        max_gallery_bytes(self.max_people)
    }

    /// The versions taken so far.
    pub fn state(&self) -> &SiteState {
        &self.state
    }

    /// Opens `bytes` as a signed envelope of `kind` for this site; `None` if it is for another
    /// door. Checks the date against the door's clock (`now_ms`).
    fn open_envelope(
        &self,
        bytes: &[u8],
        kind: &str,
        now_ms: u64,
    ) -> Result<Option<Envelope>, Refused> {
        let e = Envelope::open(bytes, &self.key)?;
        if e.kind != kind {
            return Err(refused(Refusal::WrongKind, format!("expected a {kind}")));
        }
        if e.site != self.site {
            return Err(refused(Refusal::OtherSite, ""));
        }
        if e.door != "*" && e.door != self.door {
            return Ok(None);
        }
        let ahead = e.version.saturating_sub(now_ms);
        if ahead > MAX_AHEAD.as_millis() as u64 {
            return Err(refused(
                Refusal::FromTheFuture,
                format!(
                    "version {} is {} s ahead of this door's clock",
                    e.version,
                    ahead / 1000
                ),
            ));
        }
        Ok(Some(e))
    }

    fn save(&self, state: &SiteState) -> Result<(), Refused> {
        let bytes = serde_json::to_vec(state).unwrap_or_default();
        write_atomic(&self.state_path, &bytes)
            .map_err(|e| refused(Refusal::NotSaved, format!("site state: {e}")))
    }

    /// A signed command (lockdown, clear_lockdown, unlock), checked.
    pub fn command(&mut self, bytes: &[u8], now_ms: u64) -> Result<Accepted, Refused> {
        if bytes.len() > MAX_COMMAND_BYTES {
            return Err(refused(Refusal::TooLarge, format!("{} bytes", bytes.len())));
        }
        if !self.commands {
            return Err(refused(Refusal::NotTaken, "mqtt.commands is off"));
        }
        let Some(e) = self.open_envelope(bytes, "command", now_ms)? else {
            return Ok(Accepted::Nothing);
        };
        let c: Command = serde_json::from_str(&e.payload)
            .map_err(|_| refused(Refusal::UnknownCommand, "not a command"))?;
        if !is_name(&c.by) {
            return Err(refused(Refusal::UnknownCommand, "who asked is not a NAME"));
        }
        match c.action.as_str() {
            "lockdown" | "clear_lockdown" => {
                let on = c.action == "lockdown";
                // A state: the newest wins; an older one (the other retained lockdown topic,
                // a replay) changes nothing and needs no record.
                if e.version <= self.state.lockdown_version {
                    return Ok(Accepted::Nothing);
                }
                let mut next = self.state.clone();
                next.lockdown_version = e.version;
                next.lockdown_by = on.then(|| c.by.clone());
                if let Err(r) = self.save(&next) {
                    if on {
                        // Fails towards lockdown: in force now, even if not kept.
                        self.state = next;
                        tracing::error!("{r}; the lockdown holds until restart only");
                    } else {
                        return Err(r);
                    }
                } else {
                    self.state = next;
                }
                Ok(Accepted::Lockdown {
                    on,
                    by: c.by,
                    version: e.version,
                })
            }
            "unlock" => {
                if e.version <= self.state.command_version {
                    return Err(refused(
                        Refusal::Replayed,
                        format!(
                            "version {} not newer than {}",
                            e.version, self.state.command_version
                        ),
                    ));
                }
                let off = now_ms.abs_diff(e.version);
                if off > UNLOCK_WINDOW.as_millis() as u64 {
                    return Err(refused(
                        Refusal::Expired,
                        format!("signed {} s from this door's clock", off / 1000),
                    ));
                }
                let mut next = self.state.clone();
                next.command_version = e.version;
                // Not kept, not taken: else a restart would take the same unlock again.
                self.save(&next)?;
                self.state = next;
                Ok(Accepted::Unlock { by: c.by })
            }
            _ => Err(refused(Refusal::UnknownCommand, "")),
        }
    }

    /// A signed site gallery, checked and saved (atomically, under the gallery's lock) for the
    /// door's reloader.
    pub fn gallery(&mut self, bytes: &[u8], now_ms: u64) -> Result<Accepted, Refused> {
        let max = max_gallery_bytes(self.max_people);
        if bytes.len() > max {
            return Err(refused(
                Refusal::TooLarge,
                format!("{} bytes, at most {max}", bytes.len()),
            ));
        }
        let Some(e) = self.open_envelope(bytes, "gallery", now_ms)? else {
            return Ok(Accepted::Nothing);
        };
        if e.fingerprint != self.fingerprint {
            return Err(refused(
                Refusal::OtherModel,
                format!("this door runs {}", self.fingerprint),
            ));
        }
        if e.version == self.state.gallery_version {
            return Ok(Accepted::Nothing); // the retained gallery again, after a reconnect
        }
        if e.version < self.state.gallery_version {
            return Err(refused(
                Refusal::Replayed,
                format!(
                    "version {} older than the site gallery in use ({})",
                    e.version, self.state.gallery_version
                ),
            ));
        }
        let g = Gallery::parse(&e.payload, Path::new("site gallery"), &self.fingerprint)
            .map_err(|_| refused(Refusal::BadGallery, ""))?;
        if g.people.len() > self.max_people {
            return Err(refused(
                Refusal::TooManyPeople,
                format!("{} people, at most {}", g.people.len(), self.max_people),
            ));
        }
        let mut next = self.state.clone();
        next.gallery_version = e.version;
        // The gallery first, then its version: a crash between the two takes the same
        // gallery once more when the retained message comes again (harmless).
        Locked::acquire(&self.gallery_path)
            .and_then(|l| l.save(&g))
            .map_err(|e| refused(Refusal::NotSaved, format!("gallery: {e}")))?;
        self.save(&next)?;
        self.state = next;
        Ok(Accepted::Gallery {
            version: e.version,
            people: g.people.len(),
        })
    }

    /// The recovery for a stored version that lies ahead (a message signed on a clock that ran
    /// ahead was taken before this door refused such): every version back to `now_ms`, so
    /// correctly dated messages are taken again. The lockdown in force stays.
    pub fn reset_versions(&mut self, now_ms: u64) -> Result<SiteState, Refused> {
        let before = self.state.clone();
        let mut next = self.state.clone();
        next.gallery_version = next.gallery_version.min(now_ms);
        next.command_version = next.command_version.min(now_ms);
        next.lockdown_version = next.lockdown_version.min(now_ms);
        self.save(&next)?;
        self.state = next;
        Ok(before)
    }
}

/// Refusals recorded one by one in a minute; more are counted and recorded as one summary, so
/// a flood of junk can neither fill the disk nor keep the door's loop writing.
pub const REFUSALS_PER_MINUTE: u32 = 10;

/// The budget of refusal records: at most [`REFUSALS_PER_MINUTE`] a minute, then a count.
#[derive(Debug, Default)]
pub struct RefusalBudget {
    window: Option<Duration>,
    recorded: u32,
    suppressed: u32,
}

impl RefusalBudget {
    /// Whether a refusal at `now` (monotonic) may be recorded on its own; if not, it is counted
    /// for the summary.
    pub fn admit(&mut self, now: Duration) -> bool {
        if self.window.is_none() {
            self.window = Some(now);
        }
        if self.recorded < REFUSALS_PER_MINUTE {
            self.recorded += 1;
            true
        } else {
            self.suppressed = self.suppressed.saturating_add(1);
            false
        }
    }

    /// Once the minute is over: how many refusals were not recorded one by one in it (`None`:
    /// none, or the minute is not over). A new minute starts.
    pub fn summary_due(&mut self, now: Duration) -> Option<u32> {
        let start = self.window?;
        if now.saturating_sub(start) < Duration::from_secs(60) {
            return None;
        }
        let n = std::mem::take(&mut self.suppressed);
        self.window = None;
        self.recorded = 0;
        (n > 0).then_some(n)
    }
}

#[cfg(test)]
mod tests;
