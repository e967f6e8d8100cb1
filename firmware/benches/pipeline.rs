//! Benchmark of the face pipeline per stage (decode, detect, landmarks, align, embed, match) on
//! real photos, single thread, for every embedder of the manifest; prints medians and memory.
//!
//! `cargo bench -p facegate --bench pipeline [-- PHOTO_OR_DIR...]` (default: the test photos).
//! Set FACEGATE_BENCH_ROUNDS to change the number of rounds (default 15), and
//! FACEGATE_BENCH_EMBEDDERS to a comma-separated list to bench only those embedders.
//! FACEGATE_BENCH_DETECTOR=blazeface finds faces with the door's BlazeFace (landmarks by O-Net on
//! its box) instead of MTCNN's cascade. FACEGATE_BENCH_THREADS: comma-separated thread counts
//! for the networks (`[performance] threads`), each benched in turn (default 1).

use facegate::bench::{time_photos, STAGES};
use facegate::{ModelSet, Pipeline};
use std::path::{Path, PathBuf};

/// Resident and peak resident memory of this process, in MiB (Linux).
fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn photos(args: &[String]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if args.is_empty() {
        for n in facegate_e2e::ONE_FACE_PHOTOS {
            out.push(facegate_e2e::fixture(n));
        }
    }
    for a in args {
        let p = Path::new(a);
        if p.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(p)
                .unwrap()
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension()
                        .is_some_and(|e| e == "jpg" || e == "png" || e == "jpeg")
                })
                .collect();
            v.sort();
            out.extend(v);
        } else {
            out.push(p.to_owned());
        }
    }
    out
}

fn main() {
    // cargo bench passes "--bench"; everything else names photos.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let rounds: usize = std::env::var("FACEGATE_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    let files = photos(&args);
    let models = ModelSet::from_manifest(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/manifest.toml"),
    )
    .unwrap();
    let threads: Vec<usize> = std::env::var("FACEGATE_BENCH_THREADS")
        .unwrap_or_else(|_| "1".into())
        .split(',')
        .map(|t| t.trim().parse().expect("FACEGATE_BENCH_THREADS: numbers"))
        .collect();
    println!(
        "facegate pipeline benchmark: {} photos x {rounds} rounds, networks on {threads:?} thread(s)",
        files.len()
    );
    for t in threads {
        let t = std::num::NonZeroUsize::new(t).expect("threads >= 1");
        facegate::cores::use_threads(t.get());
        bench_embedders(&models, &files, rounds, t.get());
    }
}

fn bench_embedders(models: &ModelSet, files: &[PathBuf], rounds: usize, threads: usize) {
    let only = std::env::var("FACEGATE_BENCH_EMBEDDERS").ok();
    for name in models.manifest.embedders.keys() {
        if only
            .as_deref()
            .is_some_and(|o| !o.split(',').any(|n| n == name))
        {
            continue;
        }
        let mut p = Pipeline::new(models, Some(name), None).unwrap();
        let detector = std::env::var("FACEGATE_BENCH_DETECTOR").unwrap_or_default();
        if detector == "blazeface" {
            p.use_fast_detector(models).unwrap();
        }
        let mut rss_after_first = f64::NAN;
        let times = time_photos(&mut p, files, rounds, |round| {
            if round == 1 {
                rss_after_first = rss_mib().0;
            }
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let (rss, peak) = rss_mib();
        let spec = p.embedder_spec();
        let detector = if detector == "blazeface" {
            "blazeface + O-Net"
        } else {
            "mtcnn"
        };
        println!(
            "\n{name} ({}, {}; detector {detector}; {threads} thread(s))",
            spec.quantization, spec.file
        );
        for (label, (median, mean)) in STAGES.iter().zip(times.summary()) {
            println!("  {label:<24} median {median:>8.2} ms   mean {mean:>8.2} ms");
        }
        println!("  memory: RSS after round 1 {rss_after_first:.1} MiB, after round {rounds} {rss:.1} MiB, peak {peak:.1} MiB");
    }
}
