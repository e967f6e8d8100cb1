//! How many cores the face networks use (`[performance] threads`): tract's intra-op thread pool,
//! which splits each convolution's matrix products and large element-wise operations over the
//! cores.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::num::NonZeroUsize;
use tract_linalg::multithread::{set_default_executor, Executor};

/// `threads`: how many threads run one network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Threads {
    /// What measured fastest: one per core this process may run on (a Raspberry Pi 4 or 5 has
    /// four) with an f32 embedder; one with an int8 embedder, whose threaded kernels ran slower
    /// than one thread (2-core x86 with VNNI: SFace int8 embed 28-31 ms on one thread, 40-43 ms
    /// on two; f32 30-38 ms on one, 24-30 ms on two).
    #[default]
    Auto,
    /// Exactly this many (1: everything on the calling thread, no pool).
    Count(NonZeroUsize),
}

impl Threads {
    /// The number of threads this means here: `Auto` as for an f32 embedder.
    pub fn count(self) -> usize {
        match self {
            Threads::Auto => std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
            Threads::Count(n) => n.get(),
        }
    }

    /// The number of threads this means for an embedder of this quantization ("int8", "f32").
    pub fn for_embedder(self, quantization: &str) -> usize {
        match self {
            Threads::Auto if quantization == "int8" => 1,
            t => t.count(),
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
    /// Threads per network run: `"auto"` (one per core) or a number.
    pub threads: Threads,
}

/// Makes every network run of this process use `n` threads (from [`Threads::count`] or
/// [`Threads::for_embedder`]). One thread is no pool: networks run on the caller's thread.
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
        assert_eq!(Threads::Auto.for_embedder("int8"), 1);
        assert_eq!(Threads::Auto.for_embedder("f32"), Threads::Auto.count());
        assert_eq!(p("threads = 3").unwrap().for_embedder("int8"), 3);
        let back = toml::to_string(&PerformanceConfig {
            threads: Threads::Count(NonZeroUsize::new(3).unwrap()),
        })
        .unwrap();
        assert_eq!(p(&back).unwrap().count(), 3);
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
