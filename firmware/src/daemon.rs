//! The door daemon's main loop: frame -> largest face -> embedding -> 1:N match -> decision ->
//! relay and audit. It takes its devices, clock, control flags, service manager and audit sink as
//! arguments, so `facegated`, the simulator and the tests all run this same code.

use crate::audit::{AuditSink, Event, EventKind};
use crate::config::{AuditFailure, Config, ConfigError};
use crate::decision::{Decider, Decision, Nearest, Observation, Seen};
use crate::door::Door;
use crate::gallery::{GalleryError, Reloader, Scoring};
use crate::hal::{
    CameraError, CameraErrorKind, Clock, Control, DoorInputs, DoorSensors, FrameSource, LockError,
    LockOutput, Supervisor,
};
use crate::models::{ModelError, ModelSet};
use crate::vision::detect::DetectorParams;
use crate::vision::quality;
use crate::{Embedding, Pipeline, PipelineError};
use image::RgbImage;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Faces down to this fraction of `min_face` are detected, so a face just too small is recorded
/// as such rather than not seen at all.
const DETECT_BELOW_MIN_FACE: f32 = 0.75;
/// Longest wait between two attempts to re-open a failed camera.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Longest single sleep while waiting, so relocking and stop requests stay prompt.
const TICK: Duration = Duration::from_millis(50);

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
}

/// Loads the models named by the config and builds the face pipeline for door frames.
pub fn load_pipeline(config: &Config) -> Result<Pipeline, DaemonError> {
    let models = match &config.recognition.models {
        Some(path) => ModelSet::from_manifest(path)?,
        None => ModelSet::builtin()?,
    };
    let mut params = DetectorParams::for_photos(&models.manifest.detector);
    params.min_face = config.recognition.min_face * DETECT_BELOW_MIN_FACE;
    Ok(Pipeline::new(
        &models,
        config.recognition.embedder.as_deref(),
        Some(params),
    )?)
}

struct Loop<'a, C, L: LockOutput, S> {
    config: Config,
    config_path: Option<PathBuf>,
    pipeline: &'a mut Pipeline,
    camera: C,
    door: Door<L>,
    sensors: S,
    inputs: DoorInputs,
    clock: &'a dyn Clock,
    control: &'a Control,
    supervisor: &'a mut dyn Supervisor,
    audit: &'a mut dyn AuditSink,
    gallery: Reloader,
    decider: Decider,
    /// The last frame's embedding, and the mean of a run's (buffers reused frame to frame).
    embedding: Embedding,
    fused: Embedding,
    summary: Summary,
    next_poll: Duration,
    last_watchdog: Option<Duration>,
    camera_failing: bool,
    backoff: Duration,
}

/// Runs the door until `control` asks it to stop. The door is driven to locked first, and again
/// on the way out, whichever way out it is.
#[allow(clippy::too_many_arguments)]
pub fn run<C: FrameSource, L: LockOutput, S: DoorSensors>(
    config: Config,
    config_path: Option<&Path>,
    pipeline: &mut Pipeline,
    devices: Devices<C, L, S>,
    clock: &dyn Clock,
    control: &Control,
    supervisor: &mut dyn Supervisor,
    audit: &mut dyn AuditSink,
) -> Result<Summary, DaemonError> {
    let door = Door::new(devices.lock)?;
    let fingerprint = pipeline.embedder_spec().fingerprint.clone();
    let scoring = Scoring::of(pipeline.embedder_spec());
    let (gallery, gallery_error) =
        Reloader::new_or_empty(&config.gallery.path, &fingerprint, scoring);
    let params = config.decision_params(
        pipeline.embedder_spec().threshold,
        pipeline.embedder_spec().min_margin,
    );
    let mut lp = Loop {
        config,
        config_path: config_path.map(Path::to_owned),
        pipeline,
        camera: devices.camera,
        door,
        sensors: devices.sensors,
        inputs: DoorInputs::default(),
        clock,
        control,
        supervisor,
        audit,
        gallery,
        decider: Decider::new(params),
        embedding: Embedding(Vec::new()),
        fused: Embedding(Vec::new()),
        summary: Summary::default(),
        next_poll: Duration::ZERO,
        last_watchdog: None,
        camera_failing: false,
        backoff: Duration::from_millis(500),
    };
    lp.previous_run();
    let mut start = lp.event(EventKind::Start);
    let mut reason = format!(
        "model {}, {} people enrolled, threshold {:.3}",
        lp.pipeline.embedder_name(),
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
    if let Some(e) = gallery_error {
        lp.gallery_refused(&e);
    }
    lp.next_poll = lp.clock.now() + lp.poll_interval();
    lp.supervisor.ready();
    lp.supervisor.status("watching the door");
    let result = lp.main_loop();
    // The door locks on every way out; a failure here is logged by Door's Drop as well.
    let locked = lp.door.lock();
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

impl<C: FrameSource, L: LockOutput, S: DoorSensors> Loop<'_, C, L, S> {
    fn event(&self, kind: EventKind) -> Event {
        Event::new(kind, self.clock.wall(), self.clock.now())
    }

    /// Records `event`; `false` if the trail could not be written. The failure goes to the
    /// journal, and one attempt is made to leave an `audit_failed` line (it may work when only
    /// that event failed, e.g. a transient I/O error).
    fn record(&mut self, event: &Event) -> bool {
        let Err(e) = self.audit.record(event) else {
            return true;
        };
        tracing::error!("audit event {:?} not recorded: {e}", event.event);
        if self.config.audit.on_failure == AuditFailure::GrantAndAlarm {
            self.supervisor
                .status(&format!("ALARM: the audit log cannot be written: {e}"));
        }
        let mut failed = self.event(EventKind::AuditFailed);
        failed.reason = Some(format!("{:?} event not recorded: {e}", event.event));
        if let Err(e) = self.audit.record(&failed) {
            tracing::debug!("audit_failed not recorded either: {e}");
        }
        false
    }

    /// At start: what the log says about the previous run (a crash, a repaired tail).
    fn previous_run(&mut self) {
        let Some(prev) = self.audit.previous_run() else {
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

    fn main_loop(&mut self) -> Result<(), DaemonError> {
        let mut frame = RgbImage::new(0, 0);
        while !self.control.stop_requested() {
            self.housekeeping()?;
            match self.camera.next_frame(&mut frame) {
                Ok(()) => {
                    if self.camera_failing {
                        self.camera_failing = false;
                        self.backoff = Duration::from_millis(500);
                        let ev = self.event(EventKind::CameraRecovered);
                        self.record(&ev);
                        tracing::info!("camera recovered");
                    }
                    self.frame(&frame)?;
                }
                Err(e) => self.camera_error(e)?,
            }
        }
        Ok(())
    }

    /// Everything that is due whether or not frames come: relock, inputs, reloads, watchdog.
    fn housekeeping(&mut self) -> Result<(), DaemonError> {
        let now = self.clock.now();
        if self.door.tick(now).inspect_err(|e| self.lock_failed(e))? {
            let ev = self.event(EventKind::Relock);
            self.record(&ev);
            tracing::info!("door locked again");
        }
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
        if self
            .last_watchdog
            .is_none_or(|t| now.saturating_sub(t) >= Duration::from_secs(1))
        {
            self.supervisor.watchdog();
            self.last_watchdog = Some(now);
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
            let hold = self.unlock_hold();
            self.door
                .unlock(now, hold)
                .inspect_err(|e| self.lock_failed(e))?;
            let mut ev = self.event(EventKind::RemoteUnlock);
            ev.identity = Some(by);
            self.record(&ev);
        }
        Ok(())
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
            let hold = self.unlock_hold();
            self.door
                .unlock(now, hold)
                .inspect_err(|e| self.lock_failed(e))?;
            let ev = self.event(EventKind::Exit);
            self.record(&ev);
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
        let mut restart = Vec::new();
        if new.camera != old.camera {
            restart.push("[camera]");
        }
        if new.recognition.models != old.recognition.models
            || new.recognition.embedder != old.recognition.embedder
        {
            restart.push("recognition.models/embedder");
        }
        if new.recognition.min_face != old.recognition.min_face {
            restart.push("recognition.min_face (detector)");
        }
        if new.lock.gpio != old.lock.gpio || new.lock.active_low != old.lock.active_low {
            restart.push("lock.gpio/active_low");
        }
        if new.audit != old.audit {
            restart.push("[audit]");
        }
        if new.mqtt != old.mqtt {
            restart.push("[mqtt]");
        }
        let mut applied = new.clone();
        // What needs a restart keeps its running value until then.
        applied.camera = old.camera.clone();
        applied.recognition.models = old.recognition.models.clone();
        applied.recognition.embedder = old.recognition.embedder.clone();
        applied.recognition.min_face = old.recognition.min_face;
        applied.lock.gpio = old.lock.gpio;
        applied.lock.active_low = old.lock.active_low;
        applied.audit = old.audit.clone();
        applied.mqtt = old.mqtt.clone();
        if applied.gallery.path != old.gallery.path {
            let fp = self.pipeline.embedder_spec().fingerprint.clone();
            let scoring = Scoring::of(self.pipeline.embedder_spec());
            let (g, err) = Reloader::new_or_empty(&applied.gallery.path, &fp, scoring);
            self.gallery = g;
            if let Some(e) = err {
                self.gallery_refused(&e);
            }
        }
        self.decider.set_params(applied.decision_params(
            self.pipeline.embedder_spec().threshold,
            self.pipeline.embedder_spec().min_margin,
        ));
        self.config = applied;
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

    fn camera_error(&mut self, e: CameraError) -> Result<(), DaemonError> {
        if self.control.stop_requested() {
            // A read cut short by the stop request is not a camera fault.
            return Ok(());
        }
        self.summary.camera_errors += 1;
        // A frame missing from the sequence: nothing ties the next face to the run so far.
        let now = self.clock.now();
        self.decider.observe(now, Observation::Lost, &mut |_| None);
        if e.kind == CameraErrorKind::BadFrame {
            tracing::warn!("skipping a bad frame: {e}");
            return Ok(());
        }
        if !self.camera_failing {
            self.camera_failing = true;
            tracing::error!("camera: {e}; re-opening it");
            let mut ev = self.event(EventKind::CameraError);
            ev.reason = Some(e.to_string());
            self.record(&ev);
        } else {
            tracing::debug!("camera still failing: {e}");
        }
        self.wait(self.backoff)?;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        if let Err(e) = self.camera.reopen() {
            tracing::debug!("camera re-open failed: {e}");
        }
        Ok(())
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

    fn frame(&mut self, frame: &RgbImage) -> Result<(), DaemonError> {
        let started = Instant::now();
        let now = self.clock.now();
        self.summary.frames += 1;
        let obs = match self.observe(frame) {
            Ok(o) => o,
            Err(e) => {
                // Not judged, but it breaks the run: nothing ties the next face to this one.
                tracing::warn!("frame skipped: {e}");
                Observation::Lost
            }
        };
        if matches!(obs, Observation::Face(_)) {
            self.summary.faces += 1;
        }
        let normalize = self.pipeline.embedder_spec().normalize;
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
            .observe(now, obs.with(&self.embedding.0), &mut fuse);
        self.summary.busy += started.elapsed();
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
                if self.control.lockdown() {
                    // Lockdown (a signed site command): recognised, recorded, not let in.
                    let mut ev = self.event(EventKind::Deny);
                    ev.identity = Some(id);
                    ev.reason = Some("lockdown".into());
                    self.summary.denials += 1;
                    self.record(&ev);
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
                let hold = self.unlock_hold();
                match self.config.audit.on_failure {
                    AuditFailure::Deny => {
                        // No grant that cannot be recorded: the record first, then the door.
                        if !self.record(&ev) {
                            tracing::error!(
                                %id, %name,
                                "access NOT granted: the audit log cannot be written (audit.on_failure = \"deny\")"
                            );
                            return Ok(());
                        }
                        self.summary.grants += 1;
                        tracing::info!(
                            %id, %name, distance, margin, fused = fused.distance, frames,
                            "access granted"
                        );
                        self.door
                            .unlock(now, hold)
                            .inspect_err(|e| self.lock_failed(e))?;
                    }
                    AuditFailure::GrantAndAlarm => {
                        // The person is waiting: the door first, then the record.
                        let unlocked = self.door.unlock(now, hold);
                        tracing::info!(
                            %id, %name, distance, margin, fused = fused.distance, frames,
                            "access granted"
                        );
                        self.summary.grants += 1;
                        if let Err(e) = &unlocked {
                            ev.reason =
                                Some(format!("recognised, but the door did not unlock: {e}"));
                        }
                        self.record(&ev);
                        unlocked.inspect_err(|e| self.lock_failed(e))?;
                    }
                }
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
                self.summary.denials += 1;
                self.record(&ev);
            }
        }
        Ok(())
    }

    /// What the frame shows: its largest face, how large, and who is nearest; its embedding is
    /// left in `self.embedding` (emptied when there is none).
    fn observe(&mut self, frame: &RgbImage) -> Result<Observation<'static>, PipelineError> {
        self.embedding.0.clear();
        let t0 = Instant::now();
        let detection = self.pipeline.detect_largest(frame)?;
        let t1 = Instant::now();
        self.summary.stages.detect += t1 - t0;
        let Some(det) = detection.as_ref() else {
            return Ok(Observation::NoFace);
        };
        let size = det.bbox.size();
        let mut seen = Seen {
            bbox: det.bbox,
            quality: Ok(()),
            nearest: None,
            embedding: &[],
        };
        if size < self.config.recognition.min_face {
            return Ok(Observation::Face(seen));
        }
        let Some(chip) = self.pipeline.align(frame, det) else {
            return Ok(Observation::Lost);
        };
        // A poor face is not embedded: it cannot agree, and it saves the embedding's time.
        let template = &self.pipeline.embedder_spec().template;
        let measures = quality::measure(&chip, template, &det.landmarks);
        seen.quality = self.config.recognition.quality.judge(&measures);
        let t2 = Instant::now();
        if seen.quality.is_err() {
            self.summary.stages.align += t2 - t1;
            tracing::debug!(size, ?measures, "poor face");
            return Ok(Observation::Face(seen));
        }
        let embedding = self.pipeline.embed_chip(&chip)?;
        let t3 = Instant::now();
        let nearest = self.gallery.index().best(&embedding).map(|m| Nearest {
            person: m.person,
            distance: m.distance,
            margin: m.margin,
        });
        let t4 = Instant::now();
        let st = &mut self.summary.stages;
        st.align += t2 - t1;
        st.embed += t3 - t2;
        st.matching += t4 - t3;
        tracing::debug!(size, ?nearest, "face");
        seen.nearest = nearest;
        self.embedding = embedding;
        Ok(Observation::Face(seen))
    }
}
