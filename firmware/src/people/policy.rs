//! Access policy: per person (enabled, valid from/until, weekly windows) and site-wide (`[access]`:
//! time zone, office hours when the door stays unlocked, tailgating, failed-attempt lockout).
//! Times are the site's civil time in its time zone (`jiff`, with the time zone database built
//! in, so a Pi without tzdata still knows its zone).

use crate::problem::Problem;
use jiff::civil::{DateTime, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::Zoned;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

/// Why the policy refused someone the face matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The person is disabled.
    Disabled,
    /// Before `valid_from`.
    NotYetValid,
    /// After `valid_until`.
    Expired,
    /// Outside every weekly window.
    OutsideSchedule,
}

impl Refusal {
    /// Its name in the audit log and on the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Disabled => "disabled",
            Refusal::NotYetValid => "not_yet_valid",
            Refusal::Expired => "expired",
            Refusal::OutsideSchedule => "outside_schedule",
        }
    }
}

/// A weekly time window: days and a time range, e.g. `mon-fri 07:00-19:00`, `sat,sun
/// 10:00-14:00`, `daily 22:00-06:00` (an end before the start runs past midnight into the next
/// day).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Window {
    /// Bit `i` set: the window starts on weekday `i` (Monday = 0).
    days: u8,
    start: Time,
    end: Time,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn day(s: &str) -> Result<u8, String> {
    let s = s.trim().to_ascii_lowercase();
    DAYS.iter()
        .position(|d| s.starts_with(d) && d.len() >= 3)
        .filter(|_| s.len() >= 3)
        .map(|i| i as u8)
        .ok_or_else(|| format!("{s:?} is not a weekday (mon..sun)"))
}

fn hhmm(s: &str) -> Result<Time, String> {
    let (h, m) = s
        .trim()
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not HH:MM"))?;
    let (h, m): (i8, i8) = (
        h.parse().map_err(|_| format!("{s:?} is not HH:MM"))?,
        m.parse().map_err(|_| format!("{s:?} is not HH:MM"))?,
    );
    if h == 24 && m == 0 {
        // 24:00: the end of the day.
        return Ok(Time::MAX);
    }
    Time::new(h, m, 0, 0).map_err(|_| format!("{s:?} is not a time of day"))
}

impl FromStr for Window {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (days, times) = s.trim().split_once(char::is_whitespace).ok_or_else(|| {
            format!("{s:?}: expected DAYS HH:MM-HH:MM, e.g. \"mon-fri 07:00-19:00\"")
        })?;
        let mut bits = 0u8;
        for part in days.split(',') {
            let part = part.trim().to_ascii_lowercase();
            if part == "daily" || part == "*" {
                bits |= 0x7f;
            } else if let Some((a, b)) = part.split_once('-') {
                let (a, b) = (day(a)?, day(b)?);
                let mut i = a;
                loop {
                    bits |= 1 << i;
                    if i == b {
                        break;
                    }
                    i = (i + 1) % 7;
                }
            } else {
                bits |= 1 << day(&part)?;
            }
        }
        let (a, b) = times
            .trim()
            .split_once('-')
            .ok_or_else(|| format!("{times:?}: expected HH:MM-HH:MM"))?;
        let (start, end) = (hhmm(a)?, hhmm(b)?);
        if start == end {
            return Err(format!("{s:?}: the window is empty"));
        }
        Ok(Self {
            days: bits,
            start,
            end,
        })
    }
}

impl TryFrom<String> for Window {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days: Vec<&str> = (0..7)
            .filter(|i| self.days & (1 << i) != 0)
            .map(|i| DAYS[i])
            .collect();
        let days = if self.days == 0x7f {
            "daily".to_owned()
        } else {
            days.join(",")
        };
        let t = |t: Time| {
            if t == Time::MAX {
                "24:00".to_owned()
            } else {
                format!("{:02}:{:02}", t.hour(), t.minute())
            }
        };
        write!(f, "{days} {}-{}", t(self.start), t(self.end))
    }
}

impl From<Window> for String {
    fn from(w: Window) -> String {
        w.to_string()
    }
}

fn index(d: Weekday) -> u8 {
    d.to_monday_zero_offset() as u8
}

impl Window {
    /// Whether the civil time `at` is inside the window.
    pub fn contains(&self, at: DateTime) -> bool {
        let (d, t) = (index(at.weekday()), at.time());
        let on = |d: u8| self.days & (1 << d) != 0;
        if self.start < self.end {
            on(d) && t >= self.start && t < self.end
        } else {
            // Past midnight: the evening of a listed day, or the morning after one.
            (on(d) && t >= self.start) || (on((d + 6) % 7) && t < self.end)
        }
    }
}

/// One person's access policy (in the gallery, `[person.policy]`). Empty: always allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// The person is refused (kept enrolled, e.g. on leave).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
    /// Refused before this site-local time (e.g. a contractor's first day).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<DateTime>,
    /// Refused from this site-local time on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<DateTime>,
    /// Allowed only inside one of these windows (none: at any time).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<Window>,
    /// Second factors this person must always use (`card_and_face`, `face_and_pin`), whatever
    /// the site's mode; a weaker one does not loosen the site's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub factors: Option<crate::access::factors::FactorMode>,
}

impl Policy {
    /// Whether nothing restricts the person (then the gallery leaves the table out).
    pub fn is_open(&self) -> bool {
        *self == Policy::default()
    }

    /// Allows or refuses at the site-local time `at`; the first rule that refuses is named.
    pub fn check(&self, at: DateTime) -> Result<(), Refusal> {
        if self.disabled {
            return Err(Refusal::Disabled);
        }
        if self.valid_from.is_some_and(|f| at < f) {
            return Err(Refusal::NotYetValid);
        }
        if self.valid_until.is_some_and(|u| at >= u) {
            return Err(Refusal::Expired);
        }
        if !self.windows.is_empty() && !self.windows.iter().any(|w| w.contains(at)) {
            return Err(Refusal::OutsideSchedule);
        }
        Ok(())
    }
}

/// Parses a site-local date or date-time: `2026-12-31` (midnight) or `2026-12-31T18:00`.
pub fn parse_local(s: &str) -> Result<DateTime, String> {
    s.parse::<DateTime>()
        .or_else(|_| {
            s.parse::<jiff::civil::Date>()
                .map(|d| d.to_datetime(Time::midnight()))
        })
        .map_err(|e| {
            format!("{s:?} is not a date (2026-12-31) or date-time (2026-12-31T18:00): {e}")
        })
}

/// Most weekly windows one person's policy may have.
pub const MAX_WINDOWS: usize = 32;

/// A person's own factor mode as the CLI and the console name it: `card_and_face`,
/// `face_and_pin`, or `none` (no mode of their own). The modes that loosen nothing are refused.
pub fn person_factors(s: &str) -> Result<Option<crate::access::factors::FactorMode>, String> {
    use crate::access::factors::FactorMode;
    match s.trim() {
        "none" | "" => Ok(None),
        "card_and_face" => Ok(Some(FactorMode::CardAndFace)),
        "face_and_pin" => Ok(Some(FactorMode::FaceAndPin)),
        other => Err(format!(
            "{:?}: a person's own mode is \"card_and_face\", \"face_and_pin\" or \"none\"",
            other.chars().take(24).collect::<String>()
        )),
    }
}

/// A policy as a client sends it whole (the control API's `people policy`): times as
/// `parse_local` reads them, windows as [`Window`] reads them, `factors` as [`person_factors`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRequest {
    /// Let in (else refused, kept enrolled).
    pub enabled: bool,
    /// Valid from this site-local date or date-time.
    #[serde(default)]
    pub valid_from: Option<String>,
    /// Valid until (not including) this site-local date or date-time.
    #[serde(default)]
    pub valid_until: Option<String>,
    /// Weekly windows (none: at any time), at most [`MAX_WINDOWS`].
    #[serde(default)]
    pub windows: Vec<String>,
    /// The person's own factor mode.
    #[serde(default)]
    pub factors: Option<String>,
}

impl PolicyRequest {
    /// The request for `p` as it is (the form's starting values).
    pub fn of(p: &Policy) -> Self {
        Self {
            enabled: !p.disabled,
            valid_from: p.valid_from.map(|d| d.to_string()),
            valid_until: p.valid_until.map(|d| d.to_string()),
            windows: p.windows.iter().map(Window::to_string).collect(),
            factors: p.factors.map(|f| f.as_str().to_owned()),
        }
    }

    /// The policy it describes, checked as the CLI checks an edit ([`Policy::validate`]).
    pub fn to_policy(&self) -> Result<Policy, String> {
        let when = |s: &Option<String>| match s.as_deref().map(str::trim) {
            None | Some("") | Some("none") => Ok(None),
            Some(s) if s.len() > 40 => Err("a date is at most 40 characters".to_owned()),
            Some(s) => parse_local(s).map(Some),
        };
        if self.windows.len() > MAX_WINDOWS {
            return Err(format!("at most {MAX_WINDOWS} windows"));
        }
        let mut windows = Vec::with_capacity(self.windows.len());
        for w in &self.windows {
            if w.len() > 80 {
                return Err("a window is at most 80 characters".to_owned());
            }
            windows.push(w.parse::<Window>()?);
        }
        let p = Policy {
            disabled: !self.enabled,
            valid_from: when(&self.valid_from)?,
            valid_until: when(&self.valid_until)?,
            windows,
            factors: match &self.factors {
                None => None,
                Some(f) => person_factors(f)?,
            },
        };
        p.validate()?;
        Ok(p)
    }
}

impl Policy {
    /// Refuses a policy nobody could ever pass for its dates (until not after from), and more
    /// than [`MAX_WINDOWS`] windows.
    pub fn validate(&self) -> Result<(), String> {
        if let (Some(f), Some(u)) = (self.valid_from, self.valid_until) {
            if u <= f {
                return Err(format!(
                    "valid until {u} is not after valid from {f}: nobody could come in"
                ));
            }
        }
        if self.windows.len() > MAX_WINDOWS {
            return Err(format!("at most {MAX_WINDOWS} windows"));
        }
        Ok(())
    }

    /// One line for the audit log and the console: `enabled; from -; until -; windows ...`.
    pub fn summary(&self) -> String {
        let d = |d: Option<DateTime>| d.map_or("-".to_owned(), |d| d.to_string());
        let windows = if self.windows.is_empty() {
            "any time".to_owned()
        } else {
            self.windows
                .iter()
                .map(Window::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "{}; from {}; until {}; windows {}; factors {}",
            if self.disabled { "disabled" } else { "enabled" },
            d(self.valid_from),
            d(self.valid_until),
            windows,
            self.factors.map_or("-", |f| f.as_str())
        )
    }
}

/// `[access]`: site-wide rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccessConfig {
    /// The site's IANA time zone (e.g. "Europe/Berlin"); empty: the system's.
    pub timezone: String,
    /// The door stays unlocked inside these windows ("office hours"); grants still record.
    pub office_hours: Vec<Window>,
    /// More faces than this at least `recognition.min_face` large in one frame never agree
    /// (1: anti-tailgating; 0: any number).
    pub max_faces: u32,
    /// This many denials within `lockout_window_seconds` pause recognition (0: never).
    pub lockout_denials: u32,
    /// The window the denials are counted in.
    pub lockout_window_seconds: f64,
    /// How long recognition pauses (the exit button still works).
    pub lockout_seconds: f64,
    /// Second factors (`access::factors`): `face`, `face_or_card`, `card_and_face`,
    /// `face_and_pin`.
    pub factors: crate::access::factors::FactorMode,
    /// A stricter mode inside weekly windows (the first window containing the time wins).
    pub factors_windows: Vec<crate::access::factors::FactorWindow>,
    /// A card or PIN waits this long for the face; then it is refused (`factor_timeout`).
    pub factor_seconds: f64,
    /// The 1:1 check's threshold when a card or PIN names the person (none: the site's
    /// calibration, else the model's `one_to_one` point, else its threshold).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub factor_threshold: Option<f32>,
    /// Where cards and PINs come from.
    pub inputs: FactorInputs,
}

/// `[access.inputs]`: a Wiegand reader or keypad on two GPIO lines, a USB keypad (evdev).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FactorInputs {
    /// The reader's D0 line (BCM GPIO number).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wiegand_d0_gpio: Option<u8>,
    /// The reader's D1 line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wiegand_d1_gpio: Option<u8>,
    /// A USB keypad's event device, e.g. `/dev/input/by-id/usb-...-event-kbd`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keypad: Option<std::path::PathBuf>,
}

impl Default for AccessConfig {
    fn default() -> Self {
        Self {
            timezone: String::new(),
            office_hours: Vec::new(),
            max_faces: 0,
            lockout_denials: 0,
            lockout_window_seconds: 60.0,
            lockout_seconds: 60.0,
            factors: Default::default(),
            factors_windows: Vec::new(),
            factor_seconds: 10.0,
            factor_threshold: None,
            inputs: FactorInputs::default(),
        }
    }
}

impl AccessConfig {
    /// Checks the values; `Err(Problem::new(key, problem))`.
    pub fn check(&self) -> Result<(), Problem> {
        self.zone()
            .map_err(|e| Problem::new("access.timezone", e))?;
        for (key, v) in [
            ("access.lockout_window_seconds", self.lockout_window_seconds),
            ("access.lockout_seconds", self.lockout_seconds),
        ] {
            if !(v.is_finite() && (1.0..=86_400.0).contains(&v)) {
                return Err(Problem::new(
                    key,
                    format!("must be 1 to 86400 seconds (got {v})"),
                ));
            }
        }
        if !(self.factor_seconds.is_finite() && (1.0..=120.0).contains(&self.factor_seconds)) {
            return Err(Problem::new(
                "access.factor_seconds",
                format!("must be 1 to 120 seconds (got {})", self.factor_seconds),
            ));
        }
        if let Some(t) = self.factor_threshold {
            if !(t.is_finite() && t > 0.0) {
                return Err(Problem::new(
                    "access.factor_threshold",
                    format!("must be a positive distance (got {t})"),
                ));
            }
        }
        let i = &self.inputs;
        if i.wiegand_d0_gpio.is_some() != i.wiegand_d1_gpio.is_some()
            || (i.wiegand_d0_gpio.is_some() && i.wiegand_d0_gpio == i.wiegand_d1_gpio)
        {
            return Err(Problem::new(
                "access.inputs.wiegand_d0_gpio",
                "a Wiegand input needs both D0 and D1, on two different lines",
            ));
        }
        if self.max_faces > 100 {
            return Err(Problem::new(
                "access.max_faces",
                format!("must be 0 to 100 (got {})", self.max_faces),
            ));
        }
        Ok(())
    }

    /// The site's time zone.
    pub fn zone(&self) -> Result<TimeZone, String> {
        if self.timezone.is_empty() {
            Ok(TimeZone::try_system().unwrap_or(TimeZone::UTC))
        } else {
            TimeZone::get(&self.timezone)
                .map_err(|e| format!("{:?} is not a known time zone: {e}", self.timezone))
        }
    }

    /// The site-local civil time of `wall`.
    pub fn local(&self, zone: &TimeZone, wall: SystemTime) -> DateTime {
        jiff::Timestamp::try_from(wall)
            .map(|t| t.to_zoned(zone.clone()).datetime())
            .unwrap_or_else(|_| Zoned::now().datetime())
    }

    /// Whether the door stays unlocked at the site-local time `at`.
    pub fn office_hours_at(&self, at: DateTime) -> bool {
        self.office_hours.iter().any(|w| w.contains(at))
    }

    /// The lockout's window and pause.
    pub fn lockout_times(&self) -> (Duration, Duration) {
        (
            Duration::from_secs_f64(self.lockout_window_seconds),
            Duration::from_secs_f64(self.lockout_seconds),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime {
        s.parse().unwrap()
    }

    #[test]
    fn windows_parse_print_and_contain() {
        let w: Window = "mon-fri 07:00-19:00".parse().unwrap();
        assert_eq!(w.to_string(), "mon,tue,wed,thu,fri 07:00-19:00");
        // 2026-11-30 is a Monday.
        assert!(w.contains(at("2026-11-30T07:00")));
        assert!(w.contains(at("2026-12-04T18:59")));
        assert!(!w.contains(at("2026-11-30T19:00")));
        assert!(!w.contains(at("2026-11-30T06:59")));
        assert!(!w.contains(at("2026-12-05T12:00")));
        let night: Window = "fri 22:00-06:00".parse().unwrap();
        assert!(night.contains(at("2026-12-04T23:00")));
        assert!(night.contains(at("2026-12-05T05:59")));
        assert!(!night.contains(at("2026-12-05T06:00")));
        assert!(!night.contains(at("2026-12-03T23:00")));
        let all: Window = "daily 00:00-24:00".parse().unwrap();
        assert!(all.contains(at("2026-12-06T23:59:59")));
        assert_eq!(all.to_string(), "daily 00:00-24:00");
        let wrap: Window = "sat-mon 10:00-12:00".parse().unwrap();
        assert!(wrap.contains(at("2026-11-30T11:00")));
        assert!(!wrap.contains(at("2026-12-01T11:00")));
        for bad in [
            "mon-fri",
            "xyz 07:00-08:00",
            "mon 07:00-07:00",
            "mon 25:00-26:00",
            "",
        ] {
            assert!(bad.parse::<Window>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_first_refusing_rule_is_named() {
        let mut p = Policy {
            valid_from: Some(at("2026-12-01T00:00")),
            valid_until: Some(at("2026-12-31T00:00")),
            windows: vec!["mon-fri 07:00-19:00".parse().unwrap()],
            ..Policy::default()
        };
        assert_eq!(p.check(at("2026-11-30T08:00")), Err(Refusal::NotYetValid));
        assert_eq!(p.check(at("2026-12-01T08:00")), Ok(()));
        assert_eq!(
            p.check(at("2026-12-01T20:00")),
            Err(Refusal::OutsideSchedule)
        );
        assert_eq!(p.check(at("2026-12-31T08:00")), Err(Refusal::Expired));
        p.disabled = true;
        assert_eq!(p.check(at("2026-12-01T08:00")), Err(Refusal::Disabled));
        assert!(Policy::default().check(at("2026-12-01T03:00")).is_ok());
        assert!(Policy::default().is_open());
    }

    #[test]
    fn policy_round_trips_through_toml_and_an_empty_table_is_open() {
        let p = Policy {
            disabled: false,
            valid_from: None,
            valid_until: Some(parse_local("2027-01-01").unwrap()),
            windows: vec!["sat,sun 10:00-14:00".parse().unwrap()],
            factors: Some(crate::access::factors::FactorMode::CardAndFace),
        };
        let text = toml::to_string(&p).unwrap();
        let back: Policy = toml::from_str(&text).unwrap();
        assert_eq!(back, p);
        assert!(text.contains("\"sat,sun 10:00-14:00\""), "{text}");
        assert!(toml::from_str::<Policy>("").unwrap().is_open());
        assert!(toml::from_str::<Policy>("windows = [\"mon 9-10\"]").is_err());
    }

    #[test]
    fn a_policy_request_is_checked_as_the_cli_checks_an_edit() {
        let r = PolicyRequest {
            enabled: false,
            valid_from: Some("2026-12-01".into()),
            valid_until: Some("2026-12-31T18:00".into()),
            windows: vec!["mon-fri 07:00-19:00".into()],
            factors: Some("card_and_face".into()),
        };
        let p = r.to_policy().unwrap();
        assert!(p.disabled);
        assert_eq!(p.valid_from, Some(at("2026-12-01T00:00")));
        assert_eq!(PolicyRequest::of(&p).to_policy().unwrap(), p);
        assert!(
            p.summary()
                .starts_with("disabled; from 2026-12-01T00:00:00"),
            "{}",
            p.summary()
        );
        let bad = |f: &dyn Fn(&mut PolicyRequest)| {
            let mut b = r.clone();
            f(&mut b);
            b.to_policy().unwrap_err()
        };
        assert!(bad(&|b| b.valid_until = Some("2026-11-01".into())).contains("not after"));
        assert!(bad(&|b| b.valid_from = Some("tomorrow".into())).contains("not a date"));
        assert!(bad(&|b| b.windows = vec!["mon 9-10".into()]).contains("HH:MM"));
        assert!(bad(&|b| b.windows = vec!["daily 01:00-02:00".into(); 33]).contains("at most"));
        assert!(bad(&|b| b.factors = Some("face".into())).contains("own mode"));
        assert!(bad(&|b| b.valid_from = Some("9".repeat(41))).contains("40"));
        let open = PolicyRequest {
            enabled: true,
            factors: Some("none".into()),
            ..PolicyRequest::default()
        };
        assert!(open.to_policy().unwrap().is_open());
        assert!(serde_json::from_str::<PolicyRequest>(r#"{"enabled":true,"admin":1}"#).is_err());
    }

    #[test]
    fn the_site_zone_turns_wall_time_into_local_time() {
        let c = AccessConfig {
            timezone: "Europe/Berlin".into(),
            ..AccessConfig::default()
        };
        c.check().unwrap();
        let z = c.zone().unwrap();
        // 2026-07-01 06:30 UTC is 08:30 in Berlin (summer time).
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_782_887_400);
        assert_eq!(c.local(&z, wall), at("2026-07-01T08:30"));
        let bad = AccessConfig {
            timezone: "Mars/Olympus".into(),
            ..AccessConfig::default()
        };
        assert_eq!(bad.check().unwrap_err().key, "access.timezone");
    }
}
