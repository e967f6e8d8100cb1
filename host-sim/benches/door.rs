//! Benchmark of the door daemon's loop on this machine: frames per second at 640x480 with one
//! face in view, decision latency (the person's first frame -> relay unlocked, at real camera
//! pace), allocations per frame and the daemon's memory (peak and steady RSS), with a
//! 1,000-person gallery.
//!
//! `cargo bench -p facegate-sim --bench door [-- EMBEDDER...]` (default: both SFace forms and
//! dlib's int8, the former default, for comparison): each model runs in its own child
//! process, which holds what `facegated` holds and no more: the gallery (999 synthetic people
//! and the real one) is made and enrolled by the parent, and the networks compiled into the
//! binary are used from there as the daemon does by default (SFace f32 is not compiled in: it
//! is read from `models/`). Per model: one child processes every frame (throughput), one runs
//! at a 15 fps camera's pace with the daemon's threads (latency), one prints what each load
//! stage adds to the resident size.
//! Needs the fixture photos (scripts/fetch_fixtures.py).
//! FACEGATE_BENCH_THREADS: the networks' `[performance] threads` ("auto", the default, or N).
//! FACEGATE_BENCH_WORKERS: `[performance] workers` ("auto", the default, or N); a fourth child
//! measures how many frames a second the door judges with a 100 fps camera, and its memory with
//! every worker busy.
//! FACEGATE_BENCH_SITE=1: instead, the door's frame time and unlock latency on a busy door
//! (grants, denials, door openings) with everything of issues #13 and #15 off, then on: door
//! supervision, lockout, anti-tailgating, tamper, audit rotation every few KB, and the MQTT
//! site link publishing every event to a real Mosquitto over TLS (needs `mosquitto`). The two
//! arms alternate, REPS times each (FACEGATE_BENCH_REPS, default 3).
//! FACEGATE_BENCH_LIVE=1: instead, the door's frame time with nobody watching, then with the
//! control API's live view open (two viewers, the most the door takes, reading every frame
//! through `DoorClient`): a 1280x720 camera at 15 fps, the daemon's threads, the arms
//! alternating REPS times each; frame time, frames judged, unlock latency, the process's CPU.

use facegate::control::Control;
use facegate::memory;
use facegate::people::gallery::{Enrolment, Gallery, Person};
use facegate::vision::models::ModelSet;
use facegate::vision::Pipeline;
use facegate_sim::{run_scenario, RunOptions, Scenario};
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Counts allocations, to show what the steady state allocates per frame.
struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const MANIFEST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/manifest.toml");

/// The `[recognition] models` line: none (the built-in set, as the daemon runs by default)
/// when the embedder is compiled in, else the checkout's manifest.
fn models_line(embedder: &str) -> String {
    let builtin = ModelSet::builtin().unwrap();
    let compiled_in = builtin
        .embedder(Some(embedder))
        .map(|(_, e)| builtin.has_file(&e.file))
        .unwrap_or(false);
    if compiled_in {
        String::new()
    } else {
        format!("models = \"{MANIFEST}\"\n")
    }
}

fn model_set(embedder: &str) -> ModelSet {
    if models_line(embedder).is_empty() {
        ModelSet::builtin().unwrap()
    } else {
        ModelSet::from_manifest(Path::new(MANIFEST)).unwrap()
    }
}

/// 999 synthetic people (two random embeddings each, far from any real face) and Barack Obama
/// enrolled from a fixture photo, in a gallery stamped for `embedder`: made here, in the
/// parent, so the measured child does not hold an enrolment pipeline.
fn big_gallery(path: &Path, embedder: &str) {
    let models = model_set(embedder);
    let mut pipeline = Pipeline::new(&models, Some(embedder), None).unwrap();
    let fx = facegate_sim::runner::fixtures_dir();
    let mut obama = facegate::access::enrolment::enrol_photo(&mut pipeline, &fx.join("obama.jpg"))
        .unwrap()
        .enrolment;
    obama.crop = None;
    let mut g = Gallery::new(&pipeline.embedder_spec().fingerprint);
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.25
    };
    for i in 0..999 {
        let enrolments = (0..2)
            .map(|k| Enrolment {
                enrolled_at: "2026-11-28T00:00:00Z".into(),
                source: format!("p{i}_{k}.jpg"),
                sha256: "0".repeat(64),
                embedding: (0..128).map(|_| next()).collect(),
                crop: None,
            })
            .collect();
        g.people.push(Person {
            policy: Default::default(),
            id: format!("p{i}"),
            name: format!("Person {i}"),
            enrolments,
            credential: None,
            pin_hash: None,
            duress_hash: None,
        });
    }
    g.people.push(Person {
        policy: Default::default(),
        id: "obama".into(),
        name: "Barack Obama".into(),
        enrolments: vec![obama],
        credential: None,
        pin_hash: None,
        duress_hash: None,
    });
    std::fs::write(path, toml::to_string(&g).unwrap()).unwrap();
}

fn threads() -> facegate::cores::Threads {
    std::env::var("FACEGATE_BENCH_THREADS")
        .unwrap_or_else(|_| "auto".into())
        .parse()
        .unwrap()
}

fn workers() -> facegate::cores::Threads {
    std::env::var("FACEGATE_BENCH_WORKERS")
        .unwrap_or_else(|_| "auto".into())
        .parse()
        .unwrap()
}

// FACEGATE_BENCH_DETECTOR: the door's detector, "blazeface" (default) or "mtcnn".
fn detector() -> String {
    std::env::var("FACEGATE_BENCH_DETECTOR").unwrap_or_else(|_| "blazeface".into())
}

/// Samples the resident size every 5 ms while the door runs, for its steady size.
struct Sampler {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<(Instant, u64)>>>,
    thread: std::thread::JoinHandle<()>,
}

impl Sampler {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (s, v) = (stop.clone(), samples.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Some(u) = memory::usage() {
                    v.lock().unwrap().push((Instant::now(), u.rss_kib));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Self {
            stop,
            samples,
            thread,
        }
    }

    /// Median resident size (MiB) over the samples taken after `from`.
    fn median_after(self, from: Instant) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap();
        let mut v: Vec<u64> = self
            .samples
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| *t >= from)
            .map(|(_, k)| *k)
            .collect();
        v.sort_unstable();
        v.get(v.len() / 2).map_or(f64::NAN, |k| *k as f64 / 1024.0)
    }
}

/// Threads per network run at the door for `embedder` with these settings.
fn network_threads(embedder: &str, threads: facegate::cores::Threads) -> usize {
    let perf = facegate::cores::PerformanceConfig {
        threads,
        workers: workers(),
    };
    let form = if embedder.contains("int8") {
        "int8"
    } else {
        "f32"
    };
    facegate::cores::door_split(&perf, form, facegate::cores::available()).1
}

/// Runs `s` at real camera pace as `facegated` runs; with the process's peak RSS after it and
/// the median RSS over its second half (MiB).
fn realtime_run(s: &Scenario) -> (facegate_sim::Report, f64, f64) {
    let sampler = Sampler::start();
    let t0 = Instant::now();
    let options = RunOptions {
        realtime: true,
        workdir: None,
    };
    let r = run_scenario(s, &options, Control::default()).unwrap();
    let t1 = Instant::now();
    let peak = memory::usage().map_or(f64::NAN, |u| u.peak_mib());
    (r, peak, sampler.median_after(t0 + (t1 - t0) / 2))
}

/// One daemon's life with `embedder`: every frame processed in simulated time ("throughput"),
/// at a 15 fps camera's pace as `facegated` runs ("threaded": latency), or with a 100 fps
/// camera that keeps every worker busy ("capacity": frames judged a second, memory).
fn child(embedder: &str, gallery: &Path, mode: &str) {
    let dir = tempfile::tempdir().unwrap();
    let fx = facegate_sim::runner::fixtures_dir();
    let detector = detector();
    let threads = threads();
    let threads_toml = toml::Value::try_from(threads).unwrap();
    let workers_toml = toml::Value::try_from(workers()).unwrap();
    let models = models_line(embedder);
    // FACEGATE_BENCH_LIVENESS: `[liveness]` keys, e.g. `level = "normal"`, `border = true`,
    // `motion = true` or `nir = {}` (a simulated NIR camera), to cost the checks.
    let liveness = std::env::var("FACEGATE_BENCH_LIVENESS").unwrap_or_default();
    let scenario = |realtime_frames: u32, fps: u32| {
        format!(
            "fps = {fps}\ngallery = \"{}\"\n[config.recognition]\n{models}embedder = \"{embedder}\"\ndetector = \"{detector}\"\n\
             [config.liveness]\n{liveness}\n\
             [config.camera]\nfps = {fps}\n\
             [config.lock]\nunlock_seconds = 600\n[config.performance]\nthreads = {threads_toml}\nworkers = {workers_toml}\n\
             [[step]]\nshow = \"blank\"\nframes = 2\n\
             [[step]]\nshow = \"{}\"\nframes = {realtime_frames}\nexpect = \"unlock\"\nperson = \"obama\"\n",
            gallery.display(),
            fx.join("obama2.jpg").display()
        )
    };
    if mode == "threaded" {
        // Latency at real camera pace (15 fps): first frame of the person -> relay unlocked.
        // The daemon runs as `facegated` does, capture and recognition on threads of their own.
        let s = Scenario::parse(&scenario(30, 15), Path::new("bench.toml"), dir.path()).unwrap();
        let (rt, peak, steady) = realtime_run(&s);
        let step_start = rt.marks.iter().find(|m| m.0 == 1).unwrap().1;
        let first_frame = step_start + std::time::Duration::from_secs_f64(1.0 / 15.0);
        let unlock = rt.unlocks().first().copied();
        let grant_frames = rt.grants().first().and_then(|g| g.frames).unwrap_or(0);
        println!(
            "{embedder}: threaded daemon at 15 fps | latency first frame -> relay unlocked: {} (grant on {} agreeing frames; 3 frames at 15 fps is 133 ms of camera time) | \
             daemon RSS: peak {peak:.1} MiB, steady {steady:.1} MiB",
            unlock
                .map(|u| format!("{:.0} ms", (u.as_secs_f64() - first_frame.as_secs_f64()) * 1000.0))
                .unwrap_or_else(|| "no unlock".into()),
            grant_frames,
        );
        return;
    }
    if mode == "capacity" {
        // A 100 fps camera for 3 s; what the door recognises a second (the rest is dropped as
        // stale, as on a camera faster than the machine), with every worker busy.
        let s = Scenario::parse(&scenario(300, 100), Path::new("bench.toml"), dir.path()).unwrap();
        let (rt, peak, steady) = realtime_run(&s);
        let sm = &rt.summary;
        let seconds = sm.delivered as f64 / 100.0;
        println!(
            "{embedder}: threaded daemon, 100 fps camera | {} worker(s), networks on {} thread(s) | {:.1} frames recognised a second ({} of {} delivered) | \
             recognition {:.1} ms a frame (median) | daemon RSS: peak {peak:.1} MiB, steady {steady:.1} MiB",
            sm.workers,
            network_threads(embedder, threads),
            sm.frames as f64 / seconds,
            sm.frames,
            sm.delivered,
            sm.recognition.percentile(50.0).as_secs_f64() * 1000.0,
        );
        return;
    }
    // Throughput: simulated time, every frame processed; the busy time is real. The peak RSS
    // is read after the run: the daemon's whole life, from loading to stopping.
    let frames = 120;
    let s = Scenario::parse(&scenario(frames, 15), Path::new("bench.toml"), dir.path()).unwrap();
    let before = ALLOCS.load(Ordering::Relaxed);
    let sampler = Sampler::start();
    let t0 = Instant::now();
    let r = run_scenario(&s, &RunOptions::default(), Control::default()).unwrap();
    let t1 = Instant::now();
    let peak = memory::usage().map_or(f64::NAN, |u| u.peak_mib());
    // The frames come last: the second half of the run is the door at work.
    let steady = sampler.median_after(t0 + (t1 - t0) / 2);
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    let per_frame_ms = r.summary.busy.as_secs_f64() * 1000.0 / r.summary.frames as f64;
    let n = r.summary.frames as f64;
    let st = r.summary.stages;
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0 / n;
    println!(
        "{embedder}: per frame: detect+landmarks {:.1} ms, align {:.1}, embed {:.1}, match 1:2000 {:.2}, \
         liveness ([liveness] {liveness:?}) {:.1} = +{:.0}% on the frame without it",
        ms(st.detect),
        ms(st.align),
        ms(st.embed),
        ms(st.matching),
        ms(st.liveness),
        100.0 * ms(st.liveness) / (per_frame_ms - ms(st.liveness))
    );
    println!(
        "{embedder}: 1,000 people (2,000 embeddings) | {:.1} ms per 640x480 frame with one face = {:.1} fps, networks on {} thread(s) ({} frames) | \
         ~{:.0} allocations per frame (tract tensors, detector lists) | daemon RSS: peak {peak:.1} MiB, steady {steady:.1} MiB",
        per_frame_ms,
        1000.0 / per_frame_ms,
        network_threads(embedder, threads),
        r.summary.frames,
        allocs as f64 / r.summary.frames as f64,
    );
}

/// What each stage of the daemon's start adds to the resident size, in the daemon's order
/// (`daemon::load_pipeline`, then `daemon::run`'s liveness networks and gallery).
fn stages(embedder: &str, gallery: &Path) {
    use facegate::vision::{blazeface::BlazeFace, detect, embed, liveness::Liveness};
    let mut last = memory::usage().unwrap();
    let mut line = format!(
        "{embedder}: memory by stage (MiB: resident after, +added, file pages resident, peak so far): start {:.1} (file {:.1})",
        last.rss_mib(),
        last.file_kib as f64 / 1024.0
    );
    let mut note = |what: &str| {
        let u = memory::usage().unwrap();
        line.push_str(&format!(
            " | {what} {:.1} (+{:.1}, file {:.1}, peak {:.1})",
            u.rss_mib(),
            u.rss_mib() - last.rss_mib(),
            u.file_kib as f64 / 1024.0,
            u.peak_mib()
        ));
        last = u;
    };
    let models = model_set(embedder);
    let (_, spec) = models.embedder(Some(embedder)).unwrap();
    let spec = spec.clone();
    let mtcnn = detect::Detector::new(
        &models,
        detect::DetectorParams::for_photos(&models.manifest.detector),
    )
    .unwrap();
    note("MTCNN");
    let blaze = (detector() == "blazeface").then(|| BlazeFace::new(&models).unwrap());
    note("BlazeFace");
    let emb = embed::Embedder::new(&models, &spec).unwrap();
    note("embedder");
    let live = Liveness::load(None).ok();
    note("liveness");
    let g = Gallery::load(gallery, &spec.fingerprint).unwrap();
    let index = g.index(facegate::people::gallery::Scoring::of(&spec));
    note("gallery+index");
    memory::release_free_heap();
    note("malloc_trim");
    let threads = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Threads:"))
        .map(|l| l.trim_start_matches("Threads:").trim().to_owned())
        .unwrap_or_default();
    println!(
        "{line} | anon {:.1}, file {:.1}; {threads} thread(s)",
        last.anon_kib as f64 / 1024.0,
        last.file_kib as f64 / 1024.0
    );
    drop((mtcnn, blaze, emb, live, index, g));
}

/// The busy door of the site comparison: Obama let in (1 s unlocks), opening the door and
/// leaving it open after the relock, then a stranger (Biden) refused; three times a run.
const BUSY_STEPS: &str = r#"
[[step]]
door = "closed"
[[step]]
show = "blank"
frames = 2
[[step]]
show = "OBAMA"
frames = 8
expect = "unlock"
person = "obama"
[[step]]
door = "open"
[[step]]
show = "blank"
frames = 36
[[step]]
door = "closed"
[[step]]
show = "BIDEN"
frames = 30
expect = "no_unlock"
"#;

/// What the "on" arm adds to the config: every feature of #13 that runs per frame or per
/// event, with short times so that they fire during the run.
const SITE_CONFIG: &str = r#"
[config.door]
held_open_seconds = 1.0
pre_alarm_seconds = 0.5
relock_on_close = true
[config.access]
max_faces = 1
lockout_denials = 1000
[config.tamper]
blind_seconds = 2.0
camera_lost_seconds = 10.0
[config.audit]
rotate_bytes = 4000
rotate_daily = true
retention_days = 1
"#;

/// The "off" arm: door supervision and camera-lost off (both on by default).
const PLAIN_CONFIG: &str = r#"
[config.door]
held_open_seconds = 0.0
pre_alarm_seconds = 0.0
relock_on_close = false
[config.tamper]
camera_lost_seconds = 0.0
"#;

/// One arm of the site comparison in this process; writes its figures as JSON to
/// FACEGATE_BENCH_RESULT. `site`: the #13 features on and the MQTT link (settings in
/// FACEGATE_BENCH_MQTT, TOML) publishing the audit log as `facegated` does.
fn site_child(embedder: &str, gallery: &Path, site: bool, realtime: bool) {
    let dir = tempfile::tempdir().unwrap();
    let fx = facegate_sim::runner::fixtures_dir();
    let threads_toml = toml::Value::try_from(threads()).unwrap();
    let mut steps = String::new();
    for _ in 0..3 {
        steps.push_str(
            &BUSY_STEPS
                .replace("OBAMA", &fx.join("obama2.jpg").display().to_string())
                .replace("BIDEN", &fx.join("biden.jpg").display().to_string()),
        );
    }
    let text = format!(
        "fps = 15\ngallery = \"{}\"\n[config.recognition]\n{}embedder = \"{embedder}\"\ndetector = \"{}\"\ncooldown_seconds = 1\n\
         [config.lock]\nunlock_seconds = 1\n[config.performance]\nthreads = {threads_toml}\n{}{steps}",
        gallery.display(),
        models_line(embedder),
        detector(),
        if site { SITE_CONFIG } else { PLAIN_CONFIG },
    );
    let s = Scenario::parse(&text, Path::new("busy.toml"), dir.path()).unwrap();
    let control = Control::default();
    let audit = dir.path().join("audit.jsonl");
    let link = site.then(|| {
        let cfg: facegate::site::MqttConfig =
            toml::from_str(&std::env::var("FACEGATE_BENCH_MQTT").unwrap()).unwrap();
        // Publishing only (no door API needed): the link as facegate-site runs it.
        facegate::site::start(&cfg, &audit, &dir.path().join("no-door.sock")).unwrap()
    });
    let opts = RunOptions {
        realtime,
        workdir: Some(dir.path().to_owned()),
    };
    let r = run_scenario(&s, &opts, control).unwrap();
    let ended = Instant::now();
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    let events = r.events.len() as u64;
    // The link's cursor reaches the last line once the broker has acknowledged every event.
    let published_after_ms = link.map(|h| {
        let cursor = dir.path().join("audit.jsonl.mqtt-cursor");
        let last = events;
        loop {
            let acked = facegate::site::follow::Follower::new(&audit, &cursor)
                .cursor()
                .seq;
            if acked >= last {
                break;
            }
            assert!(
                ended.elapsed() < Duration::from_secs(30),
                "the broker has {acked} of {last} events 30 s after the run"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        let ms = ended.elapsed().as_secs_f64() * 1000.0;
        h.stop();
        ms
    });
    let rotated = facegate::records::rotation::rotated(&audit).len();
    let latencies: Vec<f64> = r
        .unlock_latencies()
        .iter()
        .map(|d| d.as_secs_f64() * 1000.0)
        .collect();
    let out = serde_json::json!({
        "frame_ms": r.summary.busy.as_secs_f64() * 1000.0 / r.summary.frames as f64,
        "frames": r.summary.frames,
        "events": events,
        "rotated_files": rotated,
        "unlock_latency_ms": latencies,
        "published_after_ms": published_after_ms,
        "kinds": r.events.iter().map(|e| format!("{:?}", e.event)).collect::<std::collections::BTreeSet<_>>(),
    });
    std::fs::write(
        std::env::var("FACEGATE_BENCH_RESULT").unwrap(),
        out.to_string(),
    )
    .unwrap();
}

/// The process's CPU time so far (user + system), from /proc (clock ticks of 10 ms).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // After the command's closing parenthesis: fields 3.. of proc(5); utime and stime are 14, 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    f.iter().sum::<f64>() / 100.0
}

const LIVE_KEY: &str = "bench-operator-key-bench-operator-key";

/// One arm of the live-view comparison in this process (`viewers`: 0 or 2); writes its
/// figures as JSON to FACEGATE_BENCH_RESULT.
fn live_child(embedder: &str, gallery: &Path, viewers: usize) {
    use facegate::door::control_api::client::DoorClient;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("console.key"), LIVE_KEY).unwrap();
    let fx = facegate_sim::runner::fixtures_dir();
    let text = format!(
        "fps = 15\ngallery = \"{}\"\n[config.recognition]\n{}embedder = \"{embedder}\"\ndetector = \"{}\"\n\
         [config.control]\nsocket = \"control.sock\"\noperator_key = \"console.key\"\n\
         [config.camera]\nfps = 15\nwidth = 1280\nheight = 720\n\
         [config.lock]\nunlock_seconds = 600\n[config.performance]\nthreads = {}\nworkers = {}\n\
         [[step]]\nshow = \"blank\"\nframes = 30\n\
         [[step]]\nshow = \"{}\"\nframes = 150\nexpect = \"unlock\"\nperson = \"obama\"\n",
        gallery.display(),
        models_line(embedder),
        detector(),
        toml::Value::try_from(threads()).unwrap(),
        toml::Value::try_from(workers()).unwrap(),
        fx.join("obama2.jpg").display()
    );
    let s = Scenario::parse(&text, Path::new("live.toml"), dir.path()).unwrap();
    let socket = dir.path().join("control.sock");
    let received = Arc::new(AtomicU64::new(0));
    let watchers: Vec<_> = (0..viewers)
        .map(|_| {
            let (socket, received) = (socket.clone(), Arc::clone(&received));
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(60);
                let view = loop {
                    match DoorClient::connect(&socket, Some(LIVE_KEY)).and_then(|c| c.view()) {
                        Ok(v) => break v,
                        Err(_) if Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(5))
                        }
                        Err(e) => panic!("no live view: {e}"),
                    }
                };
                // Until the door stops (the connection closes).
                for frame in view {
                    let Ok(frame) = frame else { break };
                    std::hint::black_box(&frame.jpeg);
                    received.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let opts = RunOptions {
        realtime: true,
        workdir: Some(dir.path().to_owned()),
    };
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    let r = run_scenario(&s, &opts, Control::default()).unwrap();
    let (cpu, wall) = (cpu_seconds() - cpu0, t0.elapsed().as_secs_f64());
    for w in watchers {
        w.join().unwrap();
    }
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    let sm = &r.summary;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let out = serde_json::json!({
        "frame_ms": ms(sm.busy) / sm.frames as f64,
        "recognition_p50_ms": ms(sm.recognition.percentile(50.0)),
        "recognition_p95_ms": ms(sm.recognition.percentile(95.0)),
        "decision_lag_p95_ms": ms(sm.decision_lag.percentile(95.0)),
        "frames": sm.frames,
        "delivered": sm.delivered,
        "unlock_latency_ms": r.unlock_latencies().iter().map(|d| ms(*d)).collect::<Vec<_>>(),
        "cpu_percent": 100.0 * cpu / wall,
        "live_frames_received": received.load(Ordering::Relaxed),
    });
    std::fs::write(
        std::env::var("FACEGATE_BENCH_RESULT").unwrap(),
        out.to_string(),
    )
    .unwrap();
}

/// The live-view comparison (FACEGATE_BENCH_LIVE=1) for `embedder`: nobody watching, then two
/// viewers, alternating in child processes.
fn live_comparison(embedder: &str, gallery: &Path) {
    use facegate::door::control_api::live;
    // What one live frame and one snapshot cost a viewer's thread, on a 1280x720 photo.
    let photo = image::open(facegate_sim::runner::fixtures_dir().join("obama2.jpg"))
        .unwrap()
        .to_rgb8();
    let frame = Arc::new(image::imageops::resize(
        &photo,
        1280,
        720,
        image::imageops::FilterType::Triangle,
    ));
    let time = |f: &dyn Fn()| {
        median(
            (0..21)
                .map(|_| {
                    let t = Instant::now();
                    f();
                    t.elapsed().as_secs_f64() * 1000.0
                })
                .collect(),
        )
    };
    let shot = live::LiveShot {
        seq: 1,
        at_ms: 0,
        image: Arc::clone(&frame),
        faces: Vec::new(),
        encoded: Arc::default(),
    };
    let counter = AtomicU64::new(0);
    let view_ms = time(&|| {
        std::hint::black_box(live::encode_shot(&shot, &counter).unwrap());
    });
    let snap_ms = time(&|| {
        std::hint::black_box(live::jpeg(&frame, live::SNAPSHOT_QUALITY).unwrap());
    });
    println!(
        "{embedder} | on a viewer's thread: a live frame (1280x720 -> 640x360, JPEG {}) {view_ms:.1} ms, a snapshot (1280x720, JPEG {}) {snap_ms:.1} ms",
        live::VIEW_QUALITY,
        live::SNAPSHOT_QUALITY
    );
    let reps: usize = std::env::var("FACEGATE_BENCH_REPS").map_or(3, |r| r.parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let mut arms: [Vec<serde_json::Value>; 2] = Default::default();
    for rep in 0..reps * 2 {
        let watched = rep % 2 == 1;
        let result = dir.path().join("result.json");
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .env("FACEGATE_BENCH_CHILD", embedder)
            .env("FACEGATE_BENCH_GALLERY", gallery)
            .env(
                "FACEGATE_BENCH_MODE",
                if watched { "live_on" } else { "live_off" },
            )
            .env("FACEGATE_BENCH_RESULT", &result)
            .status()
            .unwrap();
        assert!(status.success());
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&result).unwrap()).unwrap();
        println!(
            "{embedder} live view {}: {v}",
            if watched { "on " } else { "off" }
        );
        arms[watched as usize].push(v);
    }
    for (watched, runs) in arms.iter().enumerate() {
        let med = |key: &str| {
            median(
                runs.iter()
                    .flat_map(|v| match &v[key] {
                        serde_json::Value::Array(a) => a.clone(),
                        x => vec![x.clone()],
                    })
                    .filter_map(|x| x.as_f64())
                    .collect(),
            )
        };
        println!(
            "{embedder} | 1280x720 at 15 fps, daemon threads | {}: median frame {:.2} ms (recognition p50 {:.1} ms, p95 {:.1} ms), {:.0} of {:.0} frames judged, decision lag p95 {:.1} ms, first frame -> unlocked {:.0} ms, CPU {:.0}% of a core, {:.0} live frames received",
            if watched == 1 { "2 viewers" } else { "nobody watching" },
            med("frame_ms"),
            med("recognition_p50_ms"),
            med("recognition_p95_ms"),
            med("frames"),
            med("delivered"),
            med("decision_lag_p95_ms"),
            med("unlock_latency_ms"),
            med("cpu_percent"),
            med("live_frames_received"),
        );
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The site comparison (FACEGATE_BENCH_SITE=1) for `embedder`: a broker, then the two arms
/// alternating in child processes, per-frame time (every frame processed) and unlock latency
/// (15 fps camera pace, the daemon's threads).
fn site_comparison(embedder: &str, gallery: &Path) {
    let Some(bin) = facegate_e2e::broker::mosquitto() else {
        panic!("FACEGATE_BENCH_SITE needs mosquitto (apt install mosquitto)");
    };
    let broker = facegate_e2e::broker::Broker::start(bin);
    let mqtt = toml::to_string(&broker.config("door1")).unwrap();
    let reps: usize = std::env::var("FACEGATE_BENCH_REPS").map_or(3, |r| r.parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    for realtime in [false, true] {
        let mut arms: [Vec<serde_json::Value>; 2] = Default::default();
        for rep in 0..reps * 2 {
            let site = rep % 2 == 1;
            let result = dir.path().join("result.json");
            let status = std::process::Command::new(std::env::current_exe().unwrap())
                .env("FACEGATE_BENCH_CHILD", embedder)
                .env("FACEGATE_BENCH_GALLERY", gallery)
                .env(
                    "FACEGATE_BENCH_MODE",
                    if site { "site_on" } else { "site_off" },
                )
                .env("FACEGATE_BENCH_REALTIME", if realtime { "1" } else { "" })
                .env("FACEGATE_BENCH_MQTT", &mqtt)
                .env("FACEGATE_BENCH_RESULT", &result)
                .status()
                .unwrap();
            assert!(status.success());
            let v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&result).unwrap()).unwrap();
            println!(
                "{embedder} {} {}: {v}",
                if realtime { "15 fps" } else { "every frame" },
                if site { "on " } else { "off" }
            );
            arms[site as usize].push(v);
        }
        for (site, runs) in arms.iter().enumerate() {
            let med = |key: &str| {
                median(
                    runs.iter()
                        .flat_map(|v| match &v[key] {
                            serde_json::Value::Array(a) => a.clone(),
                            x => vec![x.clone()],
                        })
                        .filter_map(|x| x.as_f64())
                        .collect(),
                )
            };
            println!(
                "{embedder} | {} | #13 and #15 {}: median frame {:.2} ms, median first frame -> unlocked {:.0} ms, {:.0} audit events a run{}",
                if realtime { "15 fps, daemon threads" } else { "every frame processed" },
                if site == 1 { "on " } else { "off" },
                med("frame_ms"),
                med("unlock_latency_ms"),
                med("events"),
                if site == 1 {
                    format!(
                        ", all published (broker acknowledged the last {:.0} ms after the run), {} rotated files",
                        med("published_after_ms"),
                        med("rotated_files")
                    )
                } else {
                    String::new()
                }
            );
        }
    }
}

fn main() {
    if let Ok(which) = std::env::var("FACEGATE_BENCH_CHILD") {
        let gallery = PathBuf::from(std::env::var("FACEGATE_BENCH_GALLERY").unwrap());
        let realtime = std::env::var("FACEGATE_BENCH_REALTIME").is_ok_and(|v| !v.is_empty());
        match std::env::var("FACEGATE_BENCH_MODE").as_deref() {
            Ok("site_on") => site_child(&which, &gallery, true, realtime),
            Ok("site_off") => site_child(&which, &gallery, false, realtime),
            Ok("live_on") => live_child(&which, &gallery, 2),
            Ok("live_off") => live_child(&which, &gallery, 0),
            Ok("stages") => stages(&which, &gallery),
            Ok(mode) => child(&which, &gallery, mode),
            Err(_) => child(&which, &gallery, "throughput"),
        }
        return;
    }
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let which: Vec<&str> = if args.is_empty() {
        vec![
            "sface_2021dec_int8",
            "sface_2021dec_f32",
            "dlib_resnet_v1_int8",
        ]
    } else {
        args.iter().map(String::as_str).collect()
    };
    let dir = tempfile::tempdir().unwrap();
    for w in which {
        let gallery = dir.path().join(format!("{w}.toml"));
        big_gallery(&gallery, w);
        if std::env::var("FACEGATE_BENCH_SITE").is_ok_and(|v| v == "1") {
            site_comparison(w, &gallery);
            continue;
        }
        if std::env::var("FACEGATE_BENCH_LIVE").is_ok_and(|v| v == "1") {
            live_comparison(w, &gallery);
            continue;
        }
        for mode in ["throughput", "threaded", "capacity", "stages"] {
            let status = std::process::Command::new(std::env::current_exe().unwrap())
                .env("FACEGATE_BENCH_CHILD", w)
                .env("FACEGATE_BENCH_GALLERY", &gallery)
                .env("FACEGATE_BENCH_MODE", mode)
                .status()
                .unwrap();
            assert!(status.success());
        }
    }
}
