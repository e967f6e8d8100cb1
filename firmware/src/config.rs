//! The daemon's configuration (`/etc/facegate/config.toml`): parsed with unknown keys refused,
//! then checked, with errors that name the key and the problem. Every key has a default that
//! works, so an empty file is a valid config.

pub use crate::access::cues::LivenessConfig;
use crate::access::decision::DecisionParams;
/// The camera's settings (`[camera]`) live with the camera.
pub use crate::camera::{CameraConfig, CameraSource, PixelFormat};
/// The lock's settings (`[lock]`) live with the lock pin.
pub use crate::door::lockpin::LockConfig;
use crate::problem::Problem;
/// The audit trail's settings (`[audit]`) live with the audit log.
pub use crate::records::audit::{AuditConfig, AuditFailure};
use crate::vision::quality::QualityParams;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Errors of the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The config file.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// Not valid TOML, an unknown key, or a value of the wrong type.
    #[error("{path}: {message}")]
    Parse {
        /// The config file.
        path: PathBuf,
        /// The parser's message (it names the key, line and column).
        message: String,
    },
    /// A value out of range.
    #[error("{path}: {key}: {problem}")]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// The key, as `section.key`.
        key: &'static str,
        /// What is wrong with its value.
        problem: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[camera]`
    pub camera: CameraConfig,
    /// `[lock]`
    pub lock: LockConfig,
    /// `[recognition]`
    pub recognition: RecognitionConfig,
    /// `[gallery]`
    pub gallery: GalleryConfig,
    /// `[audit]`
    pub audit: AuditConfig,
    /// `[door]`: exit button, door contact, alarm output, supervision.
    pub door: crate::access::supervision::DoorConfig,
    /// `[access]`: time zone, office hours, tailgating, lockout.
    pub access: crate::people::policy::AccessConfig,
    /// `[tamper]`: covered or blinded camera, camera lost.
    pub tamper: crate::access::tamper::TamperConfig,
    /// `[liveness]`: presentation-attack detection (see `vision::liveness`).
    pub liveness: LivenessConfig,
    /// `[output]`: the relay, or reader mode (OSDP, Wiegand) for an access-control panel.
    pub output: crate::panel::reader::OutputConfig,
    /// `[mqtt]`: the site link (absent: the daemon opens no network socket).
    pub mqtt: Option<crate::site::MqttConfig>,
    /// `[performance]`: threads per network run.
    pub performance: crate::cores::PerformanceConfig,
    /// `[control]`: the door's local control API (a Unix socket).
    pub control: crate::door::control_api::ControlConfig,
    /// `[console]`: the web console (`facegate-console`, its own process; the door ignores it).
    pub console: ConsoleConfig,
}

/// `[console]`: the web console's settings. Read by `facegate-console` and the CLI's
/// `facegate console ...`; the door never uses them (so a reload or restart of the door does not
/// care), but they are checked with the rest so that a typo is found by `facegated --check` too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Address and port the console listens on (HTTPS).
    pub listen: String,
    /// The console's accounts (TOML, argon2id hashes; 0600, written by `facegate console user`).
    pub users: PathBuf,
    /// The TLS certificate chain (PEM); empty: a self-signed one made at first start in
    /// `<users' folder>/tls/cert.pem`.
    pub tls_cert: PathBuf,
    /// The TLS private key (PEM); empty with `tls_cert` empty: `<users' folder>/tls/key.pem`.
    pub tls_key: PathBuf,
    /// The operator key the console shows the door (`[control] operator_key` of the door);
    /// empty: none (the console then has only what its user's role allows).
    pub operator_key: PathBuf,
    /// `false`: plain HTTP, allowed only on a loopback address (tests, or behind a local proxy).
    pub tls: bool,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8443".into(),
            users: "/var/lib/facegate-console/users.toml".into(),
            tls_cert: PathBuf::new(),
            tls_key: PathBuf::new(),
            operator_key: "/etc/facegate/console.key".into(),
            tls: true,
        }
    }
}

impl ConsoleConfig {
    /// The address to listen on, or what is wrong with `listen` and `tls`.
    pub fn listen_addr(&self) -> Result<std::net::SocketAddr, (&'static str, String)> {
        let addr: std::net::SocketAddr = self.listen.parse().map_err(|_| {
            (
                "console.listen",
                format!(
                    "{:?} is not ADDRESS:PORT (e.g. \"0.0.0.0:8443\")",
                    self.listen
                ),
            )
        })?;
        if !self.tls && !addr.ip().is_loopback() {
            return Err((
                "console.tls",
                format!(
                    "plain HTTP (tls = false) only on a loopback address, not {addr}: passwords and session cookies would cross the network in clear"
                ),
            ));
        }
        Ok(addr)
    }

    /// The certificate and key files: the configured ones, or the self-signed pair's place.
    pub fn tls_files(&self) -> (PathBuf, PathBuf) {
        if self.tls_cert.as_os_str().is_empty() && self.tls_key.as_os_str().is_empty() {
            let dir = self
                .users
                .parent()
                .unwrap_or_else(|| Path::new("."))
                .join("tls");
            (dir.join("cert.pem"), dir.join("key.pem"))
        } else {
            (self.tls_cert.clone(), self.tls_key.clone())
        }
    }

    /// Whether the certificate is the console's own self-signed one (made when missing).
    pub fn self_signed(&self) -> bool {
        self.tls_cert.as_os_str().is_empty() && self.tls_key.as_os_str().is_empty()
    }
}

pub use crate::paths::{DEFAULT_AUDIT, DEFAULT_CONFIG, DEFAULT_GALLERY};

/// One entry of [`RESTART_ONLY`]: the settings' name, whether they changed, and how to keep
/// their running value.
type RestartOnly = (
    &'static str,
    fn(&Config, &Config) -> bool,
    fn(&mut Config, &Config),
);

macro_rules! restart_only {
    ($name:literal, $($field:ident).+) => {
        (
            $name,
            |new: &Config, old: &Config| new.$($field).+ != old.$($field).+,
            |applied: &mut Config, old: &Config| applied.$($field).+ = old.$($field).+.clone(),
        )
    };
}

/// The settings a reload (SIGHUP) does not apply: read only at start (devices opened, networks
/// loaded, threads started, guards holding state). Everything else applies live. The one list;
/// the configuration reference (docs/configuration.md) says the same.
pub const RESTART_ONLY: &[RestartOnly] = &[
    restart_only!("[camera]", camera),
    restart_only!("recognition.models", recognition.models),
    restart_only!("recognition.embedder", recognition.embedder),
    restart_only!("recognition.min_face (detector)", recognition.min_face),
    restart_only!("recognition.detector", recognition.detector),
    restart_only!("lock.gpio", lock.gpio),
    restart_only!("lock.active_low", lock.active_low),
    restart_only!("[audit]", audit),
    // The guards hold state (door open, lockout, tamper timers): rebuilt only at start.
    restart_only!("[door]", door),
    restart_only!("[access]", access),
    restart_only!("[tamper]", tamper),
    restart_only!("[output]", output),
    restart_only!("liveness.nir", liveness.nir),
    restart_only!("liveness.border", liveness.border),
    restart_only!("liveness.motion", liveness.motion),
    restart_only!("[mqtt]", mqtt),
    restart_only!("[performance]", performance),
    restart_only!("[control]", control),
];

impl Config {
    /// What a reload to `new` applies: `new`, with every [`RESTART_ONLY`] setting kept at its
    /// running value; and the names of those that changed (applied after a restart).
    pub fn reloaded(&self, new: Config) -> (Config, Vec<&'static str>) {
        let mut applied = new;
        let mut restart = Vec::new();
        for (name, changed, keep) in RESTART_ONLY {
            if changed(&applied, self) {
                restart.push(*name);
                keep(&mut applied, self);
            }
        }
        (applied, restart)
    }
}

/// `[recognition]`: models and the decision rules (see `decision`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecognitionConfig {
    /// Another model set's manifest (default: the models built into the binary).
    pub models: Option<PathBuf>,
    /// The embedder to use from the manifest (default: the manifest's default).
    pub embedder: Option<String>,
    /// Largest distance that matches (default: the model's threshold from its manifest). Above
    /// the model's calibrated range it is refused unless `threshold_override`
    /// ([`Config::threshold_problem`]).
    pub threshold: Option<f32>,
    /// Allows a `threshold` above the model's calibrated range: for a point the site measured
    /// itself. Warned about, and recorded with the threshold in every `start` event.
    pub threshold_override: bool,
    /// The site's own operating points by gallery size (a file written by `facegate calibrate
    /// --open-set --write-points`); without it the model's manifest gives them. A `threshold`
    /// set here wins over both (see `access::operating_point`).
    pub calibration: Option<PathBuf>,
    /// Smallest gap between the nearest and second-nearest person (default: the model's, from
    /// its manifest: distances of different networks have different scales).
    pub min_margin: Option<f32>,
    /// Smallest face recognised, in pixels.
    pub min_face: f32,
    /// The door's face finder: "blazeface" (fast, one face at the door) or "mtcnn" (the photo
    /// detector; slower, finds smaller faces).
    pub detector: DoorDetector,
    /// Agreeing frames in a row needed to unlock (at least 2: never one frame).
    pub frames: u32,
    /// Seconds within which those frames must fall.
    pub window_seconds: f64,
    /// Seconds after an unlock during which the same person is not let in again (others are).
    pub cooldown_seconds: f64,
    /// Frames of an unrecognised face before a denial is recorded.
    pub deny_after_frames: u32,
    /// `[recognition.quality]`: faces too blurred, badly exposed or turned are not judged.
    pub quality: QualityParams,
    /// The share of employees' faces the site accepts being refused (per photo, one frame):
    /// `import`, `enroll` and `list` advise enough photos per person to keep to it at the
    /// gallery's size (the operating point's expected FNIR by photos). Advice only: the door's
    /// decision does not read it.
    pub target_fnir: f64,
}

impl Default for RecognitionConfig {
    fn default() -> Self {
        Self {
            models: None,
            embedder: None,
            threshold: None,
            threshold_override: false,
            calibration: None,
            min_margin: None,
            min_face: 80.0,
            detector: DoorDetector::default(),
            frames: 3,
            window_seconds: 1.5,
            cooldown_seconds: 6.0,
            deny_after_frames: 8,
            quality: QualityParams::default(),
            target_fnir: DEFAULT_TARGET_FNIR,
        }
    }
}

/// `recognition.target_fnir` by default: one employee face in ten refused per frame, which the
/// door's several frames absorb; one photo each meets it up to ~200 people (models/manifest.toml).
pub const DEFAULT_TARGET_FNIR: f64 = 0.10;

/// Which detector finds faces in door frames (`recognition.detector`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DoorDetector {
    /// MTCNN's whole cascade (P-Net pyramid, R-Net, O-Net).
    Mtcnn,
    /// BlazeFace finds the face, MTCNN's O-Net gives its landmarks.
    #[default]
    Blazeface,
}

/// `[gallery]`: the enrolled people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GalleryConfig {
    /// The gallery file (written by `facegate enroll`).
    pub path: PathBuf,
    /// How often to check it for changes.
    pub poll_seconds: f64,
}

impl Default for GalleryConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from(DEFAULT_GALLERY),
            poll_seconds: 1.0,
        }
    }
}

/// The unit's `WatchdogSec=` (`systemd/facegated.service`): a camera timeout at or above it turns
/// every camera stall into a watchdog kill. Change both together.
pub const UNIT_WATCHDOG_SECONDS: f64 = 10.0;

/// With `min_margin = 0`, the largest threshold accepted. Embeddings are unit length, so
/// distances run 0 to 2 and unrelated faces sit near 1.41; every shipped model's calibrated
/// threshold is 0.6 to 0.7. Above 1.0 with no margin, nearly any face matches someone.
pub const MAX_THRESHOLD_WITHOUT_MARGIN: f32 = 1.0;

/// A model's calibrated range of thresholds ends at this factor times its manifest threshold:
/// `facegate calibrate --open-set` measures up to there by default (its grid is 0.4 to 1.1 times
/// the model's), so a point it can recommend is inside; above it nothing was measured, and with
/// one person enrolled the margin rule cannot stop a stranger.
pub const CALIBRATED_THRESHOLD_FACTOR: f32 = 1.1;

/// The largest threshold in the calibrated range of a model whose manifest threshold is
/// `model_threshold`.
pub fn max_calibrated_threshold(model_threshold: f32) -> f32 {
    model_threshold * CALIBRATED_THRESHOLD_FACTOR
}

fn seconds(path: &Path, key: &'static str, v: f64, min: f64, max: f64) -> Result<(), ConfigError> {
    if v.is_finite() && (min..=max).contains(&v) {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            path: path.to_owned(),
            key,
            problem: format!("must be between {min} and {max} seconds (got {v})"),
        })
    }
}

impl Config {
    /// Reads and checks the config at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and checks config text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let c: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        c.check(path)?;
        c.cross_check(path)?;
        Ok(c)
    }

    /// Checks the combinations of values that are valid one by one but together make the door
    /// unsafe or useless; the error names the keys and why.
    pub fn cross_check(&self, path: &Path) -> Result<(), ConfigError> {
        let bad = |key, problem: String| {
            Err(ConfigError::Invalid {
                path: path.to_owned(),
                key,
                problem,
            })
        };
        let r = &self.recognition;
        if let Some(t) = r.threshold {
            if r.min_margin == Some(0.0) && t > MAX_THRESHOLD_WITHOUT_MARGIN {
                return bad(
                    "recognition.threshold with recognition.min_margin = 0",
                    format!(
                        "threshold {t} above {MAX_THRESHOLD_WITHOUT_MARGIN} with no margin lets nearly any face match someone (unrelated faces are about 1.4 apart); lower it or set min_margin"
                    ),
                );
            }
        }
        if let Some((key, problem)) = self.mqtt.as_ref().and_then(|m| m.problem()) {
            return bad(key, problem);
        }
        if self.mqtt.as_ref().is_some_and(|m| m.unknown_face_picture) && !self.audit.faces {
            return bad(
                "mqtt.unknown_face_picture",
                "shares the kept picture of a stranger's denial: needs audit.faces = true".into(),
            );
        }
        if self.mqtt.is_some() && self.control.socket().is_none() {
            // The site link is another process: it reaches the door only through the API.
            return bad(
                "control.socket",
                "the site link ([mqtt]) reaches the door through the control API: set a socket"
                    .into(),
            );
        }
        if let Some((key, problem)) = self.liveness.nir.as_ref().and_then(|n| n.problem()) {
            return bad(key, problem);
        }
        if let Err((key, problem)) = self.console.listen_addr() {
            return bad(key, problem);
        }
        if self.console.tls_cert.as_os_str().is_empty()
            != self.console.tls_key.as_os_str().is_empty()
        {
            return bad(
                "console.tls_cert with console.tls_key",
                "give both (your own certificate) or neither (a self-signed one)".into(),
            );
        }
        let fps = f64::from(self.camera.fps);
        let span = f64::from(r.frames.saturating_sub(1)) / fps;
        if span > r.window_seconds {
            return bad(
                "recognition.frames with recognition.window_seconds and camera.fps",
                format!(
                    "{} frames at {} fps span {span:.2} s, longer than the {} s window: the door would never unlock",
                    r.frames, self.camera.fps, r.window_seconds
                ),
            );
        }
        if self.camera.timeout_seconds >= UNIT_WATCHDOG_SECONDS {
            return bad(
                "camera.timeout_seconds with the unit's WatchdogSec",
                format!(
                    "{} s is not under the unit's WatchdogSec={UNIT_WATCHDOG_SECONDS}s: every camera stall would become a watchdog kill",
                    self.camera.timeout_seconds
                ),
            );
        }
        if crate::door::lockpin::PULLED_UP_AT_BOOT.contains(&self.lock.gpio)
            && !self.lock.active_low
        {
            return bad(
                "lock.gpio with lock.active_low = false",
                format!(
                    "GPIO{} has a 1.8 kOhm pull-up on the Raspberry Pi board, so an active-high relay on it is on (unlocked) from power-on until the daemon runs; use another pin",
                    self.lock.gpio
                ),
            );
        }
        Ok(())
    }

    /// Settings a site may want but that loosen security: accepted, named in the journal and in
    /// the audit log's `start` event.
    pub fn warnings(&self) -> Vec<String> {
        let r = &self.recognition;
        let mut w = Vec::new();
        if r.min_margin == Some(0.0) {
            w.push("recognition.min_margin = 0: two similar people are not told apart".into());
        }
        if r.frames == 2 {
            w.push("recognition.frames = 2: the fewest agreeing frames allowed".into());
        }
        if r.threshold_override {
            w.push(
                "recognition.threshold_override = true: a threshold above the model's calibrated range is allowed"
                    .into(),
            );
        }
        if self.lock.unlock_seconds > 30.0 {
            w.push(format!(
                "lock.unlock_seconds = {}: the door stays open long enough for others to follow",
                self.lock.unlock_seconds
            ));
        }
        if r.cooldown_seconds == 0.0 {
            w.push("recognition.cooldown_seconds = 0: no pause between two unlocks".into());
        }
        if self.audit.on_failure == AuditFailure::GrantAndAlarm {
            w.push("audit.on_failure = grant_and_alarm: grants can go unrecorded".into());
        }
        w.extend(self.output.warnings());
        w
    }

    /// Checks every value's range.
    pub fn check(&self, path: &Path) -> Result<(), ConfigError> {
        let bad = |key, problem: String| {
            Err(ConfigError::Invalid {
                path: path.to_owned(),
                key,
                problem,
            })
        };
        let cam = &self.camera;
        if !(32..=4096).contains(&cam.width) || !(32..=4096).contains(&cam.height) {
            return bad(
                "camera.width/height",
                format!(
                    "{}x{} is not a usable frame size (32 to 4096 a side)",
                    cam.width, cam.height
                ),
            );
        }
        if !(1..=120).contains(&cam.fps) {
            return bad("camera.fps", format!("must be 1 to 120 (got {})", cam.fps));
        }
        if cam.source == CameraSource::Rpicam
            && cam
                .rpicam_command
                .first()
                .is_none_or(|p| p.trim().is_empty())
        {
            return bad(
                "camera.rpicam_command",
                "source = \"rpicam\" needs a program, e.g. [\"rpicam-vid\"]".into(),
            );
        }
        seconds(
            path,
            "camera.timeout_seconds",
            cam.timeout_seconds,
            0.05,
            30.0,
        )?;
        if let crate::cores::Threads::Count(n) = self.performance.workers {
            if n.get() > crate::cores::MAX_WORKERS {
                return bad(
                    "performance.workers",
                    format!(
                        "{n} workers would each hold their own network buffers; at most {}",
                        crate::cores::MAX_WORKERS
                    ),
                );
            }
        }
        // BCM GPIO 0-27 are the ones on the 40-pin header.
        if self.lock.gpio > 27 {
            return bad(
                "lock.gpio",
                format!(
                    "GPIO{} is not on the 40-pin header (BCM 0 to 27)",
                    self.lock.gpio
                ),
            );
        }
        seconds(
            path,
            "lock.unlock_seconds",
            self.lock.unlock_seconds,
            0.5,
            600.0,
        )?;
        let r = &self.recognition;
        if let Some(t) = r.threshold {
            if !(t.is_finite() && t > 0.0 && t <= 4.0) {
                return bad(
                    "recognition.threshold",
                    format!("must be a distance between 0 and 4 (got {t})"),
                );
            }
        }
        if let Some(m) = r.min_margin {
            if !(m.is_finite() && (0.0..=2.0).contains(&m)) {
                return bad(
                    "recognition.min_margin",
                    format!("must be between 0 and 2 (got {m})"),
                );
            }
        }
        if !(r.target_fnir.is_finite() && r.target_fnir > 0.0 && r.target_fnir < 1.0) {
            return bad(
                "recognition.target_fnir",
                format!(
                    "must be a share between 0 and 1, e.g. 0.05 (got {})",
                    r.target_fnir
                ),
            );
        }
        if !(r.min_face.is_finite() && (20.0..=2000.0).contains(&r.min_face)) {
            return bad(
                "recognition.min_face",
                format!(
                    "must be 20 to 2000 pixels (got {}); faces under about 80 px lose most of their identity",
                    r.min_face
                ),
            );
        }
        if !(2..=crate::access::decision::MAX_FRAMES as u32).contains(&r.frames) {
            return bad(
                "recognition.frames",
                format!(
                    "must be 2 to {} (got {}): one frame must never unlock the door",
                    crate::access::decision::MAX_FRAMES,
                    r.frames
                ),
            );
        }
        seconds(
            path,
            "recognition.window_seconds",
            r.window_seconds,
            0.05,
            60.0,
        )?;
        seconds(
            path,
            "recognition.cooldown_seconds",
            r.cooldown_seconds,
            0.0,
            3600.0,
        )?;
        if !(1..=10_000).contains(&r.deny_after_frames) {
            return bad(
                "recognition.deny_after_frames",
                format!("must be 1 to 10000 (got {})", r.deny_after_frames),
            );
        }
        if let Err(p) = r.quality.check() {
            return bad(p.key, p.message);
        }
        let checks = [
            self.door.check(self.lock.gpio),
            self.access.check(),
            self.tamper.check(),
        ];
        if let Some(Err(p)) = checks.into_iter().find(Result::is_err) {
            return bad(p.key, p.message);
        }
        if let Err(p) = self.output.check() {
            return bad(p.key, p.message);
        }
        seconds(
            path,
            "gallery.poll_seconds",
            self.gallery.poll_seconds,
            0.05,
            3600.0,
        )?;
        Ok(())
    }

    /// `recognition.threshold` against the model in use (its manifest threshold
    /// `model_threshold`): above the calibrated range ([`max_calibrated_threshold`]) it is a
    /// problem unless `recognition.threshold_override`. Checked where the model is known: at
    /// start, on reload and in `facegated --check`.
    pub fn threshold_problem(&self, model_threshold: f32) -> Option<Problem> {
        let r = &self.recognition;
        let max = max_calibrated_threshold(model_threshold);
        // The 1:1 check's threshold (a card or PIN named the person) has the same bound: above
        // it nothing was measured, and a stolen card's holder needs only to be near one person.
        let keys = [
            ("recognition.threshold", r.threshold),
            ("access.factor_threshold", self.access.factor_threshold),
        ];
        let (key, t) = keys
            .into_iter()
            // A hair of slack: calibrate writes its grid's top (rounded to 3 decimals) back.
            .find_map(|(k, t)| t.filter(|&t| t > max + 1e-4).map(|t| (k, t)))?;
        if r.threshold_override {
            return None;
        }
        Some(Problem::new(
            key,
            format!(
                "{t} is above the model's calibrated range (up to {max:.3}, its threshold {model_threshold} x {CALIBRATED_THRESHOLD_FACTOR}): strangers may be let in, and with one person enrolled the margin rule cannot stop them; lower it, or set recognition.threshold_override = true for a point you measured (facegate calibrate --open-set)"
            ),
        ))
    }

    /// What the `start` event says about the threshold: the one in effect, the model's
    /// calibrated range and the override.
    pub fn threshold_record(&self, model_threshold: f32) -> String {
        let t = self.recognition.threshold.unwrap_or(model_threshold);
        format!(
            "threshold {t:.3} (calibrated up to {:.3}; recognition.threshold_override = {})",
            max_calibrated_threshold(model_threshold),
            self.recognition.threshold_override
        )
    }

    /// The decision parameters, with the model's threshold and margin (from its manifest) where
    /// the config sets none.
    pub fn decision_params(&self, model_threshold: f32, model_margin: f32) -> DecisionParams {
        let r = &self.recognition;
        DecisionParams {
            threshold: r.threshold.unwrap_or(model_threshold),
            min_margin: r.min_margin.unwrap_or(model_margin),
            min_face: r.min_face,
            frames: r.frames,
            window: Duration::from_secs_f64(r.window_seconds),
            cooldown: Duration::from_secs_f64(r.cooldown_seconds),
            deny_after: r.deny_after_frames,
            rearm: Duration::from_secs(2),
            deny_repeat: Duration::from_secs(10),
            min_liveness: self.liveness.level.min_score(),
            cues: self.liveness.cues_on(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("/etc/facegate/config.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn an_empty_file_is_the_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
    }

    #[test]
    fn the_shipped_example_parses() {
        let text = include_str!("../../systemd/config.toml");
        let c = parse(text).unwrap();
        assert_eq!(c.lock.gpio, 17);
        // Its commented CSI camera lines, switched on, parse too.
        let csi = text
            .replace("# source = \"rpicam\"", "source = \"rpicam\"")
            .replace("# rpicam_command =", "rpicam_command =");
        let c = parse(&csi).unwrap();
        assert_eq!(c.camera.source, CameraSource::Rpicam);
        assert_eq!(c.camera.rpicam_command, ["rpicam-vid"]);
        // Its commented NIR camera section, switched on, too.
        let nir = text
            .replace("# [liveness.nir", "[liveness.nir")
            .replace("# device = \"/dev/video2\"", "device = \"/dev/video2\"");
        let c = parse(&nir).unwrap();
        assert!(c.decision_params(0.6, 0.05).cues);
        assert_eq!(
            c.liveness.nir.unwrap().camera.device,
            Path::new("/dev/video2")
        );
    }

    #[test]
    fn the_liveness_level_sets_the_rules_minimum_score() {
        let at = |text: &str| parse(text).unwrap().decision_params(0.6, 0.05).min_liveness;
        assert_eq!(at(""), None, "off by default");
        assert_eq!(at("[liveness]\nlevel = \"off\"\n"), None);
        assert_eq!(at("[liveness]\nlevel = \"high\"\n"), Some(0.8));
        let err = parse("[liveness]\nlevel = \"paranoid\"\n").unwrap_err();
        assert!(err.contains("paranoid") || err.contains("level"), "{err}");
    }

    #[test]
    fn nir_mode_turns_the_cues_on_independently_of_the_level() {
        let c = parse(
            "[liveness.nir]\nscale = 0.5\noffset_x = 12\n[liveness.nir.camera]\nsource = \"rpicam\"\nrpicam_command = [\"rpicam-vid\", \"--camera\", \"1\"]\n",
        )
        .unwrap();
        let p = c.decision_params(0.6, 0.05);
        assert!(p.cues);
        assert_eq!(p.min_liveness, None);
        let nir = c.liveness.nir.unwrap();
        assert_eq!((nir.scale, nir.offset_x), (0.5, 12.0));
        assert_eq!(nir.camera.rpicam_command[2], "1");
        assert!(!parse("").unwrap().decision_params(0.6, 0.05).cues);
        let err = parse("[liveness.nir]\ntolerance = 3\n").unwrap_err();
        assert!(err.contains("liveness.nir.tolerance"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let err = parse("[lock]\ngpio = 17\nunlock_secs = 3\n").unwrap_err();
        assert!(err.contains("unlock_secs"), "{err}");
        assert!(err.contains("/etc/facegate/config.toml"), "{err}");
        let err = parse("[lok]\n").unwrap_err();
        assert!(err.contains("lok"), "{err}");
    }

    #[test]
    fn wrong_types_name_the_key() {
        let err = parse("[recognition]\nframes = \"three\"\n").unwrap_err();
        assert!(err.contains("frames"), "{err}");
    }

    #[test]
    fn out_of_range_values_name_the_key_and_the_problem() {
        for (text, key) in [
            ("[recognition]\nframes = 1\n", "recognition.frames"),
            ("[recognition]\nthreshold = -0.5\n", "recognition.threshold"),
            ("[recognition]\nmin_face = 5\n", "recognition.min_face"),
            (
                "[recognition.quality]\nmax_yaw = -1\n",
                "recognition.quality.max_yaw",
            ),
            ("[lock]\ngpio = 40\n", "lock.gpio"),
            ("[lock]\nunlock_seconds = 0\n", "lock.unlock_seconds"),
            ("[camera]\nfps = 0\n", "camera.fps"),
            ("[camera]\nwidth = 0\n", "camera.width/height"),
            (
                "[camera]\nsource = \"rpicam\"\nrpicam_command = []\n",
                "camera.rpicam_command",
            ),
            (
                "[camera]\nsource = \"rpicam\"\nrpicam_command = [\" \"]\n",
                "camera.rpicam_command",
            ),
            ("[gallery]\npoll_seconds = nan\n", "gallery.poll_seconds"),
            ("[performance]\nworkers = 17\n", "performance.workers"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(key), "{text:?} gave {err}");
        }
    }

    #[test]
    fn unsafe_combinations_are_refused_naming_the_keys() {
        for (text, key, why) in [
            (
                "[recognition]\nthreshold = 1.5\nmin_margin = 0\n",
                "recognition.threshold with recognition.min_margin = 0",
                "nearly any face",
            ),
            (
                "[camera]\nfps = 5\n[recognition]\nframes = 10\nwindow_seconds = 1.5\n",
                "recognition.frames with recognition.window_seconds and camera.fps",
                "span 1.80 s",
            ),
            (
                "[camera]\ntimeout_seconds = 10\n",
                "camera.timeout_seconds with the unit's WatchdogSec",
                "watchdog kill",
            ),
            (
                "[lock]\ngpio = 3\n",
                "lock.gpio with lock.active_low = false",
                "pull-up",
            ),
        ] {
            let err = parse(text).unwrap_err();
            assert!(
                err.contains(key) && err.contains(why),
                "{text:?} gave {err}"
            );
        }
        // Each alone, or with what makes it safe, is accepted.
        for text in [
            "[recognition]\nthreshold = 1.5\nmin_margin = 0.1\n",
            "[recognition]\nthreshold = 1.0\nmin_margin = 0\n",
            "[camera]\nfps = 5\n[recognition]\nframes = 8\nwindow_seconds = 1.5\n",
            "[camera]\ntimeout_seconds = 9.5\n",
            "[lock]\ngpio = 3\nactive_low = true\n",
        ] {
            parse(text).unwrap();
        }
    }

    /// Issue #24 finding 4: without TLS, passwords, events and the site gallery would cross
    /// the network in clear; only a broker on this machine may go without.
    #[test]
    fn mqtt_without_tls_is_refused_unless_the_broker_is_on_this_machine() {
        let mqtt = |host: &str| {
            format!(
                "[mqtt]\nhost = \"{host}\"\ntls = false\nusername = \"door\"\npassword_file = \"/etc/facegate/mqtt.pass\"\n"
            )
        };
        for host in [
            "broker.example.com",
            "192.168.1.10",
            "fe80::1",
            "10.0.0.1",
            "localhost.example.com",
        ] {
            let err = parse(&mqtt(host)).unwrap_err();
            assert!(
                err.contains("mqtt.tls") && err.contains("in clear"),
                "{host}: {err}"
            );
        }
        for host in [
            "localhost",
            "LocalHost",
            "127.0.0.1",
            "127.8.9.10",
            "::1",
            "[::1]",
            "::ffff:127.0.0.1",
        ] {
            parse(&mqtt(host)).unwrap_or_else(|e| panic!("{host}: {e}"));
        }
        // With TLS any host is fine (given the CA).
        parse("[mqtt]\nhost = \"broker.example.com\"\nca = \"/etc/facegate/ca.pem\"\n").unwrap();
    }

    /// Sharing the latest stranger's picture with the site needs the pictures kept.
    #[test]
    fn unknown_face_picture_needs_audit_faces() {
        let mqtt = "[mqtt]\nhost = \"localhost\"\ntls = false\nunknown_face_picture = true\n";
        let err = parse(mqtt).unwrap_err();
        assert!(
            err.contains("mqtt.unknown_face_picture") && err.contains("audit.faces"),
            "{err}"
        );
        let c = parse(&format!("{mqtt}[audit]\nfaces = true\n")).unwrap();
        assert!(c.mqtt.unwrap().unknown_face_picture);
        assert!(
            !parse("[mqtt]\nhost = \"localhost\"\ntls = false\n")
                .unwrap()
                .mqtt
                .unwrap()
                .unknown_face_picture
        );
    }

    /// Issue #24 finding 10: a threshold of 1.5 was only warned about, and with one person
    /// enrolled the margin rule is void: a stranger got in at 0.916.
    #[test]
    fn a_threshold_above_the_models_calibrated_range_needs_the_override() {
        let sface = 0.5;
        assert!(parse("").unwrap().threshold_problem(sface).is_none());
        for t in ["0.3", "0.5", "0.55"] {
            let c = parse(&format!("[recognition]\nthreshold = {t}\n")).unwrap();
            assert_eq!(c.threshold_problem(sface), None, "{t}");
        }
        for t in ["0.56", "0.7", "1.5"] {
            let c = parse(&format!("[recognition]\nthreshold = {t}\n")).unwrap();
            let p = c.threshold_problem(sface).expect(t);
            assert_eq!(p.key, "recognition.threshold");
            assert!(p.message.contains("calibrated range (up to 0.550"), "{p}");
            // dlib's threshold is 0.6: its range is its own.
            assert_eq!(c.threshold_problem(0.6).is_some(), t != "0.56", "{t}");
        }
        // The 1:1 check's threshold has the same bound: a stolen card's holder needs only to be
        // near one person.
        let c = parse("[access]\nfactor_threshold = 0.55\n").unwrap();
        assert_eq!(c.threshold_problem(sface), None);
        let c = parse("[access]\nfactor_threshold = 0.8\n").unwrap();
        let p = c.threshold_problem(sface).expect("0.8 is out of range");
        assert_eq!(p.key, "access.factor_threshold");
        assert!(parse("[access]\nfactor_threshold = -1\n").is_err());
        let c = parse("[recognition]\nthreshold = 1.5\nthreshold_override = true\n").unwrap();
        assert_eq!(c.threshold_problem(sface), None);
        assert!(c
            .warnings()
            .join("; ")
            .contains("threshold_override = true"));
        assert_eq!(
            c.threshold_record(sface),
            "threshold 1.500 (calibrated up to 0.550; recognition.threshold_override = true)"
        );
        assert_eq!(
            parse("").unwrap().threshold_record(sface),
            "threshold 0.500 (calibrated up to 0.550; recognition.threshold_override = false)"
        );
    }

    #[test]
    fn loosening_settings_are_warned_about_not_refused() {
        assert!(parse("").unwrap().warnings().is_empty());
        let c = parse("[recognition]\nmin_margin = 0\n[audit]\non_failure = \"grant_and_alarm\"\n")
            .unwrap();
        let w = c.warnings().join("; ");
        assert!(
            w.contains("recognition.min_margin = 0") && w.contains("audit.on_failure"),
            "{w}"
        );
    }

    /// A reload applies what can change live and keeps, and names, what needs a restart.
    #[test]
    fn a_reload_keeps_restart_only_settings_and_names_them() {
        let old = Config::default();
        let mut new = old.clone();
        new.camera.width = 1280;
        new.control.socket = "/tmp/other.sock".into();
        new.lock.unlock_seconds = 2.0;
        new.recognition.frames = 4;
        let (applied, restart) = old.reloaded(new);
        assert_eq!(restart, vec!["[camera]", "[control]"]);
        assert_eq!(applied.camera, old.camera);
        assert_eq!(applied.control, old.control);
        assert_eq!(applied.lock.unlock_seconds, 2.0, "applies live");
        assert_eq!(applied.recognition.frames, 4, "applies live");
        let (same, none) = old.reloaded(old.clone());
        assert_eq!((same, none.len()), (old, 0));
    }

    #[test]
    fn the_model_threshold_applies_unless_overridden() {
        let c = parse("").unwrap();
        assert_eq!(c.decision_params(0.6, 0.05).threshold, 0.6);
        let c = parse("[recognition]\nthreshold = 0.5\n").unwrap();
        assert_eq!(c.decision_params(0.6, 0.05).threshold, 0.5);
    }
}
