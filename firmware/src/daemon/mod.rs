//! The door daemon's loop: frame -> largest face -> embedding -> 1:N match -> decision -> the
//! gate -> relay (or the panel) and audit. [`run`] takes its [`Parts`] (config, devices, clock,
//! service manager, audit sink, reader output, control API requests) and its stop signal, so
//! `facegated`, the simulator and the tests all run this same code.
//!
//! The loop's concerns, one file each: `threads.rs` (simulated time on one thread, or capture,
//! recognition workers and control in real time), `look.rs` (what recognition makes of a frame),
//! `decide.rs` (a recognised frame to a decision, a grant to the gate), `inputs.rs` (relock,
//! office hours, exit button and contact, site requests, watchdog), `control.rs` (the local
//! control API's requests), `live.rs` (the live view and snapshots), `camera.rs` (camera
//! health), `reload.rs` (config and gallery) and `records.rs` (the audit trail). The door itself opens only in `access::gate`.

use crate::access::cues::{Cues, NirHealth, NirNews};
use crate::access::decision::{Decider, Decision, Nearest, Observation, Seen};
use crate::access::guard::{Guard, Note};
use crate::access::tamper::{blind, Blind};
use crate::access::{At, Gate, GateSettings, Outcome, Recorder, Refusal, Request};
use crate::config::{AuditFailure, Config, ConfigError};
use crate::control::Control;
use crate::door::control_api::{self, Answer, ApiRequest, Command, Peer};
use crate::door::realtime::{
    self, CameraNews, Captured, FrozenWatch, Mailbox, StatusLine, MAX_BACKOFF,
};
use crate::hal::{
    CameraError, CameraErrorKind, Clock, DoorInputs, DoorSensors, FrameSource, LockError,
    LockOutput, Supervisor,
};
use crate::panel::reader::CredentialOutput;
use crate::people::gallery::{GalleryError, Index, Reloader, Scoring};
use crate::records::audit::{AuditSink, Event, EventKind};
use crate::vision::detect::DetectorParams;
use crate::vision::liveness::{Level, Liveness};
use crate::vision::models::{EmbedderManifest, ModelError, ModelSet};
use crate::vision::quality::{self, QualityParams};
use crate::{Embedding, Pipeline, PipelineError};
use image::RgbImage;
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod camera;
mod control;
mod decide;
mod factors;
mod inputs;
mod live;
mod look;
mod pin_check;
mod records;
mod reload;
mod threads;

use camera::CameraState;
use inputs::DoorIo;
use look::{FrameFacts, LookParams};
use records::{Pictures, Records};
use reload::ReloadState;

/// Faces down to this fraction of `min_face` are detected, so a face just too small is recorded
/// as such rather than not seen at all.
const DETECT_BELOW_MIN_FACE: f32 = 0.75;
/// Longest single sleep while waiting, so relocking and stop requests stay prompt.
const TICK: Duration = Duration::from_millis(50);
/// The real-time control loop's longest wait for a recognised frame: door inputs, stop requests
/// and the watchdog are served at least this often (the relock is waited for exactly).
const RT_TICK: Duration = Duration::from_millis(5);

/// Errors that stop the daemon. The door is locked before any of them is returned.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The lock output cannot be driven: the door's state cannot be guaranteed.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The models could not be loaded.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The face pipeline failed to start.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A setting does not fit the model it is used with (e.g. a threshold above its
    /// calibrated range).
    #[error(transparent)]
    Setting(#[from] crate::problem::Problem),
    /// The site's calibration (`recognition.calibration`) cannot be used.
    #[error(transparent)]
    Calibration(#[from] crate::access::operating_point::CalibrationError),
}

/// The daemon's devices.
pub struct Devices<C, L, S> {
    /// Where frames come from.
    pub camera: C,
    /// The lock relay.
    pub lock: L,
    /// Exit button and door contact.
    pub sensors: S,
    /// The near-infrared camera of `[liveness.nir]` (`None`: none fitted; with NIR mode on, no
    /// face is then let in).
    pub nir: Option<Box<dyn FrameSource + Send>>,
    /// The card reader or keypad of second factors (`[access] factors`; `None`: none fitted).
    pub credentials: Option<Box<dyn crate::hal::CredentialInput + Send>>,
}

/// What a run did, for the log and the simulator.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// Frames processed.
    pub frames: u64,
    /// Frames with a face.
    pub faces: u64,
    /// Door unlocks for enrolled people.
    pub grants: u64,
    /// Denials recorded.
    pub denials: u64,
    /// Camera errors (stalls, disconnections, bad frames).
    pub camera_errors: u64,
    /// Real time spent processing frames (not waiting for them).
    pub busy: Duration,
    /// Of which: detection with landmarks, alignment, embedding, 1:N match.
    pub stages: Stages,
    /// Frames the camera delivered (real-time mode; in the simulated, one-thread mode every
    /// delivered frame is processed).
    pub delivered: u64,
    /// Frames not processed because a newer one came first, or because they were older than
    /// one frame period when recognition was ready for them (real-time mode).
    pub stale_dropped: u64,
    /// Real-time mode: how old frames were when recognition started on them (`.max`: the oldest).
    pub frame_age: realtime::Spread,
    /// Real-time mode: how old frames were when decided on (age + recognition).
    pub decision_lag: realtime::Spread,
    /// How late each relock came after its due time (`.max`: the latest).
    pub relock_late: realtime::Spread,
    /// Real-time mode: recognition's time per frame (on the modelled machine, in the simulator).
    pub recognition: realtime::Spread,
    /// Faces scored by the liveness networks (only faces that would be let in are).
    pub liveness_runs: u64,
    /// Real-time mode: recognition workers, each on a frame of its own (`[performance]`).
    pub workers: usize,
}

/// Real time spent in each stage of the per-frame work.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stages {
    /// Detection and landmarks (every frame).
    pub detect: Duration,
    /// Alignment and the quality check (frames with a large enough face).
    pub align: Duration,
    /// Embedding.
    pub embed: Duration,
    /// 1:N match against the gallery.
    pub matching: Duration,
    /// The liveness networks (faces that were embedded, with `[liveness]` on).
    pub liveness: Duration,
}

/// Loads the models named by the config and builds the face pipeline for door frames.
pub fn load_pipeline(config: &Config) -> Result<Pipeline, DaemonError> {
    let models = match &config.recognition.models {
        Some(path) => ModelSet::from_manifest(path)?,
        None => ModelSet::builtin()?,
    };
    let mut params = DetectorParams::for_photos(&models.manifest.detector);
    params.min_face = config.recognition.min_face * DETECT_BELOW_MIN_FACE;
    // `auto` keeps the gallery's network, else takes the form this CPU runs fastest.
    let embedder = crate::people::netform::resolve(
        &models,
        config.recognition.embedder.as_deref(),
        &config.gallery.path,
    )?;
    let mut pipeline = Pipeline::new(&models, embedder.as_deref(), Some(params))?;
    // The threshold's range is the model's: only checkable once it is known (`--check` too).
    if let Some(p) = config.threshold_problem(pipeline.embedder_spec().threshold) {
        return Err(p.into());
    }
    if config.recognition.detector == crate::config::DoorDetector::Blazeface {
        pipeline.use_fast_detector(&models)?;
    }
    let (_, threads) = crate::cores::door_split(
        &config.performance,
        &pipeline.embedder_spec().quantization,
        crate::cores::available(),
    );
    crate::cores::use_threads(threads);
    tracing::info!("networks run on {threads} thread(s)");
    Ok(pipeline)
}

struct Loop<'a, L: LockOutput, S> {
    config: Config,
    /// Config and gallery reloads (`reload.rs`).
    reload: ReloadState,
    /// The embedder's facts (the pipeline itself may be on the recognition thread).
    spec: EmbedderManifest,
    /// The one place the door opens (and, in reader mode, the panel's credential output).
    gate: Gate<'a, L>,
    /// Exit button, door contact, alarm output (`inputs.rs`).
    door_io: DoorIo<S>,
    clock: &'a dyn Clock,
    control: &'a Control,
    supervisor: &'a mut dyn Supervisor,
    records: Records<'a>,
    gallery: Reloader,
    decider: Decider,
    /// The last frame's embedding, and the mean of a run's (buffers reused frame to frame).
    embedding: Embedding,
    fused: Embedding,
    /// The liveness networks (`None` when the models have none: then a level other than off
    /// refuses every face).
    liveness: Option<Liveness>,
    /// The presentation cues (NIR view, border) (`crate::access::cues`).
    cues: Cues,
    /// The cameras' health and the NIR camera (`camera.rs`).
    cameras: CameraState,
    summary: Summary,
    last_watchdog: Option<Duration>,
    /// Supervision, policy, lockout, tailgating, tamper; and the events they note.
    guard: Guard,
    notes: Vec<Note>,
    status: StatusLine,
    /// Requests of the local control API.
    api: Option<Receiver<ApiRequest>>,
    /// Site refusals recorded one by one this minute (the rest are counted).
    site_refusals: crate::site::trust::RefusalBudget,
    /// Wrong operator keys recorded one by one this minute (the rest are counted).
    operator_refusals: crate::site::trust::RefusalBudget,
    /// The live view's viewers and the newest frame (`live.rs`).
    live: live::LiveState,
    /// `[audit] faces`: the decision pictures (`records.rs`).
    pictures: Pictures,
    /// Second factors: the card reader or keypad, the claim (`factors.rs`).
    factors: factors::FactorState,
}

/// Everything the door runs with, besides its stop signal: what travels together.
pub struct Parts<'a, C, L, S> {
    /// The checked config.
    pub config: Config,
    /// Where it came from (re-read on reload); `None`: no reloads of the config.
    pub config_path: Option<PathBuf>,
    /// The face pipeline ([`load_pipeline`]).
    pub pipeline: &'a mut Pipeline,
    /// Camera, lock output, door inputs.
    pub devices: Devices<C, L, S>,
    /// Time.
    pub clock: &'a dyn Clock,
    /// The service manager.
    pub supervisor: &'a mut dyn Supervisor,
    /// Where events are recorded.
    pub audit: &'a mut dyn AuditSink,
    /// Reader mode: where grants' credentials go (the relay is then never driven open).
    pub output: Option<&'a mut (dyn CredentialOutput + 'static)>,
    /// Requests of the local control API ([`crate::door::control_api`]); `None`: no API.
    pub api: Option<Receiver<ApiRequest>>,
}

/// Runs the door until `control` asks it to stop. The door is driven to locked first, and again
/// on the way out, whichever way out it is. In reader mode (`parts.output`) a grant sends the
/// person's credential to the panel instead of unlocking, and the lock output is only ever
/// driven to locked.
pub fn run<C: FrameSource + Send, L: LockOutput, S: DoorSensors>(
    parts: Parts<'_, C, L, S>,
    control: &Control,
) -> Result<Summary, DaemonError> {
    let Parts {
        config,
        config_path,
        pipeline,
        devices,
        clock,
        supervisor,
        audit,
        output,
        api,
    } = parts;
    let gate = Gate::new(
        devices.lock,
        output,
        GateSettings {
            on_failure: config.audit.on_failure,
            hold: Duration::from_secs_f64(config.lock.unlock_seconds),
        },
    )?
    .with_factors(crate::access::factors::FactorRule::of(&config.access));
    // Again here, for callers that built the pipeline themselves: never a door on a threshold
    // outside the model's calibrated range without the override.
    if let Some(p) = config.threshold_problem(pipeline.embedder_spec().threshold) {
        return Err(p.into());
    }
    let fingerprint = pipeline.embedder_spec().fingerprint.clone();
    let scoring = Scoring::of(pipeline.embedder_spec());
    let (gallery, gallery_error) =
        Reloader::new_or_empty(&config.gallery.path, &fingerprint, scoring);
    // The threshold for this gallery's size (see access::operating_point); again at every
    // reload of the gallery or the config.
    let calibration = reload::site_calibration(&config, pipeline.embedder_spec())?;
    let point = reload::operating_point(
        &config,
        calibration.as_ref(),
        pipeline.embedder_spec(),
        gallery.gallery().people.len(),
    );
    let params = config.decision_params(point.threshold, pipeline.embedder_spec().min_margin);
    let factors = factors::FactorState::new(
        &config.access,
        devices.credentials,
        reload::one_to_one(&config, calibration.as_ref(), pipeline.embedder_spec()),
    );
    let guard = Guard::new(&config.access, &config.door, &config.tamper);
    // Off (the default): the networks are loaded only if a reload turns the check on.
    let models = config.recognition.models.as_deref();
    let liveness = Some(if config.liveness.level == Level::Off {
        Liveness::deferred(models)
    } else {
        Liveness::load(models)?
    });
    let l = &config.liveness;
    let cues = Cues::new(l.nir.clone(), l.border, l.motion);
    if cues.nir_on() && devices.nir.is_none() {
        tracing::error!("[liveness.nir] is on but no NIR camera was given: no face is let in");
    }
    let config_alarm = config.audit.on_failure == AuditFailure::GrantAndAlarm;
    let config_audit = config.audit.clone();
    // `[mqtt]` is read at start only: a change needs a restart, as the link's.
    let share_unknown = config.mqtt.as_ref().is_some_and(|m| m.unknown_face_picture);
    let mut lp = Loop {
        config,
        reload: ReloadState {
            config_path,
            next_poll: Duration::ZERO,
            count: 0,
            calibration,
            point,
        },
        spec: pipeline.embedder_spec().clone(),
        gate,
        door_io: DoorIo {
            sensors: devices.sensors,
            inputs: DoorInputs::default(),
        },
        clock,
        control,
        supervisor,
        records: Records {
            sink: audit,
            clock,
            alarm_on_failure: config_alarm,
            alarm: None,
            readers: Vec::new(),
            recent: VecDeque::new(),
            pictured: None,
        },
        gallery,
        decider: Decider::new(params),
        embedding: Embedding(Vec::new()),
        fused: Embedding(Vec::new()),
        liveness,
        cameras: CameraState {
            failing: false,
            backoff: realtime::FIRST_BACKOFF,
            nir: devices.nir.filter(|_| cues.nir_on()),
            nir_health: NirHealth::default(),
            nir_news: None,
        },
        cues,
        summary: Summary::default(),
        last_watchdog: None,
        guard,
        notes: Vec::new(),
        status: StatusLine::default(),
        api,
        site_refusals: Default::default(),
        operator_refusals: Default::default(),
        live: Default::default(),
        pictures: Pictures::start(&config_audit, share_unknown),
        factors,
    };
    lp.previous_run();
    let mut start = lp.event(EventKind::Start);
    tracing::info!("{}", lp.reload.point.describe());
    let mut reason = format!(
        "model {}, {} people enrolled, {}; {}",
        pipeline.embedder_name(),
        lp.gallery.gallery().people.len(),
        lp.config.threshold_record(lp.spec.threshold),
        lp.reload.point.describe()
    );
    if lp.factors.input.is_some() {
        tracing::info!("{}", lp.factors.one_to_one.describe());
        reason.push_str(&format!("; {}", lp.factors.one_to_one.describe()));
    }
    let warnings = lp.config.warnings();
    for w in &warnings {
        tracing::warn!("config loosens security: {w}");
    }
    if !warnings.is_empty() {
        reason.push_str(&format!("; loosened: {}", warnings.join("; ")));
    }
    start.reason = Some(reason);
    lp.record(&start);
    if lp.cues.nir_on() && lp.cameras.nir.is_none() {
        let e = CameraError::new(CameraErrorKind::Disconnected, "none was given");
        let news = lp.cameras.nir_health.read(lp.clock.now(), Err(&e));
        lp.nir_news(news);
    }
    if let Some(e) = gallery_error {
        lp.gallery_refused(&e);
    }
    lp.reload.next_poll = lp.clock.now() + lp.poll_interval();
    crate::memory::settle("door loaded");
    lp.supervisor.ready();
    lp.supervisor.status("watching the door");
    let result = if lp.clock.realtime() {
        lp.threaded(devices.camera, pipeline)
    } else {
        lp.main_loop(devices.camera, pipeline)
    };
    // The door locks on every way out; a failure here is logged by Door's Drop as well.
    let locked = lp.gate.lock_for_stop();
    lp.supervisor.stopping();
    let mut stop = lp.event(EventKind::Stop);
    stop.reason = Some(match (&result, &locked) {
        (Ok(()), Ok(())) => "stop requested; door locked".to_owned(),
        (Err(e), _) => format!("{e}"),
        (_, Err(e)) => format!("could not lock the door: {e}"),
    });
    lp.record(&stop);
    result?;
    locked?;
    Ok(lp.summary)
}

impl<L: LockOutput, S: DoorSensors> Loop<'_, L, S> {
    fn event(&self, kind: EventKind) -> Event {
        Event::new(kind, self.clock.wall(), self.clock.now())
    }

    /// Records `event`; `false` if the trail could not be written (see [`Records`]).
    fn record(&mut self, event: &Event) -> bool {
        let ok = self.records.record(event);
        self.raise_alarm();
        ok
    }

    /// Shows an alarm the records raised (the audit log cannot be written) in the status.
    fn raise_alarm(&mut self) {
        if let Some(alarm) = self.records.alarm.take() {
            self.supervisor.status(&alarm);
            self.status.alarm = Some(alarm);
        }
    }

    /// Now, for the gate.
    fn at(&self) -> At {
        At {
            now: self.clock.now(),
            wall: self.clock.wall(),
        }
    }

    /// Hands `request` to the gate; a relay that cannot be driven stops the daemon.
    fn open(&mut self, request: Request, at: At) -> Result<Outcome, DaemonError> {
        let source = request.source();
        let outcome = self.gate.request(request, at, &mut self.records);
        self.raise_alarm();
        let outcome = outcome.inspect_err(|e| self.lock_failed(e))?;
        if let Outcome::Refused(r) = outcome {
            if r == Refusal::NotRecorded {
                tracing::error!(?source, "door NOT opened: {}", r.as_str());
            } else {
                tracing::info!(?source, "door not opened: {}", r.as_str());
            }
        }
        Ok(outcome)
    }

    /// Tells the gate whether the site is in lockdown (set by a signed site command or the
    /// local control API).
    fn sync_lockdown(&mut self, at: At) -> Result<(), DaemonError> {
        let on = self.control.lockdown();
        let r = self.gate.set_lockdown(on, at, &mut self.records);
        self.raise_alarm();
        r.inspect_err(|e| self.lock_failed(e))?;
        Ok(())
    }

    /// Records the events the guards noted.
    fn flush(&mut self) {
        for (kind, reason) in std::mem::take(&mut self.notes) {
            let mut ev = self.event(kind);
            if kind == EventKind::Deny {
                ev.identity = Some("unknown".to_owned());
            }
            if let Some(r) = &reason {
                tracing::warn!("{kind:?}: {r}");
            }
            ev.reason = reason;
            self.record(&ev);
        }
    }

    fn poll_interval(&self) -> Duration {
        Duration::from_secs_f64(self.config.gallery.poll_seconds)
    }

    fn unlock_hold(&self) -> Duration {
        Duration::from_secs_f64(self.config.lock.unlock_seconds)
    }

    fn lock_failed(&mut self, e: &LockError) {
        tracing::error!("{e}");
        let mut ev = self.event(EventKind::LockError);
        ev.reason = Some(e.to_string());
        self.record(&ev);
    }
}
