//! The scenario file: who is enrolled, what the camera shows and what happens at the door, step
//! by step, and what the door must do. Paths are relative to the scenario file.
//!
//! ```toml
//! fps = 10                        # default frame rate of `show` steps
//! recognition_ms = 150            # real-time mode: model a machine that takes 150 ms a frame
//! slowdown = 6                    # (or: a machine 6x slower than this one; depends on the host)
//! [config]                        # daemon config overrides (same keys as config.toml)
//! lock = { unlock_seconds = 5 }
//!
//! [[enroll]]                      # enrolled before the door starts, one photo is enough
//! id = "obama"
//! name = "Barack Obama"
//! photos = ["obama.jpg"]
//!
//! [[step]]
//! show = "biden.jpg"              # a photo (or ["a.jpg", "b.jpg"] side by side, or "blank")
//! face_px = 160                   # the face's size in the frame (default 160 px)
//! seconds = 5
//! expect = "no_unlock"
//!
//! [[step]]
//! show = "obama2.jpg"
//! seconds = 3
//! expect = "unlock"               # the door unlocks during this step...
//! person = "obama"                # ...for this person...
//! within = 1.0                    # ...at most this many seconds after the step's first frame
//!
//! [expect]
//! unlocks = 1                     # unlocks in the whole run
//! ```
//!
//! A `show` step with `attack = "print"` or `"screen"` presents its photos as a printed photo or a
//! phone held up to the camera (see `attack`).
//!
//! With `[config.liveness.nir]` set, a simulated near-infrared camera, aligned with the colour
//! one (scale 1, no offset), sees each frame's NIR view (`attack::present_nir`: a grey IR
//! rendering of a person or a print, a dark screen); `unplug_nir = SECONDS` unplugs it.
//!
//! Other steps: `stall = SECONDS`, `freeze = SECONDS` (the camera repeats its last frame byte
//! for byte, at the scenario's fps), `unplug = SECONDS`, `bad_frames = N`, `signal = "term"|"hup"`,
//! `exit_button = true`, `gallery_file = "PATH"` (replaces the gallery atomically, as
//! `facegate` does), `gallery_text = "..."` (overwrites it in place, e.g. with garbage),
//! `config_text = "..."` (rewrites the daemon's config file; SIGHUP applies it),
//! `enroll = { id, name, photos }` and `remove = "ID"` (as the admin CLI would, during the run),
//! `door = "open"|"closed"` (the door contact; no contact until a step sets it),
//! `lockdown = true|false` and `remote_unlock = "NAME"` (what a signed site command or the
//! door's local control API asks), `present_card = "ID"` (that person's card at the reader) or
//! `present_card = { format = "wiegand26", facility = 1, card = 2 }` (any card), and
//! `type_pin = "1234#"` (keys on the keypad) for second factors (`[config.access] factors`).
//!
//! Door situations (`host-sim/scenarios/`): top-level `start_time = "2026-11-30T08:00:00Z"` sets
//! the wall clock (schedules); `[[enroll]]` takes `policy = { disabled, valid_from, valid_until,
//! windows }`; `[expect]` takes `events = [...]` and `no_events = [...]` (audit event names),
//! `deny_reasons = [...]` and `alarm = true|false` (the alarm output sounded or not).

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Errors of a scenario file.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The scenario file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not a valid scenario.
    #[error("{path}: {message}")]
    Invalid {
        /// The scenario file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// A whole scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// What the scenario shows (printed in the summary).
    #[serde(default)]
    pub description: Option<String>,
    /// Default frame rate.
    #[serde(default = "default_fps")]
    pub fps: f64,
    /// Real-time mode: the machine modelled is this many times slower than the one running the
    /// simulation (its recognition thread takes this many times as long for each frame).
    #[serde(default = "default_slowdown")]
    pub slowdown: f64,
    /// Real-time mode: the machine modelled takes this many milliseconds to recognise a frame
    /// (per worker), whatever the host running the simulation: the form tests use.
    #[serde(default)]
    pub recognition_ms: Option<f64>,
    /// Daemon config overrides.
    #[serde(default)]
    pub config: toml::Table,
    /// The wall-clock time the run starts at, RFC 3339 (default: now), for schedules.
    #[serde(default)]
    pub start_time: Option<String>,
    /// A gallery file to start from (copied; the original is never written).
    #[serde(default)]
    pub gallery: Option<PathBuf>,
    /// People enrolled before the door starts.
    #[serde(default)]
    pub enroll: Vec<EnrolSpec>,
    /// The steps, in order.
    #[serde(default)]
    pub step: Vec<StepSpec>,
    /// Expectations about the whole run.
    #[serde(default)]
    pub expect: Expect,
    /// Directory that relative paths are resolved against.
    #[serde(skip)]
    pub base: PathBuf,
}

fn default_fps() -> f64 {
    10.0
}

fn default_slowdown() -> f64 {
    1.0
}

/// A person to enrol.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolSpec {
    /// Stable id (default: made from the name).
    #[serde(default)]
    pub id: Option<String>,
    /// Display name.
    pub name: String,
    /// Enrolment photos (one is enough).
    pub photos: Vec<PathBuf>,
    /// The person's access policy (`facegate policy`).
    #[serde(default)]
    pub policy: facegate::people::policy::Policy,
    /// The card credential sent in reader mode (and read at the door for second factors).
    #[serde(default)]
    pub credential: Option<facegate::people::credential::Credential>,
    /// The person's PIN (stored hashed, as `facegate pin set` does).
    #[serde(default)]
    pub pin: Option<String>,
    /// Their duress PIN.
    #[serde(default)]
    pub duress_pin: Option<String>,
}

/// What the camera shows in a `show` step.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Show {
    /// One photo, or "blank" for an empty grey frame.
    One(PathBuf),
    /// Photos side by side (people at the door together).
    Many(Vec<PathBuf>),
}

/// One step.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// Photos to show.
    pub show: Option<Show>,
    /// For `show`: the size in pixels the face of each photo has in the frame, as if the person
    /// stood at that distance from the camera (default 160, about a third of a 480-line frame).
    pub face_px: Option<ScaleSpec>,
    /// For `show`: how long.
    pub seconds: Option<f64>,
    /// For `show`: how many frames (instead of `seconds`).
    pub frames: Option<u32>,
    /// For `show`: frame rate (default: the scenario's).
    pub fps: Option<f64>,
    /// For `show`: the photos are not the people but held up to the camera, printed ("print")
    /// or on a phone ("screen"): a synthetic presentation attack (see `attack`).
    pub attack: Option<crate::attack::Attack>,
    /// The camera delivers nothing for this many seconds.
    pub stall: Option<f64>,
    /// The camera repeats its last frame, byte for byte, for this many seconds.
    pub freeze: Option<f64>,
    /// The camera is unplugged for this many seconds.
    pub unplug: Option<f64>,
    /// The NIR camera (`[liveness.nir]`) is unplugged for this many seconds from now, while the
    /// next steps play.
    pub unplug_nir: Option<f64>,
    /// This many undecodable frames.
    pub bad_frames: Option<u32>,
    /// Replace the gallery atomically with this file.
    pub gallery_file: Option<PathBuf>,
    /// Overwrite the gallery in place with this text.
    pub gallery_text: Option<String>,
    /// Rewrite the daemon's config file with these settings (TOML; the gallery and audit paths
    /// of the run are kept unless given). Takes effect on `signal = "hup"`.
    pub config_text: Option<String>,
    /// Enrol someone during the run.
    pub enroll: Option<EnrolSpec>,
    /// Remove someone during the run.
    pub remove: Option<String>,
    /// Send the daemon a signal: "term" or "hup".
    pub signal: Option<String>,
    /// Press the exit button.
    pub exit_button: Option<bool>,
    /// Put the site in lockdown (`true`) or lift it (`false`), as a signed site command or the
    /// local control API does.
    pub lockdown: Option<bool>,
    /// A remote unlock on behalf of this name, as a signed site command asks.
    pub remote_unlock: Option<String>,
    /// The door contact: "open" or "closed".
    pub door: Option<String>,
    /// A card shown to the reader (second factors): a person's by id, or a credential table.
    pub present_card: Option<CardSpec>,
    /// Keys typed on the keypad, e.g. "1234#" (`*` clears, `#` enters).
    pub type_pin: Option<String>,
    /// "unlock" or "no_unlock" during this step.
    pub expect: Option<String>,
    /// For `expect = "unlock"`: whose.
    pub person: Option<String>,
    /// For `expect = "unlock"`: within this many seconds of the step's start.
    pub within: Option<f64>,
}

/// A card for `present_card`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum CardSpec {
    /// The credential of the person enrolled with this id.
    Of(String),
    /// This card, e.g. `{ format = "wiegand26", facility = 18, card = 1 }`.
    Card(facegate::people::credential::Credential),
}

/// A value for every photo, or one each.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ScaleSpec {
    /// The same for all.
    All(f32),
    /// One per photo.
    Each(Vec<f32>),
}

/// Expectations about the whole run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Exactly this many unlocks.
    #[serde(default)]
    pub unlocks: Option<u32>,
    /// The relay ends locked (default true).
    #[serde(default = "yes")]
    pub locked_at_end: bool,
    /// At least this many denials recorded.
    #[serde(default)]
    pub min_denials: Option<u32>,
    /// Events that must be recorded (at least once each), e.g. "forced_open".
    #[serde(default)]
    pub events: Vec<String>,
    /// Events that must not be recorded.
    #[serde(default)]
    pub no_events: Vec<String>,
    /// Denial reasons that must be recorded (at least once each), e.g. "outside_schedule".
    #[serde(default)]
    pub deny_reasons: Vec<String>,
    /// The alarm output sounds at some point (true) or never (false).
    #[serde(default)]
    pub alarm: Option<bool>,
}

impl Default for Expect {
    fn default() -> Self {
        Self {
            unlocks: None,
            locked_at_end: true,
            min_denials: None,
            events: Vec::new(),
            no_events: Vec::new(),
            deny_reasons: Vec::new(),
            alarm: None,
        }
    }
}

fn yes() -> bool {
    true
}

impl Scenario {
    /// The machine a real-time run models: a fixed recognition cost, a slowdown, or this one.
    pub fn machine(&self) -> crate::clock::Machine {
        use crate::clock::Machine;
        match self.recognition_ms {
            Some(ms) => Machine::Cost(std::time::Duration::from_secs_f64(ms / 1000.0)),
            None if self.slowdown > 1.0 => Machine::Slowdown(self.slowdown),
            None => Machine::Host,
        }
    }

    /// Reads and checks the scenario at `path`.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io {
            path: path.to_owned(),
            source,
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Self::parse(&text, path, base)
    }

    /// Parses scenario text; `path` names it in errors, `base` resolves relative paths.
    pub fn parse(text: &str, path: &Path, base: &Path) -> Result<Self, ScenarioError> {
        let invalid = |message: String| ScenarioError::Invalid {
            path: path.to_owned(),
            message,
        };
        let mut s: Scenario =
            toml::from_str(text).map_err(|e| invalid(e.to_string().trim_end().to_owned()))?;
        s.base = base.to_owned();
        if !(s.fps.is_finite() && s.fps > 0.0 && s.fps <= 120.0) {
            return Err(invalid(format!("fps must be 0 to 120 (got {})", s.fps)));
        }
        if !(s.slowdown.is_finite() && (1.0..=100.0).contains(&s.slowdown)) {
            return Err(invalid(format!(
                "slowdown must be 1 to 100 (got {})",
                s.slowdown
            )));
        }
        if let Some(ms) = s.recognition_ms {
            if !(ms.is_finite() && (1.0..=10_000.0).contains(&ms)) {
                return Err(invalid(format!(
                    "recognition_ms must be 1 to 10000 (got {ms})"
                )));
            }
            if s.slowdown != 1.0 {
                return Err(invalid(
                    "recognition_ms and slowdown both model the machine: give one".into(),
                ));
            }
        }
        if let Some(t) = &s.start_time {
            humantime::parse_rfc3339(t).map_err(|e| {
                invalid(format!("start_time {t:?}: {e} (e.g. 2026-12-07T08:00:00Z)"))
            })?;
        }
        if s.step.is_empty() {
            return Err(invalid("no [[step]]: nothing to play".into()));
        }
        for (i, st) in s.step.iter().enumerate() {
            st.check()
                .map_err(|m| invalid(format!("step {}: {m}", i + 1)))?;
        }
        Ok(s)
    }

    /// `p` resolved against the scenario's directory; a file not there is taken from the
    /// fixture photos ([`fixtures_dir`]) if it is one, so the scenarios shipped in
    /// `host-sim/scenarios/` run from the checkout.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        let here = self.base.join(p);
        if here.exists() || p.is_absolute() {
            return here;
        }
        let fixture = fixtures_dir().join(p);
        if fixture.is_file() {
            fixture
        } else {
            here
        }
    }
}

impl StepSpec {
    /// Checks that the step does exactly one thing, with sensible values.
    fn check(&self) -> Result<(), String> {
        let kinds = [
            self.show.is_some(),
            self.stall.is_some(),
            self.freeze.is_some(),
            self.unplug.is_some(),
            self.unplug_nir.is_some(),
            self.bad_frames.is_some(),
            self.gallery_file.is_some(),
            self.gallery_text.is_some(),
            self.config_text.is_some(),
            self.enroll.is_some(),
            self.remove.is_some(),
            self.signal.is_some(),
            self.exit_button.is_some(),
            self.door.is_some(),
            self.lockdown.is_some(),
            self.remote_unlock.is_some(),
            self.present_card.is_some(),
            self.type_pin.is_some(),
        ];
        let n = kinds.iter().filter(|k| **k).count();
        if n != 1 {
            return Err(format!(
                "a step does exactly one thing (show, stall, freeze, unplug, unplug_nir, bad_frames, gallery_file, gallery_text, config_text, enroll, remove, signal, exit_button, door, lockdown, remote_unlock, present_card or type_pin); this one does {n}"
            ));
        }
        let positive = |name: &str, v: Option<f64>| match v {
            Some(v) if !(v.is_finite() && v > 0.0 && v <= 86_400.0) => Err(format!(
                "{name} must be a positive number of seconds (got {v})"
            )),
            _ => Ok(()),
        };
        positive("seconds", self.seconds)?;
        positive("stall", self.stall)?;
        positive("freeze", self.freeze)?;
        positive("unplug", self.unplug)?;
        positive("unplug_nir", self.unplug_nir)?;
        positive("within", self.within)?;
        if let Some(f) = self.fps {
            if !(f.is_finite() && f > 0.0 && f <= 120.0) {
                return Err(format!("fps must be 0 to 120 (got {f})"));
            }
        }
        if self.show.is_some() && self.seconds.is_none() && self.frames.is_none() {
            return Err("show needs seconds or frames".into());
        }
        if self.show.is_none()
            && (self.seconds.is_some() || self.frames.is_some() || self.face_px.is_some())
        {
            return Err("seconds, frames and face_px go with show".into());
        }
        if let Some(k) = &self.type_pin {
            if k.len() > 64 {
                return Err("type_pin: at most 64 keys".into());
            }
        }
        if let Some(d) = &self.door {
            if d != "open" && d != "closed" {
                return Err(format!("door must be \"open\" or \"closed\" (got {d:?})"));
            }
        }
        if let Some(sig) = &self.signal {
            if sig != "term" && sig != "hup" {
                return Err(format!("signal must be \"term\" or \"hup\" (got {sig:?})"));
            }
        }
        match self.expect.as_deref() {
            None | Some("unlock") | Some("no_unlock") => {}
            Some(e) => {
                return Err(format!(
                    "expect must be \"unlock\" or \"no_unlock\" (got {e:?})"
                ))
            }
        }
        if self.expect.as_deref() != Some("unlock")
            && (self.person.is_some() || self.within.is_some())
        {
            return Err("person and within go with expect = \"unlock\"".into());
        }
        Ok(())
    }

    /// How long this step lasts at `fps` (the scenario's default rate), if it shows frames.
    pub fn frames_and_interval(&self, fps: f64) -> Option<(u32, std::time::Duration)> {
        self.show.as_ref()?;
        let fps = self.fps.unwrap_or(fps);
        let count = match (self.frames, self.seconds) {
            (Some(n), _) => n,
            (None, Some(s)) => (s * fps).round().max(1.0) as u32,
            (None, None) => 0,
        };
        Some((count, std::time::Duration::from_secs_f64(1.0 / fps)))
    }
}

/// Where the fixture photos are: `$FACEGATE_FIXTURES` or `~/.cache/facegate/fixtures`.
pub fn fixtures_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("FACEGATE_FIXTURES") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    home.join(".cache/facegate/fixtures")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Result<Scenario, String> {
        Scenario::parse(t, Path::new("s.toml"), Path::new("/x")).map_err(|e| e.to_string())
    }

    #[test]
    fn a_full_scenario_parses() {
        let s = parse(
            r#"
            fps = 5
            [config]
            lock = { unlock_seconds = 3 }
            [[enroll]]
            name = "Ada"
            photos = ["a.jpg"]
            [[step]]
            show = ["a.jpg", "b.jpg"]
            face_px = [160, 60]
            seconds = 2
            expect = "unlock"
            within = 1
            [[step]]
            stall = 3
            [expect]
            unlocks = 1
            "#,
        )
        .unwrap();
        assert_eq!(s.step.len(), 2);
        assert_eq!(
            s.step[0].frames_and_interval(s.fps),
            Some((10, std::time::Duration::from_millis(200)))
        );
        assert_eq!(s.resolve(Path::new("a.jpg")), PathBuf::from("/x/a.jpg"));
        assert!(s.expect.locked_at_end);
    }

    #[test]
    fn a_card_is_a_person_s_or_any_and_keys_are_typed() {
        let s = parse(
            "[[step]]\npresent_card = \"ann\"\n[[step]]\n\
             present_card = { format = \"wiegand26\", facility = 1, card = 2 }\n\
             [[step]]\ntype_pin = \"1234#\"\n",
        )
        .unwrap();
        assert!(matches!(&s.step[0].present_card, Some(CardSpec::Of(id)) if id == "ann"));
        assert!(matches!(
            s.step[1].present_card,
            Some(CardSpec::Card(
                facegate::people::credential::Credential::Wiegand26 {
                    facility: 1,
                    card: 2
                }
            ))
        ));
        assert_eq!(s.step[2].type_pin.as_deref(), Some("1234#"));
    }

    #[test]
    fn bad_scenarios_say_which_step_and_what() {
        for (t, want) in [
            ("[[step]]\nshow = \"a.jpg\"\n", "step 1: show needs seconds"),
            (
                "[[step]]\nstall = 1\nunplug = 1\n",
                "step 1: a step does exactly one thing",
            ),
            ("[[step]]\nsignal = \"kill\"\n", "signal must be"),
            ("[[step]]\nstall = -1\n", "stall must be a positive"),
            ("[[step]]\nstal = 1\n", "unknown field `stal`"),
            ("fps = 0\n[[step]]\nstall = 1\n", "fps must be"),
            ("", "no [[step]]"),
            (
                "[[step]]\npresent_card = \"ann\"\ntype_pin = \"1234#\"\n",
                "a step does exactly one thing",
            ),
            (
                "[[step]]\ntype_pin = \"11111111111111111111111111111111111111111111111111111111111111111\"\n",
                "at most 64 keys",
            ),
        ] {
            let e = parse(t).unwrap_err();
            assert!(e.contains(want), "{t:?}: {e}");
        }
    }
}
