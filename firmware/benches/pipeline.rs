//! Benchmark of the face pipeline per stage (decode, detect, landmarks, align, embed, match) on
//! real photos, single thread, for every embedder of the manifest; prints medians and memory.
//!
//! `cargo bench -p facegate --bench pipeline [-- PHOTO_OR_DIR...]` (default: the test photos).
//! Set FACEGATE_BENCH_ROUNDS to change the number of rounds (default 15), and
//! FACEGATE_BENCH_EMBEDDERS to a comma-separated list to bench only those embedders.

use facegate::{decode_file, Embedding, ModelSet, Pipeline};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The median as Python's `statistics.median` has it (mean of the middle two for an even
/// count), so the figures compare with `scripts/dlib_reference.py`'s.
fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

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
        for n in [
            "obama.jpg",
            "obama2.jpg",
            "obama3.jpg",
            "biden.jpg",
            "astronaut.png",
            "32bit.png",
        ] {
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
    println!(
        "facegate pipeline benchmark: {} photos x {rounds} rounds, single thread",
        files.len()
    );
    let only = std::env::var("FACEGATE_BENCH_EMBEDDERS").ok();
    for name in models.manifest.embedders.keys() {
        if only
            .as_deref()
            .is_some_and(|o| !o.split(',').any(|n| n == name))
        {
            continue;
        }
        let mut p = Pipeline::new(&models, Some(name), None).unwrap();
        let gallery: Vec<Embedding> = (0..1000)
            .map(|i| {
                Embedding(
                    (0..128)
                        .map(|j| (((i * 131 + j * 71) % 997) as f32 / 997.0 - 0.5) * 0.2)
                        .collect(),
                )
            })
            .collect();
        // Per stage, per photo, the time of each round.
        let mut t: [Vec<Vec<f64>>; 7] = Default::default();
        for stage in &mut t {
            stage.resize(files.len(), Vec::new());
        }
        let mut rss_after_first = f64::NAN;
        for round in 0..=rounds {
            for (ix, f) in files.iter().enumerate() {
                let t0 = Instant::now();
                let img = decode_file(f).unwrap();
                let t1 = Instant::now();
                let cands = p.detector().propose(&img).unwrap();
                let t2 = Instant::now();
                let dets = p.detector().landmarks(&img, &cands).unwrap();
                let t3 = Instant::now();
                let Some(det) = dets.first() else {
                    panic!("{}: no face", f.display())
                };
                let chip = p.align(&img, det).unwrap();
                let t4 = Instant::now();
                let e = p.embed_chip(&chip).unwrap();
                let t5 = Instant::now();
                let best = gallery
                    .iter()
                    .map(|g| p.distance(&e, g))
                    .fold(f32::INFINITY, f32::min);
                let t6 = Instant::now();
                std::hint::black_box(best);
                if round == 0 {
                    continue; // warm-up: plans for new sizes are built here
                }
                let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
                for (k, (a, b)) in [
                    (t0, t1),
                    (t1, t2),
                    (t2, t3),
                    (t3, t4),
                    (t4, t5),
                    (t5, t6),
                    (t0, t5),
                ]
                .into_iter()
                .enumerate()
                {
                    t[k][ix].push(ms(a, b));
                }
            }
            if round == 1 {
                rss_after_first = rss_mib().0;
            }
        }
        let (rss, peak) = rss_mib();
        let spec = p.embedder_spec();
        println!("\n{name} ({}, {})", spec.quantization, spec.file);
        for (k, label) in [
            "decode",
            "detect (P+R-Net)",
            "landmarks (O-Net)",
            "align",
            "embed",
            "match 1:1000",
            "photo (decode..embed)",
        ]
        .iter()
        .enumerate()
        {
            // A photo's time is its median over the rounds (noise from other processes
            // falls out); the figure is the median over photos, as the reference reports it.
            let per_photo: Vec<f64> = t[k].iter().map(|r| median(r)).collect();
            let mean = per_photo.iter().sum::<f64>() / per_photo.len() as f64;
            println!(
                "  {label:<24} median {:>8.2} ms   mean {mean:>8.2} ms",
                median(&per_photo)
            );
        }
        println!("  memory: RSS after round 1 {rss_after_first:.1} MiB, after round {rounds} {rss:.1} MiB, peak {peak:.1} MiB");
    }
}
