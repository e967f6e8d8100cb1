//! Second factors: which factors the door asks for (`[access] factors`, its schedule windows and
//! the person's own `policy.factors`), and the claim a card or a PIN makes until the face
//! confirms it or it times out (`[access] factor_seconds`).
//!
//! A card or a PIN *names* a person; the face is then checked 1:1 against that person only, at
//! the 1:1 threshold (`access::operating_point::one_to_one`), instead of a 1:N search at the
//! gallery-size threshold. The gate
//! (`access::gate`) is where a mode is enforced: a face request that lacks the factor its mode
//! requires is refused there (`second_factor`). This module only keeps the state between the
//! inputs and the face: the keypad's buffer, the claim and its expiry.

use crate::people::policy::{AccessConfig, Window};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime};

/// At most this many people within the 1:1 threshold of a face have a typed PIN checked against
/// their hashes (nearest first): each check is a slow hash.
pub const MAX_PIN_CANDIDATES: usize = 3;
/// Keys kept in the keypad's buffer; more clear it (a PIN is at most 12 digits).
pub const MAX_KEYS: usize = crate::people::pin::MAX_DIGITS;

/// What the door asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FactorMode {
    /// The face alone (1:N search); cards and PINs are not used (except by people whose own
    /// policy asks for two factors).
    #[default]
    Face,
    /// The face alone, or a card and the face checked 1:1 against the card's holder (the card
    /// helps those the 1:N search misses; it never opens alone).
    FaceOrCard,
    /// A card, then the face checked 1:1 against its holder.
    CardAndFace,
    /// A PIN and the face: the PIN is checked against the people nearest the face, and the face
    /// 1:1 against the one whose PIN it is.
    FaceAndPin,
}

impl FactorMode {
    /// Its name in the config and the records.
    pub fn as_str(self) -> &'static str {
        match self {
            FactorMode::Face => "face",
            FactorMode::FaceOrCard => "face_or_card",
            FactorMode::CardAndFace => "card_and_face",
            FactorMode::FaceAndPin => "face_and_pin",
        }
    }

    /// Whether a face presented with `presented` meets this mode.
    pub fn satisfied_by(self, presented: Presented) -> bool {
        match self {
            FactorMode::Face | FactorMode::FaceOrCard => true,
            FactorMode::CardAndFace => presented.card,
            FactorMode::FaceAndPin => presented.pin,
        }
    }

    /// Whether it asks for a second factor.
    pub fn two_factor(self) -> bool {
        matches!(self, FactorMode::CardAndFace | FactorMode::FaceAndPin)
    }

    /// Whether a card or PIN names a claim in this mode (not in `face`).
    pub fn takes_claims(self) -> bool {
        self != FactorMode::Face
    }
}

/// The factors presented with a face, besides the face.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Presented {
    /// A card of the person.
    pub card: bool,
    /// The person's PIN (or their duress PIN).
    pub pin: bool,
}

impl Presented {
    /// For the records: `face`, `face+card`, `face+pin`.
    pub fn describe(self) -> &'static str {
        match (self.card, self.pin) {
            (false, false) => "face",
            (true, false) => "face+card",
            (false, true) => "face+pin",
            (true, true) => "face+card+pin",
        }
    }
}

/// `[[access.factors_windows]]`: a stricter mode inside a weekly window (e.g. nights).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FactorWindow {
    /// When, e.g. `"mon-fri 19:00-07:00"` or `"sat,sun 00:00-24:00"`.
    pub window: Window,
    /// The mode then.
    pub factors: FactorMode,
}

/// The mode at a moment: the site's, a window's, the person's.
#[derive(Debug, Clone)]
pub struct FactorRule {
    mode: FactorMode,
    windows: Vec<FactorWindow>,
    zone: TimeZone,
    access: AccessConfig,
}

impl Default for FactorRule {
    fn default() -> Self {
        Self::of(&AccessConfig::default())
    }
}

impl FactorRule {
    /// As `[access]` says.
    pub fn of(access: &AccessConfig) -> Self {
        Self {
            mode: access.factors,
            windows: access.factors_windows.clone(),
            zone: access.zone().unwrap_or(TimeZone::UTC),
            access: access.clone(),
        }
    }

    /// The site's mode at `wall` (the first window containing it, else `[access] factors`).
    pub fn site_mode(&self, wall: SystemTime) -> FactorMode {
        if self.windows.is_empty() {
            return self.mode;
        }
        let local = self.access.local(&self.zone, wall);
        self.windows
            .iter()
            .find(|w| w.window.contains(local))
            .map_or(self.mode, |w| w.factors)
    }

    /// The mode for a person whose own policy says `person` at `wall`: theirs when it asks for a
    /// second factor (someone who must always use two), else the site's. A person's setting
    /// never weakens the site's.
    pub fn mode_at(&self, wall: SystemTime, person: Option<FactorMode>) -> FactorMode {
        let site = self.site_mode(wall);
        match person {
            Some(p) if p.two_factor() => p,
            _ => site,
        }
    }

    /// Whether any mode this rule can give takes claims (then inputs are read at all).
    pub fn ever_takes_claims(&self) -> bool {
        self.mode.takes_claims() || self.windows.iter().any(|w| w.factors.takes_claims())
    }
}

/// What a claim rests on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// A card of a known person (gallery index and id).
    Card {
        /// Index in the gallery in use.
        person: usize,
        /// Their id (for the records).
        id: String,
    },
    /// Typed digits, not yet checked against anyone (the face names the candidates).
    Pin(Digits),
    /// A PIN that matched a person near the face.
    PinOf {
        /// Index in the gallery in use.
        person: usize,
        /// Their id.
        id: String,
        /// It was their duress PIN.
        duress: bool,
    },
}

impl Claim {
    /// The person it names, once known.
    pub fn person(&self) -> Option<usize> {
        match self {
            Claim::Card { person, .. } | Claim::PinOf { person, .. } => Some(*person),
            Claim::Pin(_) => None,
        }
    }

    /// The factors it stands for.
    pub fn presented(&self) -> Presented {
        match self {
            Claim::Card { .. } => Presented {
                card: true,
                pin: false,
            },
            Claim::Pin(_) | Claim::PinOf { .. } => Presented {
                card: false,
                pin: true,
            },
        }
    }

    /// Whether a duress PIN made it.
    pub fn duress(&self) -> bool {
        matches!(self, Claim::PinOf { duress: true, .. })
    }
}

/// Typed digits, wiped when dropped (they are a PIN).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Digits(String);

impl Digits {
    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Digits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Digits({} typed)", self.0.len())
    }
}

impl Drop for Digits {
    fn drop(&mut self) {
        // Not left behind in freed memory.
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

/// What a key did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOutcome {
    /// Kept in the buffer (or ignored).
    Pending,
    /// `#`: the digits typed, a PIN's length.
    Entered(Digits),
    /// `#` after too few or too many digits: refused, the buffer cleared.
    Malformed,
}

/// The keypad buffer and the claim.
#[derive(Debug)]
pub struct Claims {
    timeout: Duration,
    keys: Digits,
    last_key: Option<Duration>,
    claim: Option<(Claim, Duration)>,
}

impl Claims {
    /// Claims expiring after `timeout` (`[access] factor_seconds`).
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            keys: Digits::default(),
            last_key: None,
            claim: None,
        }
    }

    /// A key at `now`: digits are kept (at most [`MAX_KEYS`]), `*` or `ESC` clears, `#` or
    /// Enter ends the PIN. A buffer idle for the timeout is cleared first.
    pub fn key(&mut self, now: Duration, key: char) -> KeyOutcome {
        if self
            .last_key
            .is_some_and(|t| now.saturating_sub(t) > self.timeout)
        {
            self.keys = Digits::default();
        }
        self.last_key = Some(now);
        match key {
            '0'..='9' => {
                if self.keys.0.len() >= MAX_KEYS {
                    // Someone leaning on the keys: start over rather than keep a prefix.
                    self.keys = Digits::default();
                    return KeyOutcome::Malformed;
                }
                self.keys.0.push(key);
                KeyOutcome::Pending
            }
            '*' | '\u{1b}' => {
                self.keys = Digits::default();
                KeyOutcome::Pending
            }
            '#' | '\n' | '\r' => {
                let typed = std::mem::take(&mut self.keys);
                if crate::people::pin::check(typed.as_str()).is_ok() {
                    KeyOutcome::Entered(typed)
                } else {
                    KeyOutcome::Malformed
                }
            }
            _ => KeyOutcome::Pending,
        }
    }

    /// Makes `claim` the claim from `now` on (a newer card or PIN replaces an older claim).
    pub fn set(&mut self, now: Duration, claim: Claim) {
        self.claim = Some((claim, now));
    }

    /// The claim, if any.
    pub fn get(&self) -> Option<&Claim> {
        self.claim.as_ref().map(|c| &c.0)
    }

    /// Whether a claim is waiting for a face.
    pub fn active(&self) -> bool {
        self.claim.is_some()
    }

    /// Takes the claim (used, refused, or the gallery changed).
    pub fn take(&mut self) -> Option<Claim> {
        self.claim.take().map(|c| c.0)
    }

    /// The claim, if it has waited for a face longer than the timeout at `now` (it is then gone).
    pub fn expired(&mut self, now: Duration) -> Option<Claim> {
        let since = self.claim.as_ref()?.1;
        if now.saturating_sub(since) > self.timeout {
            return self.take();
        }
        None
    }

    /// Replaces the claim's kind, keeping its start (a PIN found its person).
    pub fn resolve(&mut self, claim: Claim) {
        if let Some(c) = &mut self.claim {
            c.0 = claim;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: f64) -> Duration {
        Duration::from_secs_f64(x)
    }

    fn typed(c: &mut Claims, t: f64, keys: &str) -> Vec<KeyOutcome> {
        keys.chars().map(|k| c.key(s(t), k)).collect()
    }

    #[test]
    fn a_pin_ends_with_hash_and_star_clears() {
        let mut c = Claims::new(s(10.0));
        let out = typed(&mut c, 0.0, "1234#");
        assert_eq!(
            out.last(),
            Some(&KeyOutcome::Entered(Digits("1234".into())))
        );
        let out = typed(&mut c, 1.0, "99*5678#");
        assert_eq!(
            out.last(),
            Some(&KeyOutcome::Entered(Digits("5678".into())))
        );
        // Too short, too long: refused, the buffer starts over.
        assert_eq!(
            typed(&mut c, 2.0, "12#").last(),
            Some(&KeyOutcome::Malformed)
        );
        let long = typed(&mut c, 3.0, "1234567890123");
        assert_eq!(long.last(), Some(&KeyOutcome::Malformed));
        assert_eq!(
            typed(&mut c, 3.0, "4321#").last(),
            Some(&KeyOutcome::Entered(Digits("4321".into())))
        );
        // Other keys are ignored.
        assert_eq!(
            typed(&mut c, 4.0, "12a34#").last(),
            Some(&KeyOutcome::Entered(Digits("1234".into())))
        );
    }

    #[test]
    fn keys_left_idle_are_forgotten() {
        let mut c = Claims::new(s(10.0));
        typed(&mut c, 0.0, "12");
        assert_eq!(
            typed(&mut c, 20.0, "34#").last(),
            Some(&KeyOutcome::Malformed)
        );
        typed(&mut c, 30.0, "12");
        assert_eq!(
            typed(&mut c, 35.0, "34#").last(),
            Some(&KeyOutcome::Entered(Digits("1234".into())))
        );
    }

    #[test]
    fn a_claim_expires_after_the_timeout_and_a_newer_one_replaces_it() {
        let mut c = Claims::new(s(10.0));
        c.set(
            s(0.0),
            Claim::Card {
                person: 1,
                id: "a".into(),
            },
        );
        assert_eq!(c.expired(s(10.0)), None);
        assert_eq!(c.get().and_then(Claim::person), Some(1));
        c.set(s(5.0), Claim::Pin(Digits("1234".into())));
        assert_eq!(c.expired(s(12.0)), None, "the newer claim's clock");
        assert_eq!(c.get().and_then(Claim::person), None);
        c.resolve(Claim::PinOf {
            person: 2,
            id: "b".into(),
            duress: true,
        });
        assert!(c.get().unwrap().duress());
        assert_eq!(
            c.get().unwrap().presented(),
            Presented {
                card: false,
                pin: true
            }
        );
        let gone = c.expired(s(15.5)).unwrap();
        assert_eq!(gone.person(), Some(2));
        assert!(!c.active());
    }

    #[test]
    fn modes_windows_and_a_person_who_must_use_two_factors() {
        let card = Presented {
            card: true,
            pin: false,
        };
        let pin = Presented {
            card: false,
            pin: true,
        };
        let none = Presented::default();
        assert!(FactorMode::Face.satisfied_by(none));
        assert!(FactorMode::FaceOrCard.satisfied_by(none));
        assert!(!FactorMode::CardAndFace.satisfied_by(none));
        assert!(!FactorMode::CardAndFace.satisfied_by(pin));
        assert!(FactorMode::CardAndFace.satisfied_by(card));
        assert!(FactorMode::FaceAndPin.satisfied_by(pin));
        assert!(!FactorMode::FaceAndPin.satisfied_by(card));
        let access: AccessConfig = toml::from_str(
            "timezone = \"UTC\"\nfactors = \"face_or_card\"\n\
             [[factors_windows]]\nwindow = \"mon-fri 19:00-07:00\"\nfactors = \"card_and_face\"\n",
        )
        .unwrap();
        let rule = FactorRule::of(&access);
        // 2026-11-30 is a Monday: 12:00 and 20:00 UTC.
        let noon = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_040_000);
        let evening = noon + Duration::from_secs(8 * 3600);
        assert_eq!(rule.site_mode(noon), FactorMode::FaceOrCard);
        assert_eq!(rule.site_mode(evening), FactorMode::CardAndFace);
        assert_eq!(
            rule.mode_at(noon, Some(FactorMode::FaceAndPin)),
            FactorMode::FaceAndPin
        );
        // A person's `face` does not weaken the site's night mode.
        assert_eq!(
            rule.mode_at(evening, Some(FactorMode::Face)),
            FactorMode::CardAndFace
        );
        assert!(rule.ever_takes_claims());
        assert!(!FactorRule::default().ever_takes_claims());
    }
}
