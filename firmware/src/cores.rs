//! How the door uses the cores (`[performance]`): recognition workers, each on a frame of its own,
//! and tract's intra-op thread pool, which splits each network run's matrix products and large
//! element-wise operations over threads.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::num::NonZeroUsize;
use tract_linalg::multithread::{set_default_executor, Executor};

/// Most recognition workers `auto` starts with an int8 embedder: a Raspberry Pi has four cores.
/// Each worker holds its own activations while it runs; with SFace int8 and 1,000 people the
/// daemon peaked at 107 / 112 / 128 / 143 MiB with 1 / 2 / 3 / 4 workers busy (door bench).
pub const MAX_AUTO_WORKERS: usize = 4;
/// Most `auto` workers with an f32 embedder, whose activations are twice as large: SFace f32
/// peaked at 128 / 152 / 178 MiB with 2 / 3 / 4 workers busy, and the door's budget is 150 MB
/// (143 MiB) with 1,000 people.
pub const MAX_AUTO_WORKERS_F32: usize = 2;
/// Most workers a config may ask for.
pub const MAX_WORKERS: usize = 16;

/// `threads` (how many threads run one network) or `workers` (how many frames are recognised at
/// once): `"auto"` or a count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Threads {
    /// At the door, decided from the cores and the embedder's form, see [`door_split`]
    /// (threaded int8 kernels ran slower than one thread: 2-core x86 with VNNI, SFace int8 embed
    /// 28-31 ms on one thread, 40-43 ms on two; f32 30-38 ms on one, 24-30 ms on two). Elsewhere
    /// (the CLI's `--threads auto`), one per core, [`Threads::count`].
    #[default]
    Auto,
    /// Exactly this many (1: everything on the calling thread, no pool).
    Count(NonZeroUsize),
}

impl Threads {
    /// The number of threads this means here: `Auto` is one per core.
    pub fn count(self) -> usize {
        match self {
            Threads::Auto => available(),
            Threads::Count(n) => n.get(),
        }
    }
}

impl std::str::FromStr for Threads {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "auto" {
            return Ok(Threads::Auto);
        }
        s.parse::<NonZeroUsize>()
            .map(Threads::Count)
            .map_err(|_| format!("{s:?} is neither \"auto\" nor a number of threads >= 1"))
    }
}

impl Serialize for Threads {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Threads::Auto => s.serialize_str("auto"),
            Threads::Count(n) => s.serialize_u64(n.get() as u64),
        }
    }
}

impl<'de> Deserialize<'de> for Threads {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => usize::try_from(n)
                .ok()
                .and_then(NonZeroUsize::new)
                .map(Threads::Count)
                .ok_or_else(|| serde::de::Error::custom("threads must be \"auto\" or >= 1")),
            Raw::S(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// `[performance]`: how the door uses the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PerformanceConfig {
    /// Threads per network run: `"auto"` or a number.
    pub threads: Threads,
    /// Frames recognised at once, each by its own worker: `"auto"` or a number (at most
    /// [`MAX_WORKERS`]).
    pub workers: Threads,
}

/// How the door splits `cores` between recognition workers and threads per network run:
/// `(workers, threads)`.
///
/// With both on `auto`, one single-threaded worker per core (at most [`MAX_AUTO_WORKERS`], or
/// [`MAX_AUTO_WORKERS_F32`] with an f32 embedder, for memory): whole frames in parallel scale
/// with the cores, where splitting one small network run over threads bought 1.2x on two cores,
/// and a door slower than its camera then recognises several of the person's frames at once
/// instead of one after the other. One `auto` fills the cores the other leaves.
pub fn door_split(perf: &PerformanceConfig, quantization: &str, cores: usize) -> (usize, usize) {
    let cores = cores.max(1);
    let most = if quantization == "int8" {
        MAX_AUTO_WORKERS
    } else {
        MAX_AUTO_WORKERS_F32
    };
    match (perf.workers, perf.threads) {
        (Threads::Auto, Threads::Auto) => (cores.min(most), 1),
        (Threads::Auto, Threads::Count(t)) => ((cores / t.get()).clamp(1, most), t.get()),
        (Threads::Count(w), Threads::Auto) if quantization == "int8" => (w.get(), 1),
        (Threads::Count(w), Threads::Auto) => (w.get(), (cores / w.get()).max(1)),
        (Threads::Count(w), Threads::Count(t)) => (w.get(), t.get()),
    }
}

/// The cores this process may run on.
pub fn available() -> usize {
    std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

/// Makes every network run of this process use `n` threads (from [`Threads::count`] or
/// [`door_split`]). One thread is no pool: networks run on the caller's thread.
pub fn use_threads(n: usize) -> usize {
    let n = n.max(1);
    set_default_executor(if n > 1 {
        Executor::multithread_with_name(n, "facegate-nn")
    } else {
        Executor::SingleThread
    });
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_parse_from_auto_or_a_count_and_refuse_zero() {
        let p = |t: &str| toml::from_str::<PerformanceConfig>(t).map(|c| c.threads);
        assert_eq!(p("").unwrap(), Threads::Auto);
        assert_eq!(p("threads = \"auto\"").unwrap(), Threads::Auto);
        assert_eq!(p("threads = 4").unwrap().count(), 4);
        assert_eq!(p("threads = \"2\"").unwrap().count(), 2);
        assert!(p("threads = 0").is_err());
        assert!(p("threads = \"many\"").is_err());
        assert!(p("cores = 2").is_err());
        assert!(Threads::Auto.count() >= 1);
        // One worker: `auto` threads are 1 with int8 and every core with f32; a count is kept.
        let perf = |t: &str| toml::from_str::<PerformanceConfig>(t).unwrap();
        let cores = Threads::Auto.count();
        assert_eq!(door_split(&perf("workers = 1"), "int8", cores).1, 1);
        assert_eq!(door_split(&perf("workers = 1"), "f32", cores).1, cores);
        assert_eq!(
            door_split(&perf("workers = 1\nthreads = 3"), "int8", cores).1,
            3
        );
        let back = toml::to_string(&PerformanceConfig {
            threads: Threads::Count(NonZeroUsize::new(3).unwrap()),
            workers: Threads::Auto,
        })
        .unwrap();
        assert_eq!(p(&back).unwrap().count(), 3);
    }

    #[test]
    fn the_door_splits_its_cores_between_workers_and_threads() {
        let p = |t: &str| toml::from_str::<PerformanceConfig>(t).unwrap();
        // A Pi 4 or 5 on auto: four single-threaded workers with int8, two with f32 (memory).
        assert_eq!(door_split(&p(""), "int8", 4), (4, 1));
        assert_eq!(door_split(&p(""), "f32", 4), (2, 1));
        assert_eq!(door_split(&p(""), "int8", 2), (2, 1));
        assert_eq!(door_split(&p(""), "int8", 16), (MAX_AUTO_WORKERS, 1));
        assert_eq!(door_split(&p(""), "f32", 16), (MAX_AUTO_WORKERS_F32, 1));
        assert_eq!(door_split(&p(""), "f32", 0), (1, 1));
        // One fixed, the other fills the cores it leaves.
        assert_eq!(door_split(&p("threads = 2"), "int8", 4), (2, 2));
        assert_eq!(door_split(&p("threads = 2"), "f32", 8), (2, 2));
        assert_eq!(door_split(&p("threads = 8"), "f32", 4), (1, 8));
        assert_eq!(door_split(&p("workers = 1"), "f32", 4), (1, 4));
        assert_eq!(door_split(&p("workers = 1"), "int8", 4), (1, 1));
        assert_eq!(door_split(&p("workers = 3\nthreads = 3"), "f32", 2), (3, 3));
        assert!(toml::from_str::<PerformanceConfig>("workers = 0").is_err());
    }

    /// Recognition workers run clones of one pipeline at the same time: a clone shares the
    /// plans, and its embeddings are the original's to the bit, from any thread.
    #[test]
    fn clones_of_an_embedder_run_side_by_side_give_the_same_bits() {
        use crate::vision::embed::Embedder;
        let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/manifest.toml");
        let models = crate::ModelSet::from_manifest(std::path::Path::new(manifest)).unwrap();
        let spec = &models.manifest.embedders["sface_2021dec_int8"];
        let mut e = Embedder::new(&models, spec).unwrap();
        let s = spec.input_size;
        let chips: Vec<image::RgbImage> = (0..4u32)
            .map(|k| {
                image::RgbImage::from_fn(s, s, |x, y| {
                    image::Rgb([
                        (x * 3 + y + k) as u8,
                        (x * y % 251) as u8,
                        (200 - y / 2) as u8,
                    ])
                })
            })
            .collect();
        let alone: Vec<_> = chips.iter().map(|c| e.embed(c).unwrap()).collect();
        std::thread::scope(|sc| {
            let handles: Vec<_> = (0..4)
                .map(|w| {
                    let mut clone = e.clone();
                    let (chips, alone) = (&chips, &alone);
                    sc.spawn(move || {
                        for round in 0..5 {
                            let i = (w + round) % chips.len();
                            assert_eq!(clone.embed(&chips[i]).unwrap(), alone[i], "worker {w}");
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
        });
    }

    /// A gallery enrolled on one thread count must match faces seen on another: the pool splits
    /// whole output panels between threads, so every sum keeps its order and the embeddings are
    /// the same bits.
    #[test]
    fn embeddings_are_the_same_with_any_number_of_threads() {
        use crate::vision::embed::Embedder;
        use tract_linalg::multithread::multithread_tract_scope;
        let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/manifest.toml");
        let models = crate::ModelSet::from_manifest(std::path::Path::new(manifest)).unwrap();
        for name in ["sface_2021dec_int8", "sface_2021dec_f32"] {
            let spec = &models.manifest.embedders[name];
            let mut e = Embedder::new(&models, spec).unwrap();
            let s = spec.input_size;
            let chip = image::RgbImage::from_fn(s, s, |x, y| {
                image::Rgb([(x * 3 + y) as u8, (x * y % 251) as u8, (200 - y / 2) as u8])
            });
            let one = multithread_tract_scope(Executor::SingleThread, || e.embed(&chip)).unwrap();
            for n in [2, 4] {
                let pool = Executor::multithread(n);
                let many = multithread_tract_scope(pool, || e.embed(&chip)).unwrap();
                assert_eq!(one, many, "{name} with {n} threads");
            }
        }
    }
}
