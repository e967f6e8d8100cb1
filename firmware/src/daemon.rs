//! The door daemon's main loop: frame -> largest face -> embedding -> 1:N match -> decision ->
//! relay and audit. It takes its devices, clock, control flags, service manager and audit sink as
//! arguments, so `facegated`, the simulator and the tests all run this same code.

use crate::access::{At, Gate, GateSettings, Outcome, Recorder, Refusal, Request};
use crate::audit::{AuditSink, Event, EventKind};
use crate::config::{AuditFailure, Config, ConfigError};
use crate::cues::{Cues, NirHealth, NirNews};
use crate::decision::{Decider, Decision, Nearest, Observation, Seen};
use crate::door::control_api::{self, Answer, ApiRequest, Command, Peer};
use crate::gallery::{GalleryError, Index, Reloader, Scoring};
use crate::guard::{Guard, Note};
use crate::hal::{
    CameraError, CameraErrorKind, Clock, Control, DoorInputs, DoorSensors, FrameSource, LockError,
    LockOutput, Supervisor,
};
use crate::models::{EmbedderManifest, ModelError, ModelSet};
use crate::reader::CredentialOutput;
use crate::realtime::{self, CameraNews, Captured, FrozenWatch, Mailbox, StatusLine, MAX_BACKOFF};
use crate::tamper::{blind, Blind};
use crate::vision::detect::DetectorParams;
use crate::vision::liveness::{Level, Liveness};
use crate::vision::quality::{self, QualityParams};
use crate::{Embedding, Pipeline, PipelineError};
use image::RgbImage;
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    let embedder = crate::netform::resolve(
        &models,
        config.recognition.embedder.as_deref(),
        &config.gallery.path,
    )?;
    let mut pipeline = Pipeline::new(&models, embedder.as_deref(), Some(params))?;
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
    config_path: Option<PathBuf>,
    /// The embedder's facts (the pipeline itself may be on the recognition thread).
    spec: EmbedderManifest,
    /// The one place the door opens (and, in reader mode, the panel's credential output).
    gate: Gate<'a, L>,
    sensors: S,
    inputs: DoorInputs,
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
    /// The presentation cues (NIR view, border) and the NIR camera (`crate::cues`).
    cues: Cues,
    nir_camera: Option<Box<dyn FrameSource + Send>>,
    nir_health: NirHealth,
    nir_news: Option<Receiver<CameraNews>>,
    summary: Summary,
    next_poll: Duration,
    last_watchdog: Option<Duration>,
    camera_failing: bool,
    backoff: Duration,
    /// Supervision, policy, lockout, tailgating, tamper; and the events they note.
    guard: Guard,
    notes: Vec<Note>,
    status: StatusLine,
    /// Counts config and gallery reloads: what recognition uses is handed over after each.
    reloads: u64,
    /// Requests of the local control API.
    api: Option<Receiver<ApiRequest>>,
}

/// The audit trail as the loop and the gate write it. A failure goes to the journal, and one
/// attempt is made to leave an `audit_failed` line (it may work when only that event failed,
/// e.g. a transient I/O error); with `on_failure = "grant_and_alarm"` it raises an alarm.
struct Records<'a> {
    sink: &'a mut dyn AuditSink,
    clock: &'a dyn Clock,
    alarm_on_failure: bool,
    /// An alarm raised and not yet shown (the loop puts it in the status).
    alarm: Option<String>,
    /// Control API clients following the events (`events`); one that falls behind is dropped.
    readers: Vec<SyncSender<String>>,
    /// The latest decisions (grants, denials), newest last, for `status`.
    recent: VecDeque<Event>,
}

/// Decisions kept for the control API's `status`.
const RECENT_DECISIONS: usize = 10;

impl Records<'_> {
    /// Hands a recorded event to the control API's followers and the recent decisions.
    fn share(&mut self, event: &Event) {
        if matches!(event.event, EventKind::Grant | EventKind::Deny) {
            if self.recent.len() == RECENT_DECISIONS {
                self.recent.pop_front();
            }
            self.recent.push_back(event.clone());
        }
        if self.readers.is_empty() {
            return;
        }
        let Ok(line) = serde_json::to_string(event) else {
            return;
        };
        // Never waits: a reader whose backlog is full is dropped.
        self.readers.retain(|r| r.try_send(line.clone()).is_ok());
    }
}

impl Recorder for Records<'_> {
    fn record(&mut self, event: &Event) -> bool {
        let Err(e) = self.sink.record(event) else {
            self.share(event);
            return true;
        };
        tracing::error!("audit event {:?} not recorded: {e}", event.event);
        if self.alarm_on_failure {
            self.alarm = Some(format!("ALARM: the audit log cannot be written: {e}"));
        }
        let mut failed = Event::new(EventKind::AuditFailed, self.clock.wall(), self.clock.now());
        failed.reason = Some(format!("{:?} event not recorded: {e}", event.event));
        if let Err(e) = self.sink.record(&failed) {
            tracing::debug!("audit_failed not recorded either: {e}");
        }
        false
    }
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
    )?;
    let fingerprint = pipeline.embedder_spec().fingerprint.clone();
    let scoring = Scoring::of(pipeline.embedder_spec());
    let (gallery, gallery_error) =
        Reloader::new_or_empty(&config.gallery.path, &fingerprint, scoring);
    let params = config.decision_params(
        pipeline.embedder_spec().threshold,
        pipeline.embedder_spec().min_margin,
    );
    let guard = Guard::new(&config);
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
    let mut lp = Loop {
        config,
        config_path,
        spec: pipeline.embedder_spec().clone(),
        gate,
        sensors: devices.sensors,
        inputs: DoorInputs::default(),
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
        },
        gallery,
        decider: Decider::new(params),
        embedding: Embedding(Vec::new()),
        fused: Embedding(Vec::new()),
        liveness,
        nir_health: NirHealth::default(),
        nir_camera: devices.nir.filter(|_| cues.nir_on()),
        nir_news: None,
        cues,
        summary: Summary::default(),
        next_poll: Duration::ZERO,
        last_watchdog: None,
        camera_failing: false,
        backoff: realtime::FIRST_BACKOFF,
        guard,
        notes: Vec::new(),
        status: StatusLine::default(),
        reloads: 0,
        api,
    };
    lp.previous_run();
    let mut start = lp.event(EventKind::Start);
    let mut reason = format!(
        "model {}, {} people enrolled, threshold {:.3}",
        pipeline.embedder_name(),
        lp.gallery.gallery().people.len(),
        lp.decider.params().threshold
    );
    let warnings = lp.config.warnings();
    for w in &warnings {
        tracing::warn!("config loosens security: {w}");
    }
    if !warnings.is_empty() {
        reason.push_str(&format!("; loosened: {}", warnings.join("; ")));
    }
    start.reason = Some(reason);
    lp.record(&start);
    if lp.cues.nir_on() && lp.nir_camera.is_none() {
        let e = CameraError::new(CameraErrorKind::Disconnected, "none was given");
        let news = lp.nir_health.read(lp.clock.now(), Err(&e));
        lp.nir_news(news);
    }
    if let Some(e) = gallery_error {
        lp.gallery_refused(&e);
    }
    lp.next_poll = lp.clock.now() + lp.poll_interval();
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

    /// At start: what the log says about the previous run (a crash, a repaired tail).
    fn previous_run(&mut self) {
        let Some(prev) = self.records.sink.previous_run() else {
            return;
        };
        if prev.repaired_bytes > 0 {
            let mut ev = self.event(EventKind::LogRepaired);
            ev.reason = Some(format!(
                "cut off a torn last line of {} bytes (power loss or a crash during a write)",
                prev.repaired_bytes
            ));
            self.record(&ev);
        }
        if let Some(last) = prev.last_event.filter(|k| *k != EventKind::Stop) {
            let mut ev = self.event(EventKind::UncleanShutdown);
            ev.reason = Some(format!(
                "the previous run ended without `stop`, its last event {} at {} (crash, kill, watchdog or power loss)",
                serde_json::to_value(last)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                prev.last_time.as_deref().unwrap_or("?")
            ));
            tracing::warn!("{}", ev.reason.as_deref().unwrap_or_default());
            self.record(&ev);
        }
    }

    fn poll_interval(&self) -> Duration {
        Duration::from_secs_f64(self.config.gallery.poll_seconds)
    }

    fn unlock_hold(&self) -> Duration {
        Duration::from_secs_f64(self.config.lock.unlock_seconds)
    }

    /// The simulated-time loop: one thread, every frame read, recognised and decided in turn.
    fn main_loop<C: FrameSource>(
        &mut self,
        mut camera: C,
        pipeline: &mut Pipeline,
    ) -> Result<(), DaemonError> {
        let mut frame = RgbImage::new(0, 0);
        let mut frozen = FrozenWatch::default();
        while !self.control.stop_requested() {
            self.housekeeping()?;
            let read = camera
                .next_frame(&mut frame)
                .and_then(|()| frozen.check(self.clock.now(), camera.sequence(), &frame));
            match read {
                Ok(()) => {
                    self.summary.delivered += 1;
                    if self.camera_failing {
                        self.camera_failing = false;
                        self.backoff = realtime::FIRST_BACKOFF;
                        self.camera_recovered();
                    }
                    let now = self.clock.now();
                    self.read_nir(now);
                    let started = Instant::now();
                    let params = self.look_params();
                    let mut facts = FrameFacts::default();
                    let obs = look(
                        pipeline,
                        self.liveness.as_mut(),
                        &mut self.cues,
                        now,
                        self.gallery.index(),
                        &frame,
                        &params,
                        &mut self.summary.stages,
                        &mut self.embedding,
                        &mut facts,
                    );
                    self.summary.busy += started.elapsed();
                    self.frame(obs, facts, now)?;
                }
                Err(e) => {
                    if e.kind != CameraErrorKind::BadFrame {
                        frozen.reset();
                    }
                    self.camera_error(&mut camera, e)?
                }
            }
        }
        Ok(())
    }

    /// The real-time loop: capture (newest frame only) and recognition on their own threads;
    /// this thread serves the door (relock, inputs, reloads, watchdog) within a few ms whatever
    /// recognition is doing, and decides on what recognition reports.
    fn threaded<C: FrameSource + Send>(
        &mut self,
        mut camera: C,
        pipeline: &mut Pipeline,
    ) -> Result<(), DaemonError> {
        let stop = AtomicBool::new(false);
        let frames = Mailbox::<Captured>::default();
        let delivered = AtomicU64::new(0);
        let stale = AtomicU64::new(0);
        let params = Mutex::new((self.look_params(), self.gallery.shared_index()));
        // The liveness networks and the cues go with the pipeline to the recognition thread;
        // the NIR camera, if any, has a capture thread of its own.
        let mut liveness = self.liveness.take();
        let mut cues = std::mem::take(&mut self.cues);
        let workers = self.workers(pipeline, &cues);
        self.summary.workers = workers;
        // Workers beyond the first share the networks and have buffers of their own; the
        // presentation cues, which follow a face from frame to frame, stay with the first.
        let mut forks: Vec<(Pipeline, Option<Liveness>, Cues)> = (1..workers)
            .map(|_| (pipeline.clone(), liveness.clone(), Cues::default()))
            .collect();
        let mut nir_camera = self.nir_camera.take();
        let nir_frames = Mailbox::<Captured>::default();
        let nir_delivered = AtomicU64::new(0);
        let (nir_tx, nir_rx) = mpsc::channel();
        self.nir_news = Some(nir_rx);
        // A frame older than one frame period when recognition is ready is not used.
        let period = Duration::from_secs_f64(1.0 / f64::from(self.config.camera.fps.max(1)));
        let (news_tx, news_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel();
        let clock = self.clock;
        let result = std::thread::scope(|s| {
            let capture = std::thread::Builder::new()
                .name("capture".into())
                .spawn_scoped(s, || {
                    realtime::capture(&mut camera, clock, &stop, &frames, &news_tx, &delivered)
                })
                .expect("spawning the capture thread");
            let (stop_r, nir_frames_r, nir_tx_r, nir_delivered_r) =
                (&stop, &nir_frames, &nir_tx, &nir_delivered);
            let nir_capture = nir_camera.as_mut().map(|nir| {
                std::thread::Builder::new()
                    .name("nir-capture".into())
                    .spawn_scoped(s, move || {
                        realtime::capture(
                            nir,
                            clock,
                            stop_r,
                            nir_frames_r,
                            nir_tx_r,
                            nir_delivered_r,
                        )
                    })
                    .expect("spawning the NIR capture thread")
            });
            let shared = Shared {
                clock,
                stop: &stop,
                frames: &frames,
                nir_frames: &nir_frames,
                stale: &stale,
                period,
                params: &params,
            };
            let mut recognisers = Vec::with_capacity(workers);
            let own = (pipeline, liveness.as_mut(), &mut cues);
            let others = forks.iter_mut().map(|(p, l, c)| (p, l.as_mut(), c));
            for (n, (pipeline, liveness, cues)) in std::iter::once(own).chain(others).enumerate() {
                let done = done_tx.clone();
                let name = if n == 0 {
                    "recognition".to_owned()
                } else {
                    format!("recognition-{n}")
                };
                let h = std::thread::Builder::new()
                    .name(name)
                    .spawn_scoped(s, move || {
                        recognise(pipeline, liveness, cues, &shared, &done)
                    })
                    .expect("spawning a recognition thread");
                recognisers.push(h);
            }
            drop(done_tx);
            let result = self.serve(&news_rx, &done_rx, &params, &|| {
                capture.is_finished() || recognisers.iter().any(|h| h.is_finished())
            });
            stop.store(true, Ordering::SeqCst);
            frames.close();
            nir_frames.close();
            for h in std::iter::once(capture)
                .chain(recognisers)
                .chain(nir_capture)
            {
                if let Err(panic) = h.join() {
                    // The door locks as this unwinds (Door's Drop).
                    std::panic::resume_unwind(panic);
                }
            }
            self.summary.delivered = delivered.load(Ordering::Relaxed);
            self.summary.stale_dropped = frames.dropped() + stale.load(Ordering::Relaxed);
            result
        });
        self.liveness = liveness;
        self.cues = cues;
        self.nir_camera = nir_camera;
        result
    }

    /// The control side of the real-time loop.
    fn serve(
        &mut self,
        news: &Receiver<CameraNews>,
        done: &Receiver<Done>,
        params: &Mutex<(LookParams, Arc<Index>)>,
        worker_ended: &dyn Fn() -> bool,
    ) -> Result<(), DaemonError> {
        let mut handed = self.reloads;
        // Workers finish out of order; frames are decided in the order they were taken.
        let mut waiting: BTreeMap<u64, Option<Recognised>> = BTreeMap::new();
        let mut next = 0;
        while !self.control.stop_requested() {
            self.housekeeping()?;
            if worker_ended() {
                tracing::error!("a capture or recognition thread ended unexpectedly");
                return Ok(());
            }
            if handed != self.reloads {
                handed = self.reloads;
                let now = (self.look_params(), self.gallery.shared_index());
                *params.lock().unwrap_or_else(|p| p.into_inner()) = now;
            }
            while let Ok(n) = news.try_recv() {
                match n {
                    CameraNews::Error(e) => self.camera_error_seen(&e),
                    CameraNews::Recovered => self.camera_recovered(),
                }
            }
            self.nir_news_seen();
            let now = self.clock.now();
            let wait = self
                .gate
                .relock_at()
                .map_or(RT_TICK, |t| t.saturating_sub(now).min(RT_TICK));
            match done.recv_timeout(wait) {
                Ok(d) => {
                    waiting.insert(d.ticket, d.recognised);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
            while let Some(r) = waiting.remove(&next) {
                next += 1;
                if let Some(r) = r {
                    self.summary.busy += r.busy;
                    self.summary.frame_age.add(r.age);
                    let lag = self.clock.now().saturating_sub(r.taken);
                    self.summary.decision_lag.add(lag);
                    self.summary.recognition.add(r.busy);
                    let st = &mut self.summary.stages;
                    st.detect += r.stages.detect;
                    st.align += r.stages.align;
                    st.embed += r.stages.embed;
                    st.matching += r.stages.matching;
                    st.liveness += r.stages.liveness;
                    self.embedding = r.embedding;
                    self.frame(r.observation, r.facts, r.taken)?;
                }
            }
        }
        Ok(())
    }

    /// How many recognition workers the real-time loop runs (`[performance]`); one while a
    /// presentation cue is on, because the cues follow a face across frames in their order.
    fn workers(&self, pipeline: &Pipeline, cues: &Cues) -> usize {
        let (workers, threads) = crate::cores::door_split(
            &self.config.performance,
            &pipeline.embedder_spec().quantization,
            crate::cores::available(),
        );
        if workers > 1 && cues.any() {
            tracing::info!("one recognition worker: the presentation cues follow frames in order");
            return 1;
        }
        tracing::info!("{workers} recognition worker(s), {threads} thread(s) per network run");
        workers
    }

    /// Simulated-time mode: reads the NIR camera once, right after a colour frame taken at `now`
    /// (re-opened on the next frame after a failure).
    fn read_nir(&mut self, now: Duration) {
        let Some(cam) = self.nir_camera.as_mut() else {
            return;
        };
        let mut image = RgbImage::new(0, 0);
        let read = cam.next_frame(&mut image);
        if read.is_err() {
            if let Err(e) = cam.reopen() {
                tracing::debug!("NIR camera re-open failed: {e}");
            }
        }
        let news = self.nir_health.read(now, read.as_ref().map(|_| ()));
        if read.is_ok() {
            let taken = now;
            self.cues.offer_nir(Captured { image, taken });
        }
        self.nir_news(news);
    }

    /// Real-time mode: what the NIR capture thread said.
    fn nir_news_seen(&mut self) {
        let now = self.clock.now();
        let got: Vec<CameraNews> = self
            .nir_news
            .as_ref()
            .map(|rx| rx.try_iter().collect())
            .unwrap_or_default();
        for n in got {
            let news = match &n {
                CameraNews::Error(e) => self.nir_health.read(now, Err(e)),
                CameraNews::Recovered => self.nir_health.read(now, Ok(())),
            };
            self.nir_news(news);
        }
    }

    /// Records the NIR camera's failure or recovery; the status line says it while it fails.
    fn nir_news(&mut self, news: Option<NirNews>) {
        let ev = match news {
            None => return,
            Some(NirNews::Failed(msg)) => {
                tracing::error!("{msg}: no face is let in until it works again");
                let mut ev = self.event(EventKind::CameraError);
                ev.reason = Some(format!("{msg}; NIR mode: no face is let in"));
                ev
            }
            Some(NirNews::Recovered) => {
                tracing::info!("NIR camera recovered");
                let mut ev = self.event(EventKind::CameraRecovered);
                ev.reason = Some("NIR camera".into());
                ev
            }
        };
        self.status.nir_lost = self.nir_health.lost.as_ref().map(|l| l.1.clone());
        self.record(&ev);
    }

    fn camera_recovered(&mut self) {
        self.status.camera_lost = None;
        let ev = self.event(EventKind::CameraRecovered);
        self.record(&ev);
        tracing::info!("camera recovered");
    }

    /// Everything that is due whether or not frames come: relock, inputs, reloads, watchdog.
    fn housekeeping(&mut self) -> Result<(), DaemonError> {
        let at = self.at();
        let now = at.now;
        self.sync_lockdown(at)?;
        let relocked = self.gate.tick(at, &mut self.records);
        self.raise_alarm();
        if let Some(late) = relocked.inspect_err(|e| self.lock_failed(e))? {
            self.summary.relock_late.add(late);
            tracing::info!("door locked again");
        }
        if let Some((open, reason)) = self.guard.office_hours(at.wall) {
            self.open(Request::OfficeHours { open, reason }, at)?;
        }
        if self.camera_failing {
            // Checked while waiting to re-open too, so `camera_lost` comes on time.
            self.guard.camera_failed(now, &mut self.notes);
        }
        self.flush();
        self.link_events();
        if self.control.take_reload() {
            self.reload_config();
            self.poll_gallery(true);
            self.next_poll = now + self.poll_interval();
        } else if now >= self.next_poll {
            self.poll_gallery(false);
            self.next_poll = now + self.poll_interval();
        }
        self.read_inputs(now)?;
        self.site_requests(now)?;
        self.serve_api()?;
        if self
            .last_watchdog
            .is_none_or(|t| now.saturating_sub(t) >= Duration::from_secs(1))
        {
            self.supervisor.watchdog();
            self.last_watchdog = Some(now);
        }
        if let Some(line) = self.status.due(now, self.summary.frames) {
            self.supervisor.status(&line);
        }
        Ok(())
    }

    /// What the site link asked (`site`): events to record, a signed remote unlock.
    fn site_requests(&mut self, now: Duration) -> Result<(), DaemonError> {
        for n in self.control.take_notes() {
            let mut ev = self.event(n.kind);
            ev.identity = n.by;
            ev.reason = Some(n.reason);
            self.record(&ev);
        }
        if let Some(by) = self.control.take_remote_unlock() {
            let at = At {
                now,
                wall: self.clock.wall(),
            };
            let via = "site command".to_owned();
            self.open(Request::Remote { by, via }, at)?;
        }
        Ok(())
    }

    /// What the local control API asked (at most a few requests a turn: the door never waits).
    fn serve_api(&mut self) -> Result<(), DaemonError> {
        for _ in 0..control_api::PER_TICK {
            let Some(req) = self.api.as_ref().and_then(|rx| rx.try_recv().ok()) else {
                return Ok(());
            };
            let answer = self.answer(req.command, req.peer)?;
            // The client may have gone meanwhile: nothing to do then.
            let _ = req.reply.send(answer);
        }
        Ok(())
    }

    /// Carries out one control API request. Unlocks and lockdowns go through the gate and are
    /// recorded with who asked and from which process.
    fn answer(&mut self, command: Command, peer: Peer) -> Result<Answer, DaemonError> {
        let at = self.at();
        Ok(match command {
            Command::Help => Answer::Ok(control_api::HELP.into()),
            Command::Status => Answer::Ok(self.status_json(at.now)),
            Command::Events => {
                let (tx, rx) = mpsc::sync_channel(control_api::EVENT_BACKLOG);
                self.records.readers.push(tx);
                Answer::Events(rx)
            }
            Command::Reload { by } => {
                tracing::info!(%by, via = %peer.describe(), "reload requested");
                self.control.request_reload();
                Answer::Ok("reload requested".into())
            }
            Command::Lockdown { on, by } => {
                let mut ev = self.event(if on {
                    EventKind::Lockdown
                } else {
                    EventKind::LockdownCleared
                });
                ev.identity = Some(by);
                ev.reason = Some(peer.describe());
                let recorded = self.record(&ev);
                // A lockdown always holds (it fails towards locked); lifting one is a loosening
                // and, under on_failure = "deny", needs its record.
                if !on && !recorded && self.config.audit.on_failure == AuditFailure::Deny {
                    return Ok(Answer::Err(format!(
                        "lockdown not lifted: {}",
                        Refusal::NotRecorded.as_str()
                    )));
                }
                self.control.set_lockdown(on);
                self.sync_lockdown(at)?;
                Answer::Ok(format!("lockdown {}", if on { "on" } else { "off" }))
            }
            Command::Unlock { by } => {
                let via = peer.describe();
                match self.open(Request::Remote { by, via }, at)? {
                    Outcome::Opened => Answer::Ok("opened".into()),
                    Outcome::Refused(r) => Answer::Err(format!("refused: {}", r.as_str())),
                    other => Answer::Err(format!("{other:?}")),
                }
            }
        })
    }

    /// The control API's `status`: the gate's state, the status line, camera health, alarms
    /// and the latest decisions, as one JSON object.
    fn status_json(&self, now: Duration) -> String {
        let status = serde_json::json!({
            "door": self.gate.state(),
            "status": self.status.line(now),
            "camera_ok": self.status.camera_lost.is_none(),
            "alarm": self.status.alarm,
            "people": self.gallery.gallery().people.len(),
            "frames": self.summary.frames,
            "recent": self.records.recent,
        });
        status.to_string()
    }

    fn lock_failed(&mut self, e: &LockError) {
        tracing::error!("{e}");
        let mut ev = self.event(EventKind::LockError);
        ev.reason = Some(e.to_string());
        self.record(&ev);
    }

    fn read_inputs(&mut self, now: Duration) -> Result<(), DaemonError> {
        let inputs = match self.sensors.read() {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!("{e}");
                return Ok(());
            }
        };
        if inputs.exit_button && !self.inputs.exit_button {
            let at = At {
                now,
                wall: self.clock.wall(),
            };
            self.open(Request::ExitButton, at)?;
        }
        if inputs.door_open != self.inputs.door_open {
            match inputs.door_open {
                Some(true) => {
                    let ev = self.event(EventKind::DoorOpened);
                    self.record(&ev);
                }
                Some(false) if self.inputs.door_open.is_some() => {
                    let ev = self.event(EventKind::DoorClosed);
                    self.record(&ev);
                }
                _ => {}
            }
        }
        self.inputs = inputs;
        let state = self.gate.lock_state();
        let act = self
            .guard
            .door(now, inputs.door_open, state, &mut self.notes);
        self.flush();
        if act.relock {
            let at = self.at();
            let r = self.gate.relock_on_close(at, &mut self.records);
            self.raise_alarm();
            r.inspect_err(|e| self.lock_failed(e))?;
        }
        if let Some(on) = act.alarm {
            if let Err(e) = self.sensors.set_alarm(on) {
                tracing::error!("alarm output: {e}");
            }
        }
        Ok(())
    }

    fn gallery_refused(&mut self, e: &GalleryError) {
        tracing::error!("gallery refused, the previous one stays in use: {e}");
        let mut ev = self.event(EventKind::GalleryRefused);
        ev.reason = Some(e.to_string());
        self.record(&ev);
    }

    fn poll_gallery(&mut self, force: bool) {
        // Who was let in last, by id: indices change with the gallery.
        let held = self
            .decider
            .held_person()
            .and_then(|i| self.gallery.gallery().people.get(i))
            .map(|p| p.id.clone());
        match self.gallery.poll(force) {
            Ok(false) => {}
            Ok(true) => {
                self.reloads += 1;
                // Person indices changed: frames counted so far may point at someone else.
                let people = &self.gallery.gallery().people;
                let held = held.and_then(|id| people.iter().position(|p| p.id == id));
                self.decider.forget(held);
                let mut ev = self.event(EventKind::GalleryReloaded);
                ev.reason = Some(format!(
                    "{} people enrolled",
                    self.gallery.gallery().people.len()
                ));
                self.record(&ev);
            }
            Err(e) => self.gallery_refused(&e),
        }
    }

    fn reload_config(&mut self) {
        let Some(path) = self.config_path.clone() else {
            return;
        };
        let new = match Config::load(&path) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("config refused, the previous one stays in use: {e}");
                let mut ev = self.event(EventKind::ConfigRefused);
                ev.reason = Some(e.to_string());
                self.record(&ev);
                return;
            }
        };
        let old = &self.config;
        let (applied, restart) = old.reloaded(new);
        if applied.gallery.path != old.gallery.path {
            let fp = self.spec.fingerprint.clone();
            let scoring = Scoring::of(&self.spec);
            let (g, err) = Reloader::new_or_empty(&applied.gallery.path, &fp, scoring);
            self.gallery = g;
            if let Some(e) = err {
                self.gallery_refused(&e);
            }
        }
        self.decider
            .set_params(applied.decision_params(self.spec.threshold, self.spec.min_margin));
        self.config = applied;
        self.gate.set_hold(self.unlock_hold());
        self.reloads += 1;
        let mut ev = self.event(EventKind::ConfigReloaded);
        if !restart.is_empty() {
            let msg = format!(
                "changed but only applied after a restart: {}",
                restart.join(", ")
            );
            tracing::warn!("{msg}");
            ev.reason = Some(msg);
        }
        self.record(&ev);
    }

    fn camera_error<C: FrameSource>(
        &mut self,
        camera: &mut C,
        e: CameraError,
    ) -> Result<(), DaemonError> {
        if self.control.stop_requested() {
            // A read cut short by the stop request is not a camera fault.
            return Ok(());
        }
        self.camera_error_seen(&e);
        if e.kind == CameraErrorKind::BadFrame {
            return Ok(());
        }
        self.wait(self.backoff)?;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        if let Err(e) = camera.reopen() {
            tracing::debug!("camera re-open failed: {e}");
        }
        Ok(())
    }

    /// Counts and records a camera error (the re-open is up to whoever reads the camera).
    fn camera_error_seen(&mut self, e: &CameraError) {
        self.summary.camera_errors += 1;
        // A frame missing from the sequence: nothing ties the next face to the run so far.
        let now = self.clock.now();
        self.decider.observe(now, Observation::Lost, &mut |_| None);
        if e.kind == CameraErrorKind::BadFrame {
            tracing::warn!("skipping a bad frame: {e}");
            return;
        }
        if !self.camera_failing || self.status.camera_lost.is_none() {
            self.camera_failing = true;
            self.status.camera_lost = Some((now, e.to_string()));
            tracing::error!("camera: {e}; re-opening it");
            let mut ev = self.event(EventKind::CameraError);
            ev.reason = Some(e.to_string());
            self.record(&ev);
        } else {
            tracing::debug!("camera still failing: {e}");
        }
        self.guard.camera_failed(now, &mut self.notes);
        self.flush();
    }

    /// Waits `d` in short steps, keeping relock and stop requests prompt.
    fn wait(&mut self, d: Duration) -> Result<(), DaemonError> {
        let end = self.clock.now() + d;
        loop {
            let now = self.clock.now();
            if now >= end || self.control.stop_requested() {
                return Ok(());
            }
            self.clock.sleep((end - now).min(TICK));
            self.housekeeping()?;
        }
    }

    /// Decides on a recognised frame taken at `taken` (its face's embedding, if any, in
    /// `self.embedding`): matches it, and unlocks, records or waits. The unlock hold counts from
    /// now, the decision's time, not from the frame's.
    fn frame(
        &mut self,
        observed: Result<Observation<'static>, PipelineError>,
        facts: FrameFacts,
        taken: Duration,
    ) -> Result<(), DaemonError> {
        let started = Instant::now();
        self.summary.frames += 1;
        self.summary.liveness_runs += facts.liveness_runs;
        let now = self.clock.now();
        self.guard.frame_facts(now, facts.blind, &mut self.notes);
        self.flush();
        if self.guard.locked_out(now) {
            return Ok(());
        }
        let obs = match observed {
            Ok(o) => o,
            Err(e) => {
                // Not judged, but it breaks the run: nothing ties the next face to this one.
                tracing::warn!("frame skipped: {e}");
                Observation::Lost
            }
        };
        // A crowd (anti-tailgating) never agrees; it is a denial and counts towards a lockout.
        let obs = if self.guard.crowd(facts.large_faces, &mut self.notes) {
            Observation::Lost
        } else {
            obs
        };
        if self.notes.iter().any(|n| n.0 == EventKind::Deny) {
            self.summary.denials += 1;
            self.guard.denied(now, &mut self.notes);
        }
        self.flush();
        let obs = match obs {
            Observation::Face(mut seen) => {
                self.summary.faces += 1;
                if !self.embedding.0.is_empty() {
                    let t = Instant::now();
                    seen.nearest = self.gallery.index().best(&self.embedding).map(|m| Nearest {
                        person: m.person,
                        distance: m.distance,
                        margin: m.margin,
                    });
                    self.summary.stages.matching += t.elapsed();
                    tracing::debug!(nearest = ?seen.nearest, "face");
                }
                Observation::Face(seen)
            }
            o => o,
        };
        let normalize = self.spec.normalize;
        let (gallery, fused) = (&self.gallery, &mut self.fused);
        // The mean of a run's embeddings, matched the way each frame's embedding is.
        let mut fuse = |mean: &[f32]| {
            fused.0.clear();
            fused.0.extend_from_slice(mean);
            if normalize {
                fused.normalize();
            }
            gallery.index().best(fused).map(|m| Nearest {
                person: m.person,
                distance: m.distance,
                margin: m.margin,
            })
        };
        let decision = self
            .decider
            .observe(taken, obs.with(&self.embedding.0), &mut fuse);
        self.summary.busy += started.elapsed();
        let now = self.clock.now();
        match decision {
            Decision::Wait => {}
            Decision::Grant {
                person,
                distance,
                margin,
                frames,
                fused,
            } => {
                let Some(p) = self.gallery.gallery().people.get(person) else {
                    return Ok(());
                };
                let (id, name) = (p.id.clone(), p.name.clone());
                let credential = p.credential;
                if let Err(refusal) = self.guard.policy(p, self.clock.wall()) {
                    let mut ev = self.event(EventKind::Deny);
                    ev.identity = Some(id.clone());
                    ev.name = Some(name.clone());
                    ev.reason = Some(refusal.as_str().to_owned());
                    ev.distance = Some(fused.distance);
                    ev.frames = Some(frames);
                    tracing::info!(%id, %name, reason = refusal.as_str(), "access denied by policy");
                    self.summary.denials += 1;
                    self.record(&ev);
                    self.guard.denied(now, &mut self.notes);
                    self.flush();
                    return Ok(());
                }
                let mut ev = self.event(EventKind::Grant);
                ev.identity = Some(id.clone());
                ev.name = Some(name.clone());
                // The grant rests on the fused embedding: its distance and margin are recorded
                // (the worst single frame's go to the log line).
                ev.distance = Some(fused.distance);
                // Infinite with a single person enrolled: left out.
                ev.margin = fused.margin.is_finite().then_some(fused.margin);
                ev.frames = Some(frames);
                let at = self.at();
                self.sync_lockdown(at)?;
                let grant = Request::Face {
                    grant: Box::new(ev),
                    credential,
                };
                let outcome = self.open(grant, at)?;
                let said = match outcome {
                    Outcome::Opened | Outcome::CredentialSent | Outcome::CredentialFailed => {
                        self.summary.grants += 1;
                        tracing::info!(
                            %id, %name, distance, margin, fused = fused.distance, frames,
                            ?outcome, "access granted"
                        );
                        format!("granted {id}")
                    }
                    Outcome::Refused(r) => {
                        if r == Refusal::Lockdown {
                            self.summary.denials += 1;
                        }
                        format!("{id} not let in ({})", r.as_str())
                    }
                    Outcome::Nothing => return Ok(()),
                };
                self.status.last_decision = Some((now, said));
            }
            Decision::Deny {
                reason,
                nearest,
                frames,
            } => {
                let mut ev = self.event(EventKind::Deny);
                ev.identity = Some("unknown".to_owned());
                ev.reason = Some(reason.as_str().to_owned());
                ev.frames = Some(frames);
                if let Some(n) = nearest {
                    ev.nearest = self
                        .gallery
                        .gallery()
                        .people
                        .get(n.person)
                        .map(|p| p.id.clone());
                    ev.distance = Some(n.distance);
                    ev.margin = n.margin.is_finite().then_some(n.margin);
                }
                tracing::info!(?reason, frames, "access denied");
                self.status.last_decision = Some((now, format!("denied ({})", reason.as_str())));
                self.summary.denials += 1;
                self.record(&ev);
                self.guard.denied(now, &mut self.notes);
                self.flush();
            }
        }
        Ok(())
    }

    /// Reader mode: audits the panel link's changes (OSDP online, offline).
    fn link_events(&mut self) {
        let links = match self.gate.output() {
            Some(out) => out.link_events(),
            None => return,
        };
        for l in links {
            tracing::info!(online = l.online, "{}", l.detail);
            let mut ev = self.event(if l.online {
                EventKind::PanelOnline
            } else {
                EventKind::PanelOffline
            });
            ev.reason = Some(l.detail);
            self.record(&ev);
        }
    }
}

/// What recognition needs besides the pipeline; copied to the recognition thread, refreshed by
/// the control loop after a reload.
#[derive(Debug, Clone, Copy, PartialEq)]
struct LookParams {
    min_face: f32,
    quality: QualityParams,
    /// Anti-tailgating (`max_faces` > 0): every face is detected and the large ones counted.
    count_faces: bool,
    /// Tamper (`[tamper] blind_seconds` > 0): each frame is checked for a covered/blinded camera.
    watch_blind: bool,
    /// `[liveness]` is on: every embedded face that would be let in is scored.
    liveness: bool,
    /// What "would be let in" means: nearest person within `threshold`, `min_margin` ahead.
    threshold: f32,
    min_margin: f32,
}

impl<L: LockOutput, S: DoorSensors> Loop<'_, L, S> {
    /// What recognition needs now (after a reload: the config and the decision thresholds).
    fn look_params(&self) -> LookParams {
        let d = self.decider.params();
        LookParams {
            min_face: self.config.recognition.min_face,
            quality: self.config.recognition.quality,
            count_faces: self.guard.max_faces() > 0,
            watch_blind: self.guard.watches_frames(),
            liveness: self.config.liveness.level != Level::Off,
            threshold: d.threshold,
            min_margin: d.min_margin,
        }
    }
}

/// What recognition saw in a frame besides its face, for the guards on the control side.
#[derive(Debug, Clone, Copy, Default)]
struct FrameFacts {
    /// Faces at least `min_face` large (counted only for anti-tailgating).
    large_faces: usize,
    /// The frame is uniform or saturated (checked only when tamper watches frames).
    blind: Option<Blind>,
    /// Liveness runs for this frame (0 or 1).
    liveness_runs: u64,
}

/// A frame recognised on the recognition thread, for the control loop.
struct Recognised {
    observation: Result<Observation<'static>, PipelineError>,
    facts: FrameFacts,
    embedding: Embedding,
    taken: Duration,
    /// How old the frame was when recognition started on it.
    age: Duration,
    busy: Duration,
    stages: Stages,
}

/// What a recognition worker made of the frame it took.
struct Done {
    /// The frame's place in the order frames were taken ([`Mailbox::take_numbered`]).
    ticket: u64,
    /// `None`: the frame was too old to start on.
    recognised: Option<Recognised>,
}

/// What every recognition worker reads.
#[derive(Clone, Copy)]
struct Shared<'a> {
    clock: &'a dyn Clock,
    stop: &'a AtomicBool,
    frames: &'a Mailbox<Captured>,
    nir_frames: &'a Mailbox<Captured>,
    stale: &'a AtomicU64,
    /// A frame older than this when a worker is ready for it is not used.
    period: Duration,
    params: &'a Mutex<(LookParams, Arc<Index>)>,
}

/// A recognition worker: takes the newest frame, skips it if it is older than `period`,
/// recognises it and hands the result to the control loop, until `stop`. Every frame taken is
/// answered, so the control loop can put the answers back in order.
fn recognise(
    pipeline: &mut Pipeline,
    mut liveness: Option<&mut Liveness>,
    cues: &mut Cues,
    sh: &Shared<'_>,
    done: &mpsc::Sender<Done>,
) {
    let clock = sh.clock;
    while !sh.stop.load(Ordering::SeqCst) {
        let Some((ticket, frame)) = sh.frames.take_numbered(Duration::from_millis(100)) else {
            continue;
        };
        let age = clock.now().saturating_sub(frame.taken);
        if age > sh.period {
            sh.stale.fetch_add(1, Ordering::Relaxed);
            let skipped = Done {
                ticket,
                recognised: None,
            };
            if done.send(skipped).is_err() {
                return;
            }
            continue;
        }
        let (p, index) = {
            let shared = sh.params.lock().unwrap_or_else(|p| p.into_inner());
            (shared.0, Arc::clone(&shared.1))
        };
        let started = Instant::now();
        let mut stages = Stages::default();
        let mut embedding = Embedding(Vec::new());
        let mut facts = FrameFacts::default();
        // The newest NIR frame, kept until a newer one comes.
        if cues.nir_on() {
            if let Some(nir) = sh.nir_frames.take(Duration::ZERO) {
                cues.offer_nir(nir);
            }
        }
        let observation = look(
            pipeline,
            liveness.as_deref_mut(),
            cues,
            frame.taken,
            &index,
            &frame.image,
            &p,
            &mut stages,
            &mut embedding,
            &mut facts,
        );
        // A simulated slower machine takes longer (nothing on a real clock).
        clock.worked(started.elapsed());
        let r = Recognised {
            observation,
            facts,
            embedding,
            taken: frame.taken,
            age,
            busy: started.elapsed(),
            stages,
        };
        let answer = Done {
            ticket,
            recognised: Some(r),
        };
        if done.send(answer).is_err() {
            return;
        }
    }
}

/// What the frame shows: its largest face, how large, its liveness score; the face's embedding
/// is left in `embedding` (emptied when there is none), the frame's facts for the guards in
/// `facts`. Who is nearest is left to the caller, which decides; `index` only tells whether the
/// face would be let in, the one case that needs its liveness score.
#[allow(clippy::too_many_arguments)]
fn look(
    pipeline: &mut Pipeline,
    liveness: Option<&mut Liveness>,
    cues: &mut Cues,
    taken: Duration,
    index: &Index,
    frame: &RgbImage,
    p: &LookParams,
    stages: &mut Stages,
    embedding: &mut Embedding,
    facts: &mut FrameFacts,
) -> Result<Observation<'static>, PipelineError> {
    embedding.0.clear();
    if p.watch_blind {
        facts.blind = blind(frame);
    }
    let t0 = Instant::now();
    // Anti-tailgating needs every face counted; otherwise the largest is enough.
    let detection = if p.count_faces {
        let (largest, large) = pipeline.detect_counting(frame, p.min_face)?;
        facts.large_faces = large;
        largest
    } else {
        pipeline.detect_largest(frame)?
    };
    let t1 = Instant::now();
    stages.detect += t1 - t0;
    let Some(det) = detection.as_ref() else {
        return Ok(Observation::NoFace);
    };
    let size = det.bbox.size();
    let mut seen = Seen {
        bbox: det.bbox,
        quality: Ok(()),
        nearest: None,
        embedding: &[],
        liveness: None,
        cues: None,
    };
    if size < p.min_face {
        return Ok(Observation::Face(seen));
    }
    let Some(chip) = pipeline.align(frame, det) else {
        return Ok(Observation::Lost);
    };
    // A poor face is not embedded: it cannot agree, and it saves the embedding's time.
    let template = &pipeline.embedder_spec().template;
    let measures = quality::measure(&chip, template, &det.landmarks);
    seen.quality = p.quality.judge(&measures);
    let t2 = Instant::now();
    stages.align += t2 - t1;
    if seen.quality.is_err() {
        tracing::debug!(size, ?measures, "poor face");
        return Ok(Observation::Face(seen));
    }
    *embedding = pipeline.embed_chip(&chip)?;
    let t3 = Instant::now();
    stages.embed += t3 - t2;
    // Judged in the acceptance rule (after the match); a network failure or missing networks
    // score NaN, which never agrees.
    // A stranger is refused as unknown before liveness counts: the networks run only for a face
    // that would be let in (NaN comparisons fail: no score, refused as a spoof).
    let would_pass = || {
        index
            .best(embedding)
            .is_some_and(|m| m.distance <= p.threshold && m.margin >= p.min_margin)
    };
    if p.liveness && would_pass() {
        facts.liveness_runs += 1;
        seen.liveness = Some(match liveness {
            Some(l) => l.score(frame, &det.bbox).unwrap_or(f32::NAN),
            None => f32::NAN,
        });
        stages.liveness += t3.elapsed();
    }
    if cues.any() {
        let t4 = Instant::now();
        let verdict = cues.check(pipeline, frame, taken, det);
        if let Err(cue) = verdict {
            tracing::debug!(cue = cue.as_str(), "presentation cue");
        }
        seen.cues = Some(verdict);
        stages.liveness += t4.elapsed();
    }
    Ok(Observation::Face(seen))
}
