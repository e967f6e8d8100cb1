//! Runs a scenario: enrols its people, builds the scripted camera, runs the real daemon on the
//! simulated devices, then checks what the door did against the scenario's expectations.

use crate::clock::SimClock;
use crate::devices::{SimCamera, SimRelay, SimSensors, Step};
use crate::scenario::{CardSpec, EnrolSpec, ScaleSpec, Scenario, ScenarioError, Show, StepSpec};
use facegate::access::enrolment::{enrol_photo, EnrolError};
use facegate::config::{Config, ConfigError};
use facegate::control::Control;
use facegate::daemon::{self, DaemonError, Devices, Summary};
use facegate::hal::{Clock, LockState, NoSupervisor};
use facegate::panel::reader::OutputMode;
use facegate::people::crops::EncodedCrop;
use facegate::people::gallery::{self, GalleryError, Locked, Person};
use facegate::records::audit::{AuditError, AuditLog, AuditSink, Event, EventKind};
use facegate::{decode_file, BBox, DecodeError, Pipeline};
use image::{Rgb, RgbImage};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Errors that keep a scenario from running (as opposed to failed expectations).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The scenario file is invalid.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// The daemon config (defaults + the scenario's overrides) is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A photo to enrol was refused.
    #[error("enrolling: {0}")]
    Enrol(#[from] EnrolError),
    /// A photo to show could not be read.
    #[error("{}: {source}", path.display())]
    Photo {
        /// The photo.
        path: PathBuf,
        /// Why.
        source: DecodeError,
    },
    /// The gallery could not be written.
    #[error(transparent)]
    Gallery(#[from] GalleryError),
    /// The audit log could not be opened.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// The OSDP reader could not start.
    #[error("OSDP reader: {0}")]
    Osdp(#[from] facegate::panel::osdp_pd::OsdpError),
    /// The daemon stopped with an error.
    #[error("daemon: {0}")]
    Daemon(#[from] DaemonError),
    /// A PIN of `[[enroll]]` cannot be used.
    #[error("pin: {0}")]
    Pin(String),
    /// The site link's settings (`[mqtt]`) cannot be used.
    #[error("[mqtt]: {0}")]
    Site(String),
    /// The operator key file cannot be used.
    #[error("[control] operator_key: {0}")]
    OperatorKey(#[from] facegate::door::control_api::operator::KeyError),
    /// A file of the run could not be handled.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Let simulated time pass at the wall clock's speed (for real signals).
    pub realtime: bool,
    /// Keep the gallery, config and audit log here (default: a temporary directory).
    pub workdir: Option<PathBuf>,
}

/// What happened in a run.
#[derive(Debug, Clone)]
pub struct Report {
    /// Every audit event, in order.
    pub events: Vec<Event>,
    /// Every relay change with its simulated time.
    pub relay: Vec<(Duration, LockState)>,
    /// When each scenario step started.
    pub marks: Vec<(usize, Duration)>,
    /// The daemon's own count.
    pub summary: Summary,
    /// Simulated time at the end.
    pub end: Duration,
    /// Expectations met, one line each.
    pub passed: Vec<String>,
    /// Expectations failed (and script actions that failed), one line each.
    pub failures: Vec<String>,
    /// The model the daemon ran.
    pub model: String,
    /// Every change of the alarm output with its simulated time.
    pub alarm: Vec<(Duration, bool)>,
    /// Reader mode (`[output] mode = "wiegand"`): every edge of the D0/D1 lines.
    pub wiegand: Vec<facegate::panel::wiegand::Edge>,
    /// Reader mode `osdp`: the wall-clock time of each card read handed to the PD thread.
    pub osdp_sent: Vec<std::time::SystemTime>,
    /// Reader mode `osdp`: the panel's LED and buzzer commands that reached the status output.
    pub osdp_led: u64,
    /// See `osdp_led`.
    pub osdp_buzzer: u64,
    /// Real-time mode with `recognition_ms`: frames whose real work here took longer than the
    /// modelled machine's cost (this host could not model that machine for them).
    pub over_cost: u64,
}

impl Report {
    /// The events and relay edges as JSON lines, in time order.
    pub fn json_lines(&self) -> Vec<String> {
        let mut lines: Vec<(f64, String)> = self
            .events
            .iter()
            .map(|e| (e.t, serde_json::to_string(e).unwrap_or_default()))
            .collect();
        for (t, s) in &self.relay {
            let t = (t.as_secs_f64() * 1000.0).round() / 1000.0;
            let state = match s {
                LockState::Locked => "locked",
                LockState::Unlocked => "unlocked",
            };
            lines.push((
                t,
                serde_json::json!({"t": t, "event": "relay", "state": state}).to_string(),
            ));
        }
        // Stable: at equal times audit lines come first (the decision precedes its edge).
        lines.sort_by(|a, b| a.0.total_cmp(&b.0));
        lines.into_iter().map(|l| l.1).collect()
    }

    /// For each unlock edge of the relay, how long after the first frame of its step it came
    /// (the person's first appearance to the door unlocked).
    pub fn unlock_latencies(&self) -> Vec<Duration> {
        self.unlocks()
            .into_iter()
            .filter_map(|t| {
                let start = self.marks.iter().rev().find(|m| m.1 <= t)?.1;
                Some(t - start)
            })
            .collect()
    }

    /// Unlock edges of the relay.
    pub fn unlocks(&self) -> Vec<Duration> {
        self.relay
            .iter()
            .filter(|e| e.1 == LockState::Unlocked)
            .map(|e| e.0)
            .collect()
    }

    /// The relay's state at `t` (`None` before its first edge).
    pub fn relay_state_at(&self, t: Duration) -> Option<LockState> {
        self.relay
            .iter()
            .take_while(|e| e.0 <= t)
            .last()
            .map(|e| e.1)
    }

    /// Grant events.
    pub fn grants(&self) -> Vec<&Event> {
        self.events
            .iter()
            .filter(|e| e.event == EventKind::Grant)
            .collect()
    }

    /// Events of `kind`.
    pub fn of(&self, kind: EventKind) -> Vec<&Event> {
        self.events.iter().filter(|e| e.event == kind).collect()
    }
}

/// Writes to the audit file and keeps a copy in memory.
struct Tee {
    log: AuditLog,
    events: Vec<Event>,
}

impl AuditSink for Tee {
    fn record(&mut self, event: &Event) -> Result<(), AuditError> {
        self.events.push(event.clone());
        self.log.record(event)
    }

    fn last_seq(&self) -> Option<u64> {
        self.log.last_seq()
    }
}

pub use facegate::bench::{compose, DEFAULT_FACE_PX};

/// The person `spec` enrols, as `facegate enroll` makes them, and their face crops.
fn person(
    pipeline: &mut Pipeline,
    s: &Scenario,
    spec: &EnrolSpec,
    g: &gallery::Gallery,
) -> Result<(Person, Vec<EncodedCrop>), SimError> {
    let (mut enrolments, mut crops) = (Vec::new(), Vec::new());
    for photo in &spec.photos {
        let new = enrol_photo(pipeline, &s.resolve(photo))?;
        for w in &new.warnings {
            tracing::warn!("enrolling {}: {w}", photo.display());
        }
        enrolments.push(new.enrolment);
        crops.push(new.crop);
    }
    let p = Person {
        policy: spec.policy.clone(),
        id: spec.id.clone().unwrap_or_else(|| g.new_id(&spec.name)),
        name: spec.name.clone(),
        enrolments,
        credential: spec.credential,
        pin_hash: spec.pin.as_deref().map(hash_pin).transpose()?,
        duress_hash: spec.duress_pin.as_deref().map(hash_pin).transpose()?,
    };
    Ok((p, crops))
}

/// A scenario's PIN as the gallery stores it.
fn hash_pin(pin: &str) -> Result<String, SimError> {
    facegate::people::pin::hash(pin).map_err(|e| SimError::Pin(e.to_string()))
}

/// A script action whose error is recorded as a failure of step `i` (the daemon runs on).
fn act<E: std::fmt::Display>(
    i: usize,
    failures: &Arc<Mutex<Vec<String>>>,
    mut f: impl FnMut() -> Result<(), E> + Send + 'static,
) -> Step {
    let failures = failures.clone();
    Step::Act(Box::new(move |_| {
        if let Err(e) = f() {
            failures
                .lock()
                .unwrap()
                .push(format!("step {}: {e}", i + 1));
        }
    }))
}

/// Changes the gallery as `facegate` does: under its lock, load, edit, save atomically.
fn edit_gallery(
    path: &Path,
    fingerprint: &str,
    crops: &[EncodedCrop],
    edit: impl FnOnce(&mut gallery::Gallery) -> Result<(), GalleryError>,
) -> Result<(), GalleryError> {
    let lock = Locked::acquire(path)?;
    let mut g = lock.load(fingerprint)?;
    edit(&mut g)?;
    lock.save_with_crops(&g, crops)
}

fn describe(st: &StepSpec) -> String {
    match &st.show {
        Some(Show::One(p)) => format!("show {}", p.display()),
        Some(Show::Many(ps)) => format!(
            "show {}",
            ps.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" + ")
        ),
        None => "action".to_owned(),
    }
}

/// Runs `s`. `control` is the daemon's stop/reload flags (a real signal handler may hold them).
pub fn run_scenario(s: &Scenario, opts: &RunOptions, control: Control) -> Result<Report, SimError> {
    let tmp;
    let workdir = match &opts.workdir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|source| SimError::Io {
                path: d.clone(),
                source,
            })?;
            d.clone()
        }
        None => {
            tmp = tempfile::tempdir().map_err(|source| SimError::Io {
                path: std::env::temp_dir(),
                source,
            })?;
            tmp.path().to_owned()
        }
    };
    // The config: the scenario's overrides on the defaults, with files in the work directory.
    let with_paths = |mut table: toml::Table| {
        for (section, file) in [("gallery", "gallery.toml"), ("audit", "audit.jsonl")] {
            let entry = table
                .entry(section)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(t) = entry {
                t.entry("path").or_insert_with(|| {
                    toml::Value::String(workdir.join(file).display().to_string())
                });
            }
        }
        if opts.realtime {
            // The daemon's frame period (to drop stale frames) is the simulated camera's.
            if let toml::Value::Table(cam) = table
                .entry("camera")
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            {
                cam.entry("fps")
                    .or_insert(toml::Value::Integer(s.fps.round().max(1.0) as i64));
            }
        }
        toml::to_string(&table).unwrap_or_default()
    };
    let config_path = workdir.join("config.toml");
    let config_text = with_paths(s.config.clone());
    let config = Config::parse(&config_text, &config_path)?;
    gallery::write_atomic(&config_path, config_text.as_bytes())?;
    let mut pipeline = daemon::load_pipeline(&config)?;
    let fingerprint = pipeline.embedder_spec().fingerprint.clone();
    let gallery_path = config.gallery.path.clone();

    // The gallery before the door starts.
    {
        let lock = Locked::acquire(&gallery_path)?;
        let mut g = match &s.gallery {
            Some(src) => {
                let src = s.resolve(src);
                let text = std::fs::read_to_string(&src).map_err(|source| SimError::Io {
                    path: src.clone(),
                    source,
                })?;
                gallery::Gallery::parse(&text, &src, &fingerprint)?
            }
            None => gallery::Gallery::new(&fingerprint),
        };
        let mut crops = Vec::new();
        for spec in &s.enroll {
            let (p, c) = person(&mut pipeline, s, spec, &g)?;
            g.people.push(p);
            crops.extend(c);
        }
        lock.save_with_crops(&g, &crops)?;
    }

    let mut clock = SimClock::new(opts.realtime).with_machine(s.machine());
    if let Some(t) = s
        .start_time
        .as_deref()
        .and_then(|t| humantime::parse_rfc3339(t).ok())
    {
        clock = clock.with_wall(t);
    }
    let relay = SimRelay::new(clock.clone());
    let sensors = SimSensors::new(clock.clone());
    let credentials = crate::devices::SimCredentials::default();
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let (w, h) = (config.camera.width, config.camera.height);
    let mut frames: HashMap<String, (Arc<RgbImage>, Option<Arc<RgbImage>>)> = HashMap::new();
    let nir_on = config.liveness.nir.is_some();
    let nir_link = crate::devices::NirLink::default();
    let mut steps = Vec::new();
    for (i, st) in s.step.iter().enumerate() {
        steps.push(Step::Mark(i));
        if let Some(show) = &st.show {
            let paths: Vec<PathBuf> = match show {
                Show::One(p) => vec![p.clone()],
                Show::Many(ps) => ps.clone(),
            };
            let scales: Vec<f32> = match &st.face_px {
                None => vec![DEFAULT_FACE_PX; paths.len()],
                Some(ScaleSpec::All(k)) => vec![*k; paths.len()],
                Some(ScaleSpec::Each(v)) => (0..paths.len())
                    .map(|j| v.get(j).copied().unwrap_or(DEFAULT_FACE_PX))
                    .collect(),
            };
            let key = format!("{paths:?}{scales:?}{:?}", st.attack);
            let (frame, nir) = match frames.get(&key) {
                Some(f) => f.clone(),
                None => {
                    let mut imgs = Vec::new();
                    // The NIR views, the same size as the colour ones (so framed alike).
                    let mut nirs = Vec::new();
                    for p in &paths {
                        if p.as_os_str() == "blank" {
                            let blank = RgbImage::from_pixel(w, h, Rgb([118, 118, 118]));
                            if nir_on {
                                nirs.push(crate::attack::infrared(&blank));
                            }
                            imgs.push((blank, None));
                            continue;
                        }
                        let p = s.resolve(p);
                        let img = decode_file(&p).map_err(|source| SimError::Photo {
                            path: p.clone(),
                            source,
                        })?;
                        if nir_on {
                            nirs.push(crate::attack::present_nir(&img, st.attack));
                        }
                        let img = match st.attack {
                            Some(a) => crate::attack::present(&img, a),
                            None => img,
                        };
                        // Where the face is, to frame it as a door camera would.
                        let face = pipeline
                            .detect(&img)
                            .map_err(|e| SimError::Daemon(e.into()))?
                            .first()
                            .map(|d| d.bbox);
                        imgs.push((img, face));
                    }
                    let parts: Vec<(&RgbImage, Option<BBox>, f32)> = imgs
                        .iter()
                        .zip(scales.iter().copied())
                        .map(|((img, face), px)| (img, *face, px))
                        .collect();
                    let nir = nir_on.then(|| {
                        let parts: Vec<(&RgbImage, Option<BBox>, f32)> = nirs
                            .iter()
                            .zip(&parts)
                            .map(|(n, (_, face, px))| (n, *face, *px))
                            .collect();
                        Arc::new(compose(&parts, w, h))
                    });
                    let f = (Arc::new(compose(&parts, w, h)), nir);
                    frames.insert(key, f.clone());
                    f
                }
            };
            let (count, interval) = st.frames_and_interval(s.fps).unwrap_or_default();
            steps.push(Step::Frames {
                image: frame,
                count,
                interval,
                nir,
            });
        } else if let Some(d) = st.stall {
            steps.push(Step::Stall(Duration::from_secs_f64(d)));
        } else if let Some(d) = st.freeze {
            steps.push(Step::Freeze {
                seconds: Duration::from_secs_f64(d),
                interval: Duration::from_secs_f64(1.0 / s.fps),
            });
        } else if let Some(d) = st.unplug {
            steps.push(Step::Unplug(Duration::from_secs_f64(d)));
        } else if let Some(d) = st.unplug_nir {
            let link = nir_link.clone();
            let d = Duration::from_secs_f64(d);
            steps.push(Step::Act(Box::new(move |now| link.unplug(now + d))));
        } else if let Some(n) = st.bad_frames {
            steps.push(Step::BadFrames(n));
        } else if let Some(sig) = &st.signal {
            let c = control.clone();
            let term = sig == "term";
            steps.push(Step::Act(Box::new(move |_| {
                if term {
                    c.request_stop()
                } else {
                    c.request_reload()
                }
            })));
        } else if st.exit_button == Some(true) {
            let sensors = sensors.clone();
            steps.push(Step::Act(Box::new(move |_| sensors.press_exit())));
        } else if let Some(card) = &st.present_card {
            let card = match card {
                CardSpec::Of(id) => s
                    .enroll
                    .iter()
                    .chain(s.step.iter().filter_map(|st| st.enroll.as_ref()))
                    .find(|e| e.id.as_deref() == Some(id))
                    .and_then(|e| e.credential)
                    .ok_or_else(|| {
                        SimError::Scenario(ScenarioError::Invalid {
                            path: PathBuf::from("scenario"),
                            message: format!(
                                "step {}: present_card = {id:?}: no one enrolled with that id has a credential",
                                i + 1
                            ),
                        })
                    })?,
                CardSpec::Card(c) => *c,
            };
            let input = credentials.clone();
            steps.push(Step::Act(Box::new(move |_| input.card(card))));
        } else if let Some(keys) = &st.type_pin {
            let (input, keys) = (credentials.clone(), keys.clone());
            steps.push(Step::Act(Box::new(move |_| input.keys(&keys))));
        } else if let Some(on) = st.lockdown {
            let c = control.clone();
            steps.push(Step::Act(Box::new(move |_| c.set_lockdown(on))));
        } else if let Some(by) = &st.remote_unlock {
            let (c, by) = (control.clone(), by.clone());
            steps.push(Step::Act(Box::new(move |_| {
                c.request_remote_unlock(by.clone())
            })));
        } else if let Some(d) = &st.door {
            let (sensors, open) = (sensors.clone(), d == "open");
            steps.push(Step::Act(Box::new(move |_| sensors.set_door(open))));
        } else if let Some(src) = &st.gallery_file {
            let src = s.resolve(src);
            let bytes = std::fs::read(&src).map_err(|source| SimError::Io {
                path: src.clone(),
                source,
            })?;
            let path = gallery_path.clone();
            steps.push(act(i, &failures, move || {
                gallery::write_atomic(&path, &bytes)
            }));
        } else if let Some(text) = &st.gallery_text {
            let (path, text) = (gallery_path.clone(), text.clone());
            // In place, not atomically: what a careless editor or a bad copy does.
            steps.push(act(i, &failures, move || std::fs::write(&path, &text)));
        } else if let Some(text) = &st.config_text {
            // Text that is not even TOML is written as is: the daemon must refuse it.
            let text = match text.parse::<toml::Table>() {
                Ok(t) => with_paths(t),
                Err(_) => text.clone(),
            };
            let path = config_path.clone();
            steps.push(act(i, &failures, move || {
                gallery::write_atomic(&path, text.as_bytes())
            }));
        } else if let Some(spec) = &st.enroll {
            let g = gallery::Gallery::load(&gallery_path, &fingerprint)?;
            let (p, crops) = person(&mut pipeline, s, spec, &g)?;
            let (path, fp) = (gallery_path.clone(), fingerprint.clone());
            steps.push(act(i, &failures, move || {
                edit_gallery(&path, &fp, &crops, |g| {
                    g.people.push(p.clone());
                    Ok(())
                })
            }));
        } else if let Some(id) = &st.remove {
            let (path, fp, id) = (gallery_path.clone(), fingerprint.clone(), id.clone());
            steps.push(act(i, &failures, move || {
                edit_gallery(&path, &fp, &[], |g| g.remove(&id).map(drop))
            }));
        }
    }
    let camera = SimCamera::new(
        clock.clone(),
        control.clone(),
        steps,
        Duration::from_secs_f64(config.camera.timeout_seconds),
    )
    .with_nir_link(nir_link.clone());
    let nir = nir_on.then(|| {
        Box::new(crate::devices::SimNirCamera::new(nir_link, clock.clone()))
            as Box<dyn facegate::hal::FrameSource + Send>
    });
    let marks = camera.marks();
    let mut tee = Tee {
        // As facegated: a log that cannot be written leaves audit.on_failure to decide.
        log: AuditLog::open_or_later(&config.audit.path).with_rotation(config.audit.rotation()),
        events: Vec::new(),
    };
    let model = pipeline.embedder_name().to_owned();
    let lines = crate::reader::SimWiegand::new(clock.clone());
    let mut wiegand = facegate::panel::wiegand::WiegandOutput::new(
        lines.clone(),
        facegate::panel::wiegand::Timing::of(&config.output.wiegand),
    );
    let osdp_sent = Arc::new(Mutex::new(Vec::new()));
    let status = facegate::panel::osdp::LoggedStatus::default();
    let mut osdp = match config.output.mode {
        OutputMode::Osdp => Some(crate::reader::Timed {
            inner: facegate::panel::osdp_pd::OsdpOutput::open(
                &config.output.osdp,
                Box::new(status.clone()),
            )?,
            sent: osdp_sent.clone(),
        }),
        _ => None,
    };
    let output: Option<&mut (dyn facegate::panel::reader::CredentialOutput + 'static)> =
        match config.output.mode {
            OutputMode::Relay => None,
            OutputMode::Wiegand => Some(&mut wiegand),
            OutputMode::Osdp => osdp
                .as_mut()
                .map(|o| o as &mut (dyn facegate::panel::reader::CredentialOutput + 'static)),
        };
    // The local control API, when the scenario's config has [control] (a relative socket path
    // is in the run's directory) or [mqtt]: what the CLI, the site link and the console talk to.
    let api_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let socket = match (s.config.contains_key("control"), &config.mqtt) {
        (true, _) => Some(workdir.join(&config.control.socket)),
        (false, Some(_)) => Some(workdir.join("control.sock")),
        (false, None) => None,
    };
    let (api_server, api) = match &socket {
        Some(path) => {
            let mut bound =
                facegate::door::control_api::ControlApi::bind(path).map_err(|source| {
                    SimError::Io {
                        path: path.clone(),
                        source,
                    }
                })?;
            // A relative key file is in the run's directory, as the socket.
            let mut keyed = config.control.clone();
            if !keyed.operator_key.as_os_str().is_empty() {
                keyed.operator_key = workdir.join(&keyed.operator_key);
            }
            bound = bound.with_operator_key(keyed.operator_key()?);
            if let Some(m) = &config.mqtt {
                let trust = facegate::site::SiteTrust::open(m, &gallery_path, &fingerprint)
                    .map_err(|e| SimError::Site(e.to_string()))?;
                if let Some((trust, startup)) = trust {
                    bound = bound.with_site(trust, startup, &control);
                }
            }
            // The decision pictures and gallery changes, as facegated serves them.
            let access = facegate::door::control_api::people::GalleryAccess::new(
                &config,
                pipeline.embedder_spec(),
            );
            let (server, rx) = bound.with_gallery(access).serve(api_stop.clone());
            (Some(server), Some(rx))
        }
        None => (None, None),
    };
    // The site link, as `facegate-site` runs it beside facegated, on the same files and socket.
    let site = match (&config.mqtt, &socket) {
        (Some(m), Some(path)) => Some(
            facegate::site::start(m, &config.audit.path, path)
                .map_err(|e| SimError::Site(e.to_string()))?,
        ),
        _ => None,
    };
    let summary = daemon::run(
        daemon::Parts {
            config,
            config_path: Some(config_path.clone()),
            pipeline: &mut pipeline,
            devices: Devices {
                camera,
                lock: relay.clone(),
                sensors: sensors.clone(),
                nir,
                credentials: Some(Box::new(credentials.clone())),
            },
            clock: &clock,
            supervisor: &mut NoSupervisor,
            audit: &mut tee,
            output,
            api,
        },
        &control,
    );
    // The link publishes the daemon's `stop` (briefly; else its next run does).
    if let Some(site) = site {
        site.stop();
    }
    api_stop.store(true, std::sync::atomic::Ordering::SeqCst);
    drop(api_server);
    let summary = summary?;
    let marks = marks.lock().unwrap().clone();
    let mut report = Report {
        events: tee.events,
        relay: relay.edges(),
        marks,
        summary,
        end: clock.now(),
        passed: Vec::new(),
        failures: failures.lock().unwrap().clone(),
        model,
        alarm: sensors.alarm_edges(),
        wiegand: lines.edges(),
        osdp_sent: osdp_sent.lock().unwrap().clone(),
        osdp_led: status.counts.led.load(std::sync::atomic::Ordering::Relaxed),
        osdp_buzzer: status
            .counts
            .buzzer
            .load(std::sync::atomic::Ordering::Relaxed),
        over_cost: clock.over_cost(),
    };
    check(s, &mut report);
    Ok(report)
}

/// Checks the scenario's expectations against what happened.
fn check(s: &Scenario, r: &mut Report) {
    let start_of = |i: usize| r.marks.iter().find(|m| m.0 == i).map(|m| m.1);
    let mut passed = Vec::new();
    let mut failed = Vec::new();
    let unlocks = r.unlocks();
    for (i, st) in s.step.iter().enumerate() {
        let Some(expect) = st.expect.as_deref() else {
            continue;
        };
        let what = format!("step {} ({})", i + 1, describe(st));
        let Some(start) = start_of(i) else {
            failed.push(format!("{what}: never reached (the run stopped before it)"));
            continue;
        };
        let end = start_of(i + 1).unwrap_or(r.end);
        let in_step: Vec<Duration> = unlocks
            .iter()
            .copied()
            .filter(|t| *t >= start && *t < end.max(start + Duration::from_nanos(1)))
            .collect();
        let secs = |d: Duration| d.as_secs_f64();
        // A grant while the door is still open from someone before extends the unlock without
        // a new relay edge: that person is let in too, so grants count as well as edges.
        let grants_in_step: Vec<&Event> = r
            .grants()
            .into_iter()
            .filter(|g| g.t + 1e-6 >= secs(start) && g.t < secs(end) + 1e-6)
            .collect();
        match expect {
            "no_unlock" => match (in_step.first(), grants_in_step.first()) {
                (None, None) => passed.push(format!("{what}: no unlock")),
                (Some(t), _) => failed.push(format!(
                    "{what}: expected no unlock, but the door unlocked at {:.2} s",
                    secs(*t)
                )),
                (None, Some(g)) => failed.push(format!(
                    "{what}: expected no unlock, but the door was kept unlocked for {} at {:.2} s",
                    g.identity.as_deref().unwrap_or("?"),
                    g.t
                )),
            },
            _ => {
                let grant = grants_in_step.iter().copied().find(|g| {
                    st.person
                        .as_deref()
                        .is_none_or(|p| g.identity.as_deref() == Some(p))
                });
                let who = st.person.as_deref().unwrap_or("anyone");
                // When the person was let in: the relay's edge in the step, or their grant if
                // the door was already unlocked then.
                let let_in = grant.and_then(|g| {
                    let at = Duration::from_secs_f64(g.t.max(0.0)) + Duration::from_millis(1);
                    in_step.first().map(|t| secs(*t)).or_else(|| {
                        (r.relay_state_at(at) == Some(LockState::Unlocked)).then_some(g.t)
                    })
                });
                match (grant, let_in) {
                    (Some(g), Some(t)) => {
                        let after = t - secs(start);
                        let within = st.within.unwrap_or(f64::INFINITY);
                        if after <= within + 1e-6 {
                            passed.push(format!(
                                "{what}: unlocked for {} {after:.2} s after the step began (distance {:.3}, {} frames)",
                                g.identity.as_deref().unwrap_or("?"),
                                g.distance.unwrap_or(f32::NAN),
                                g.frames.unwrap_or(0)
                            ));
                        } else {
                            failed.push(format!(
                                "{what}: unlocked for {who} only {after:.2} s after the step began (expected within {within} s)"
                            ));
                        }
                    }
                    _ => failed.push(format!(
                        "{what}: expected an unlock for {who}; the door did not unlock for them"
                    )),
                }
            }
        }
    }
    if let Some(n) = s.expect.unlocks {
        if unlocks.len() == n as usize {
            passed.push(format!("{n} unlock(s) in all"));
        } else {
            failed.push(format!(
                "expected {n} unlock(s) in all, got {}",
                unlocks.len()
            ));
        }
    }
    if let Some(n) = s.expect.min_denials {
        let d = r.of(EventKind::Deny).len();
        if d >= n as usize {
            passed.push(format!("{d} denial(s) recorded (at least {n} expected)"));
        } else {
            failed.push(format!("expected at least {n} denial(s), got {d}"));
        }
    }
    let name = |k: EventKind| {
        serde_json::to_value(k)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    let seen: Vec<String> = r.events.iter().map(|e| name(e.event)).collect();
    for e in &s.expect.events {
        if seen.contains(e) {
            passed.push(format!("event {e} recorded"));
        } else {
            failed.push(format!("expected a {e} event; none was recorded"));
        }
    }
    for e in &s.expect.no_events {
        if seen.contains(e) {
            failed.push(format!("expected no {e} event, but one was recorded"));
        } else {
            passed.push(format!("no {e} event"));
        }
    }
    for want in &s.expect.deny_reasons {
        let n = r
            .of(EventKind::Deny)
            .iter()
            .filter(|e| e.reason.as_deref() == Some(want))
            .count();
        if n > 0 {
            passed.push(format!("{n} denial(s) for {want}"));
        } else {
            failed.push(format!("expected a denial for {want}; none was recorded"));
        }
    }
    if let Some(want) = s.expect.alarm {
        let sounded = r.alarm.iter().any(|e| e.1);
        if sounded == want {
            passed.push(format!(
                "the alarm output {}",
                if want { "sounded" } else { "stayed off" }
            ));
        } else {
            failed.push(format!(
                "expected the alarm output {}",
                if want { "to sound" } else { "off" }
            ));
        }
    }
    if s.expect.locked_at_end {
        match r.relay.last() {
            Some((_, LockState::Locked)) => passed.push("the door is locked at the end".into()),
            other => failed.push(format!(
                "expected the door locked at the end, the relay is {:?}",
                other.map(|e| e.1)
            )),
        }
    }
    r.passed.extend(passed);
    r.failures.extend(failed);
}

/// Where the fixture photos are (the scenario resolves its photos there too).
pub use crate::scenario::fixtures_dir;

/// `path` if it exists, else a clear error.
pub fn require(path: &Path) -> Result<(), SimError> {
    std::fs::metadata(path)
        .map(|_| ())
        .map_err(|source| SimError::Io {
            path: path.to_owned(),
            source,
        })
}
