//! Benchmark of the door daemon's loop on this machine: frames per second at 640x480 with one
//! face in view, decision latency (the person's first frame -> relay unlocked, at real camera
//! pace), allocations per frame and peak RSS, with a 1,000-person gallery.
//!
//! `cargo bench -p facegate-sim --bench door [-- EMBEDDER...]` (default: both SFace forms and
//! dlib's int8, the former default, for comparison): each model runs in its own child
//! process so its peak RSS is its own. Needs the fixture photos (scripts/fetch_fixtures.py).
//! FACEGATE_BENCH_THREADS: the networks' `[performance] threads` ("auto", the default, or N).

use facegate::config::Config;
use facegate::daemon;
use facegate::gallery::{Enrolment, Gallery, Person};
use facegate::hal::Control;
use facegate_sim::{run_scenario, RunOptions, Scenario};
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

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

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map(|kib| kib / 1024.0)
        .unwrap_or(f64::NAN)
}

/// 999 synthetic people (two random embeddings each, far from any real face) in a gallery
/// stamped for `fingerprint`; the scenario enrols the real person as the 1,000th.
fn big_gallery(path: &Path, fingerprint: &str) {
    let mut g = Gallery::new(fingerprint);
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
        });
    }
    let text = toml::to_string(&g).unwrap();
    std::fs::write(path, text).unwrap();
}

fn child(which: &str) {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/manifest.toml");
    let embedder = which;
    let dir = tempfile::tempdir().unwrap();
    let fx = facegate_sim::runner::fixtures_dir();
    // The gallery's fingerprint must be the model's.
    // FACEGATE_BENCH_DETECTOR: the door's detector, "blazeface" (default) or "mtcnn".
    let detector = std::env::var("FACEGATE_BENCH_DETECTOR").unwrap_or_else(|_| "blazeface".into());
    let threads: facegate::cores::Threads = std::env::var("FACEGATE_BENCH_THREADS")
        .unwrap_or_else(|_| "auto".into())
        .parse()
        .unwrap();
    let threads_toml = toml::Value::try_from(threads).unwrap();
    let cfg_text = format!(
        "[recognition]\nmodels = \"{manifest}\"\nembedder = \"{embedder}\"\ndetector = \"{detector}\"\n\
         [performance]\nthreads = {threads_toml}\n"
    );
    let cfg = Config::parse(&cfg_text, Path::new("bench.toml")).unwrap();
    let fingerprint = daemon::load_pipeline(&cfg)
        .unwrap()
        .embedder_spec()
        .fingerprint
        .clone();
    let gallery = dir.path().join("start.toml");
    big_gallery(&gallery, &fingerprint);
    // FACEGATE_BENCH_LIVENESS: `[liveness]` keys, e.g. `level = "normal"`, `border = true`,
    // `motion = true` or `nir = {}` (a simulated NIR camera), to cost the checks.
    let liveness = std::env::var("FACEGATE_BENCH_LIVENESS").unwrap_or_default();
    let scenario = |realtime_frames: u32, fps: u32| {
        format!(
            "fps = {fps}\ngallery = \"{}\"\n[config.recognition]\nmodels = \"{manifest}\"\nembedder = \"{embedder}\"\ndetector = \"{detector}\"\n\
             [config.liveness]\n{liveness}\n\
             [config.lock]\nunlock_seconds = 600\n[config.performance]\nthreads = {threads_toml}\n\
             [[enroll]]\nid = \"obama\"\nname = \"Barack Obama\"\nphotos = [\"{}\"]\n\
             [[step]]\nshow = \"blank\"\nframes = 2\n\
             [[step]]\nshow = \"{}\"\nframes = {realtime_frames}\nexpect = \"unlock\"\nperson = \"obama\"\n",
            gallery.display(),
            fx.join("obama.jpg").display(),
            fx.join("obama2.jpg").display()
        )
    };
    // 1. Throughput: simulated time, every frame processed; the busy time is real.
    let frames = 60;
    let s = Scenario::parse(&scenario(frames, 15), Path::new("bench.toml"), dir.path()).unwrap();
    let before = ALLOCS.load(Ordering::Relaxed);
    let r = run_scenario(&s, &RunOptions::default(), Control::default()).unwrap();
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
    // 2. Latency at real camera pace (15 fps): first frame of the person -> relay unlocked.
    let s = Scenario::parse(&scenario(15, 15), Path::new("bench.toml"), dir.path()).unwrap();
    let rt = run_scenario(
        &s,
        &RunOptions {
            realtime: true,
            workdir: None,
        },
        Control::default(),
    )
    .unwrap();
    let step_start = rt.marks.iter().find(|m| m.0 == 1).unwrap().1;
    let first_frame = step_start + std::time::Duration::from_secs_f64(1.0 / 15.0);
    let unlock = rt.unlocks().first().copied();
    let grant_frames = rt.grants().first().and_then(|g| g.frames).unwrap_or(0);
    println!(
        "{embedder}: 1,000 people (2,000 embeddings) | {:.1} ms per 640x480 frame with one face = {:.1} fps, networks on {} thread(s) ({} frames) | \
         ~{:.0} allocations per frame (tract tensors, detector lists) | latency first frame -> relay unlocked at 15 fps: {} (grant on {} agreeing frames; 3 frames at 15 fps is 133 ms of camera time) | peak RSS {:.1} MiB",
        per_frame_ms,
        1000.0 / per_frame_ms,
        threads.for_embedder(if embedder.contains("int8") { "int8" } else { "f32" }),
        r.summary.frames,
        allocs as f64 / r.summary.frames as f64,
        unlock
            .map(|u| format!("{:.0} ms", (u.as_secs_f64() - first_frame.as_secs_f64()) * 1000.0))
            .unwrap_or_else(|| "no unlock".into()),
        grant_frames,
        peak_rss_mib()
    );
}

fn main() {
    if let Ok(which) = std::env::var("FACEGATE_BENCH_CHILD") {
        child(&which);
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
    for w in which {
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .env("FACEGATE_BENCH_CHILD", w)
            .status()
            .unwrap();
        assert!(status.success());
    }
}
