//! The employee gallery: who is enrolled and their face embeddings, stored in one TOML file that
//! is written atomically under a lock, matched 1:N, and reloaded live when it changes.
//!
//! The file holds biometric data: it is created 0600, and every write goes to a temporary file
//! in the same directory that is fsynced and renamed over the old one (then the directory is
//! fsynced), so a crash at any moment leaves the old gallery or the new one, never a torn one.
//! Writers serialise on an exclusive lock of `<gallery>.lock`. Each enrolment's face crop lives
//! beside the file in a [`CropStore`] that every save keeps in step with the gallery.

use crate::crops::{CropStore, EncodedCrop};
use crate::fs::FileError;
use crate::models::{EmbedderManifest, Metric};
use crate::vision::embed::Embedding;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Version of the file format written by this code: 2 adds each enrolment's face crop.
pub const FORMAT: u32 = 2;
/// Versions this code reads (a format 1 file has no crops).
const READABLE: [u32; 2] = [1, 2];

/// Errors of the gallery.
#[derive(Debug, thiserror::Error)]
pub enum GalleryError {
    /// The gallery file (or its lock or directory) could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The file is not a valid gallery.
    #[error("{path}: not a valid gallery file: {message}")]
    Parse {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The gallery was made with another embedding model: its distances mean nothing here.
    #[error(
        "{path} was enrolled with model {found:?}, but this facegate runs {expected:?}: \
         embeddings of different models cannot be compared; move the gallery to this model with \
         `facegate reembed --embedder NAME` (NAME: this model's name in the manifest; people \
         enrolled without a face crop must be re-enrolled), or point --models/--embedder at the \
         model the gallery was made with"
    )]
    ModelMismatch {
        /// The file concerned.
        path: PathBuf,
        /// Fingerprint of the running model.
        expected: String,
        /// Fingerprint stored in the gallery.
        found: String,
    },
    /// No person has that id.
    #[error("no enrolled person has id {0:?}")]
    UnknownId(String),
    /// The id is taken, or not usable.
    #[error("{0}")]
    BadId(String),
}

/// One enrolled photo's embedding, where it came from, and its face crop (never the photo
/// itself).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enrolment {
    /// When it was enrolled (RFC 3339, UTC).
    pub enrolled_at: String,
    /// File name of the photo.
    pub source: String,
    /// sha256 of the photo file.
    pub sha256: String,
    /// The face embedding, stored as base64 of little-endian f32: exact, and a 10,000-person
    /// gallery parses ~10x faster than as decimal floats.
    #[serde(with = "embedding_b64")]
    pub embedding: Vec<f32>,
    /// The face crop in the gallery's [`CropStore`], from which another network can embed this
    /// face; `None` for enrolments made before crops were kept (format 1): those cannot be
    /// re-embedded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crop: Option<crate::crops::CropRef>,
}

mod embedding_b64 {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[f32], s: S) -> Result<S::Ok, S::Error> {
        let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f32>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(|e| serde::de::Error::custom(format!("embedding is not base64: {e}")))?;
        if bytes.len() % 4 != 0 {
            return Err(serde::de::Error::custom(
                "embedding length is not a whole number of f32",
            ));
        }
        Ok(bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

/// An enrolled person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Person {
    /// Stable identifier (letters, digits, '-', '_', '.').
    pub id: String,
    /// Display name.
    pub name: String,
    /// One entry per enrolled photo.
    pub enrolments: Vec<Enrolment>,
    /// When the person may come in (`[person.policy]`; absent: always).
    #[serde(default, skip_serializing_if = "crate::policy::Policy::is_open")]
    pub policy: crate::policy::Policy,
    /// The card credential sent to the panel in reader mode (`[output] mode = "wiegand"`);
    /// absent in galleries written before reader mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<crate::credential::Credential>,
}

/// The gallery file's contents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gallery {
    /// File format version.
    pub format: u32,
    /// Fingerprint of the embedding model every embedding was made with.
    pub model: String,
    /// The enrolled people, in enrolment order.
    #[serde(default, rename = "person")]
    pub people: Vec<Person>,
}

/// The result of a 1:N search.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Match {
    /// Index of the nearest person in [`Gallery::people`].
    pub person: usize,
    /// Distance to that person's nearest embedding.
    pub distance: f32,
    /// How much farther the second-nearest *person* is (infinite with a single person).
    pub margin: f32,
}

impl Gallery {
    /// An empty gallery for the model with fingerprint `model`.
    pub fn new(model: &str) -> Self {
        Self {
            format: FORMAT,
            model: model.to_owned(),
            people: Vec::new(),
        }
    }

    /// Parses gallery text; `path` names it in errors. The model fingerprint must be `model`.
    pub fn parse(text: &str, path: &Path, model: &str) -> Result<Self, GalleryError> {
        let g = Self::parse_any_model(text, path)?;
        if g.model != model {
            return Err(GalleryError::ModelMismatch {
                path: path.to_owned(),
                expected: model.to_owned(),
                found: g.model,
            });
        }
        Ok(g)
    }

    /// Parses gallery text of whatever model (to move it to another one); `path` names it in
    /// errors. An older format is upgraded in memory, so the next save writes [`FORMAT`].
    pub fn parse_any_model(text: &str, path: &Path) -> Result<Self, GalleryError> {
        let parse_err = |message: String| GalleryError::Parse {
            path: path.to_owned(),
            message,
        };
        let mut g: Gallery = toml::from_str(text).map_err(|e| parse_err(e.to_string()))?;
        if !READABLE.contains(&g.format) {
            return Err(parse_err(format!(
                "format {} is not supported (this facegate reads {READABLE:?})",
                g.format
            )));
        }
        g.format = FORMAT;
        let mut seen = std::collections::HashSet::new();
        for p in &g.people {
            validate_id(&p.id).map_err(|e| parse_err(e.to_string()))?;
            if !seen.insert(p.id.as_str()) {
                return Err(parse_err(format!("id {:?} appears twice", p.id)));
            }
            if let Some(c) = &p.credential {
                c.check()
                    .map_err(|m| parse_err(format!("person {:?}: {m}", p.id)))?;
                // Two people with one card: the panel could not tell them apart.
                if let Some(q) = g
                    .people
                    .iter()
                    .find(|q| q.id != p.id && q.credential == Some(*c))
                {
                    return Err(parse_err(format!(
                        "persons {:?} and {:?} have the same credential ({c})",
                        p.id, q.id
                    )));
                }
            }
            let dim = g
                .people
                .first()
                .and_then(|q| q.enrolments.first())
                .map(|e| e.embedding.len());
            for e in &p.enrolments {
                // Fuzzing found that an empty embedding (`embedding = ""`) was accepted and
                // gave a zero-length index, which panicked when searched.
                if e.embedding.is_empty() {
                    return Err(parse_err(format!(
                        "person {:?} has an empty embedding",
                        p.id
                    )));
                }
                if Some(e.embedding.len()) != dim || !e.embedding.iter().all(|v| v.is_finite()) {
                    return Err(parse_err(format!("person {:?} has an embedding of the wrong length or with non-finite values", p.id)));
                }
                if let Some(c) = &e.crop {
                    c.validate()
                        .map_err(|m| parse_err(format!("person {:?}: {m}", p.id)))?;
                }
            }
        }
        Ok(g)
    }

    /// Loads the gallery at `path`; a missing file is an empty gallery.
    pub fn load(path: &Path, model: &str) -> Result<Self, GalleryError> {
        match read_gallery(path)? {
            Some(text) => Self::parse(&text, path, model),
            None => Ok(Self::new(model)),
        }
    }

    /// Loads the gallery at `path` whatever its model; `None` when there is no file.
    pub fn load_any_model(path: &Path) -> Result<Option<Self>, GalleryError> {
        read_gallery(path)?
            .map(|text| Self::parse_any_model(&text, path))
            .transpose()
    }

    /// The person with id `id`.
    pub fn get(&self, id: &str) -> Option<&Person> {
        self.people.iter().find(|p| p.id == id)
    }

    /// Mutable access to the person with id `id`.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut Person> {
        self.people.iter_mut().find(|p| p.id == id)
    }

    /// Removes the person with id `id` and returns them.
    pub fn remove(&mut self, id: &str) -> Result<Person, GalleryError> {
        let i = self
            .people
            .iter()
            .position(|p| p.id == id)
            .ok_or_else(|| GalleryError::UnknownId(id.to_owned()))?;
        Ok(self.people.remove(i))
    }

    /// A new id derived from `name` that no one has yet ("ada-lovelace", "ada-lovelace-2"...).
    pub fn new_id(&self, name: &str) -> String {
        let mut base: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect::<String>()
            .split('-')
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("-");
        if base.is_empty() {
            base = "person".into();
        }
        let mut id = base.clone();
        let mut n = 2;
        while self.get(&id).is_some() {
            id = format!("{base}-{n}");
            n += 1;
        }
        id
    }

    /// A flat index of every embedding, for fast 1:N matching under `scoring` (the embedder's
    /// metric and normalisation: see [`Scoring::of`]).
    pub fn index(&self, scoring: Scoring) -> Index {
        let dim = self
            .people
            .iter()
            .flat_map(|p| &p.enrolments)
            .map(|e| e.embedding.len())
            .next()
            .unwrap_or(0);
        let mut data = Vec::new();
        let mut owner = Vec::new();
        for (i, p) in self.people.iter().enumerate() {
            for e in &p.enrolments {
                let start = data.len();
                data.extend_from_slice(&e.embedding);
                if scoring.unit() && !normalize(&mut data[start..]) {
                    // A zero vector has no direction: under cosine it matches no one.
                    data.truncate(start);
                    continue;
                }
                owner.push(i);
            }
        }
        let coarse = data.iter().map(|&v| to_bf16(v)).collect();
        // Rounding to bf16 moves each value by at most 2^-9 of itself, so a row by at most
        // 2^-9 of its norm: that bounds the coarse pass's distance error (triangle inequality).
        let max_norm = data
            .chunks_exact(dim.max(1))
            .map(|r| r.iter().map(|v| v * v).sum::<f32>().sqrt())
            .fold(0.0, f32::max);
        Index {
            dim,
            data,
            coarse,
            error: max_norm / 512.0 * 1.01,
            owner,
            people: self.people.len(),
            scoring,
        }
    }
}

/// How embeddings are compared: the embedder's metric, and whether they are scaled to unit
/// length first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scoring {
    /// The distance reported.
    pub metric: Metric,
    /// Scale embeddings to unit length before comparing (always done under cosine).
    pub normalize: bool,
}

impl Scoring {
    /// Plain Euclidean distance between the embeddings as stored (dlib's networks).
    pub const EUCLIDEAN: Scoring = Scoring {
        metric: Metric::Euclidean,
        normalize: false,
    };
    /// Cosine distance (1 - cosine similarity).
    pub const COSINE: Scoring = Scoring {
        metric: Metric::Cosine,
        normalize: true,
    };

    /// The scoring of the embedder described by `spec`.
    pub fn of(spec: &EmbedderManifest) -> Self {
        Self {
            metric: spec.metric,
            normalize: spec.normalize,
        }
    }

    /// Whether rows and queries are scaled to unit length: for cosine, because on unit vectors
    /// cosine distance is |a - b|^2 / 2, so the Euclidean search below serves both metrics.
    fn unit(self) -> bool {
        self.normalize || self.metric == Metric::Cosine
    }

    /// The reported distance for a squared Euclidean distance between (prepared) vectors.
    fn distance(self, squared: f32) -> f32 {
        match self.metric {
            Metric::Euclidean => squared.sqrt(),
            Metric::Cosine => squared / 2.0,
        }
    }
}

/// Scales `v` to unit length; false if it has no length (zero or not finite).
fn normalize(v: &mut [f32]) -> bool {
    let n = v.iter().map(|a| a * a).sum::<f32>().sqrt();
    if !(n.is_finite() && n > 0.0) {
        return false;
    }
    v.iter_mut().for_each(|a| *a /= n);
    true
}

/// Every embedding of a gallery in one contiguous array, for 1:N matching under the embedder's
/// metric (Euclidean, or cosine on unit-length copies of the embeddings).
///
/// A search first scans a bfloat16 copy (half the memory traffic, which is what bounds a large
/// gallery's search), then recomputes in f32 the people the coarse pass cannot rule out, so the
/// result is exact.
#[derive(Debug, Clone)]
pub struct Index {
    dim: usize,
    data: Vec<f32>,
    coarse: Vec<u16>,
    /// Upper bound of |coarse distance - exact distance| (Euclidean, on the prepared vectors).
    error: f32,
    owner: Vec<usize>,
    people: usize,
    scoring: Scoring,
}

impl Default for Index {
    fn default() -> Self {
        Gallery::new("").index(Scoring::EUCLIDEAN)
    }
}

/// f32 to bfloat16 bits, rounding to nearest even.
fn to_bf16(v: f32) -> u16 {
    let bits = v.to_bits();
    ((bits + 0x7fff + ((bits >> 16) & 1)) >> 16) as u16
}

impl Index {
    /// Number of embeddings.
    pub fn len(&self) -> usize {
        self.owner.len()
    }

    /// Whether no one is enrolled.
    pub fn is_empty(&self) -> bool {
        self.owner.is_empty()
    }

    /// How this index compares embeddings.
    pub fn scoring(&self) -> Scoring {
        self.scoring
    }

    /// The nearest person to `query` and the margin to the second-nearest person, in the
    /// index's metric. `None` when the gallery is empty, the query has another length or is
    /// not finite, or (under cosine) has no direction.
    pub fn best(&self, query: &Embedding) -> Option<Match> {
        if self.is_empty() || self.dim == 0 || query.0.len() != self.dim {
            return None;
        }
        let mut q = query.0.clone();
        if self.scoring.unit() && !normalize(&mut q) {
            return None;
        }
        // Coarse pass: squared bf16 distances, best per person.
        let mut coarse = vec![f32::INFINITY; self.people];
        coarse_scan(&self.coarse, self.dim, &self.owner, &q, &mut coarse);
        let (mut c1, mut c2) = (f32::INFINITY, f32::INFINITY);
        for &d in &coarse {
            if d < c1 {
                c2 = c1;
                c1 = d;
            } else if d < c2 {
                c2 = d;
            }
        }
        // Exact pass over the people who may still be first or second: coarse distance within
        // twice the error bound of the coarse runner-up. Squared distances; sqrt only at the end.
        let limit = (c2.sqrt() + 2.0 * self.error).powi(2);
        let mut best = vec![f32::INFINITY; self.people];
        for (row, &who) in self.data.chunks_exact(self.dim).zip(&self.owner) {
            if coarse[who] <= limit {
                let d = squared_distance(row, &q);
                if d < best[who] {
                    best[who] = d;
                }
            }
        }
        let (mut first, mut second) = ((usize::MAX, f32::INFINITY), f32::INFINITY);
        for (i, &d) in best.iter().enumerate() {
            if d < first.1 {
                second = first.1;
                first = (i, d);
            } else if d < second {
                second = d;
            }
        }
        // A query with NaN in it compares with nothing: no match rather than a bogus person.
        if first.0 == usize::MAX {
            return None;
        }
        let distance = self.scoring.distance(first.1);
        Some(Match {
            person: first.0,
            distance,
            margin: self.scoring.distance(second) - distance,
        })
    }
}

/// Squared Euclidean distance with 8 independent accumulators, so the compiler vectorises it
/// (a single running sum is sequential under IEEE rules).
fn squared_distance(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| (x - y) * (x - y))
        .sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            let d = x[k] - y[k];
            acc[k] += d * d;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// The coarse pass over every row, compiled for AVX2+FMA when the CPU has them: it is
/// compute-bound, and the baseline x86-64 target only has 4-wide SSE2.
fn coarse_scan(rows: &[u16], dim: usize, owner: &[usize], query: &[f32], best: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports the features the function is compiled for (checked above).
        unsafe { coarse_scan_avx2(rows, dim, owner, query, best) };
        return;
    }
    coarse_scan_portable(rows, dim, owner, query, best);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn coarse_scan_avx2(rows: &[u16], dim: usize, owner: &[usize], query: &[f32], best: &mut [f32]) {
    coarse_scan_portable(rows, dim, owner, query, best);
}

#[inline(always)]
fn coarse_scan_portable(
    rows: &[u16],
    dim: usize,
    owner: &[usize],
    query: &[f32],
    best: &mut [f32],
) {
    for (row, &who) in rows.chunks_exact(dim).zip(owner) {
        let d = squared_distance_bf16(row, query);
        if d < best[who] {
            best[who] = d;
        }
    }
}

/// [`squared_distance`] with `a` in bfloat16.
#[inline(always)]
fn squared_distance_bf16(a: &[u16], b: &[f32]) -> f32 {
    let widen = |x: u16| f32::from_bits(u32::from(x) << 16);
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(&x, y)| (widen(x) - y).powi(2))
        .sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            let d = widen(x[k]) - y[k];
            acc[k] += d * d;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// The text of the gallery file; `None` if there is none.
fn read_gallery(path: &Path) -> Result<Option<String>, GalleryError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(GalleryError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Checks that an id is usable in file names, logs and command lines.
pub fn validate_id(id: &str) -> Result<(), GalleryError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !id.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(GalleryError::BadId(format!(
            "id {id:?} must be 1-64 letters, digits, '-', '_' or '.', not starting with '.'"
        )))
    }
}

/// Exclusive access to a gallery file for a read-modify-write; released on drop.
pub struct Locked {
    path: PathBuf,
    _lock: std::fs::File,
}

impl Locked {
    /// Takes the exclusive lock of the gallery at `path` (waits for another writer to finish).
    pub fn acquire(path: &Path) -> Result<Self, GalleryError> {
        let io = |source| GalleryError::Io {
            path: lock_path(path),
            source,
        };
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(lock_path(path))
            .map_err(io)?;
        lock.lock().map_err(io)?;
        Ok(Self {
            path: path.to_owned(),
            _lock: lock,
        })
    }

    /// Loads the gallery (see [`Gallery::load`]).
    pub fn load(&self, model: &str) -> Result<Gallery, GalleryError> {
        Gallery::load(&self.path, model)
    }

    /// Replaces the gallery file atomically with `gallery`, then deletes the face crops it no
    /// longer refers to.
    pub fn save(&self, gallery: &Gallery) -> Result<(), GalleryError> {
        self.save_with_crops(gallery, [])
    }

    /// Writes the new enrolments' `crops` into the crop store, then saves `gallery` (which
    /// refers to them) like [`Locked::save`]: a crash leaves at worst unreferenced crops, which
    /// the next save deletes, never a gallery entry without its crop.
    pub fn save_with_crops<'a>(
        &self,
        gallery: &Gallery,
        crops: impl IntoIterator<Item = &'a EncodedCrop>,
    ) -> Result<(), GalleryError> {
        let store = self.crops();
        for c in crops {
            store.put(c)?;
        }
        let text = toml::to_string(gallery).map_err(|e| GalleryError::Parse {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        write_atomic(&self.path, text.as_bytes())?;
        let referenced = gallery
            .people
            .iter()
            .flat_map(|p| &p.enrolments)
            .filter_map(|e| e.crop.as_ref());
        store.prune(referenced)?;
        Ok(())
    }

    /// The gallery's face crops.
    pub fn crops(&self) -> CropStore {
        CropStore::for_gallery(&self.path)
    }
}

fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".lock");
    path.with_file_name(name)
}

/// Writes `bytes` to `path` atomically ([`crate::fs::write_atomic`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), GalleryError> {
    Ok(crate::fs::write_atomic(path, bytes)?)
}

impl From<FileError> for GalleryError {
    fn from(e: FileError) -> Self {
        GalleryError::Io {
            path: e.path,
            source: e.source,
        }
    }
}

/// Keeps the last good gallery of a file and reloads it when the file changes.
///
/// Change detection is a `stat` per [`Reloader::poll`]: enrolment tools replace the file by
/// rename, which changes its inode, so nothing is missed and no watcher thread is needed. A file
/// that fails to load is refused (the error is returned and logged) and the last good gallery
/// stays in use.
pub struct Reloader {
    path: PathBuf,
    model: String,
    scoring: Scoring,
    stamp: Option<Stamp>,
    gallery: Gallery,
    /// Shared with the recognition thread, which gets the new one after a reload.
    index: Arc<Index>,
}

#[derive(Debug, Clone, PartialEq)]
struct Stamp {
    ino: u64,
    len: u64,
    mtime: Option<std::time::SystemTime>,
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        ino: m.ino(),
        len: m.len(),
        mtime: m.modified().ok(),
    })
}

impl Reloader {
    /// Loads the gallery at `path` for the model with fingerprint `model`, matched under
    /// `scoring`; it must load now.
    pub fn new(path: &Path, model: &str, scoring: Scoring) -> Result<Self, GalleryError> {
        let stamp = stamp(path);
        let gallery = Gallery::load(path, model)?;
        let index = Arc::new(gallery.index(scoring));
        Ok(Self {
            path: path.to_owned(),
            model: model.to_owned(),
            scoring,
            stamp,
            gallery,
            index,
        })
    }

    /// Like [`Reloader::new`], but a gallery that does not load now is an empty gallery (and
    /// the error), so a daemon can run, lock the door and pick the gallery up once it is fixed.
    pub fn new_or_empty(
        path: &Path,
        model: &str,
        scoring: Scoring,
    ) -> (Self, Option<GalleryError>) {
        match Self::new(path, model, scoring) {
            Ok(r) => (r, None),
            Err(e) => {
                let gallery = Gallery::new(model);
                let index = Arc::new(gallery.index(scoring));
                let r = Self {
                    path: path.to_owned(),
                    model: model.to_owned(),
                    scoring,
                    // The broken file's stamp: it is tried again once it changes.
                    stamp: stamp(path),
                    gallery,
                    index,
                };
                (r, Some(e))
            }
        }
    }

    /// The gallery file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reloads if the file changed (or `force`). `Ok(true)` when a new gallery is in use; an
    /// error leaves the last good one in use.
    pub fn poll(&mut self, force: bool) -> Result<bool, GalleryError> {
        let now = stamp(&self.path);
        if !force && now == self.stamp {
            return Ok(false);
        }
        self.stamp = now;
        match Gallery::load(&self.path, &self.model) {
            Ok(g) => {
                self.index = Arc::new(g.index(self.scoring));
                self.gallery = g;
                tracing::info!(path = %self.path.display(), people = self.gallery.people.len(), "gallery reloaded");
                Ok(true)
            }
            Err(e) => {
                tracing::error!("refusing the changed gallery, keeping the last good one: {e}");
                Err(e)
            }
        }
    }

    /// The gallery in use.
    pub fn gallery(&self) -> &Gallery {
        &self.gallery
    }

    /// Its matching index.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// Its matching index, to share with another thread (replaced, not changed, on reload).
    pub fn shared_index(&self) -> Arc<Index> {
        Arc::clone(&self.index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const MODEL: &str = "test-model/0123";

    fn emb(seed: u32) -> Vec<f32> {
        (0..128)
            .map(|j| ((seed * 7919 + j * 104_729) % 1000) as f32 / 1000.0 - 0.5)
            .collect()
    }

    fn person(g: &Gallery, name: &str, seeds: &[u32]) -> Person {
        Person {
            policy: Default::default(),
            id: g.new_id(name),
            name: name.into(),
            enrolments: seeds
                .iter()
                .map(|&s| Enrolment {
                    enrolled_at: "2026-11-28T00:00:00Z".into(),
                    source: format!("{s}.jpg"),
                    sha256: "00".repeat(32),
                    embedding: emb(s),
                    crop: None,
                })
                .collect(),
            credential: None,
        }
    }

    fn sample(n: usize) -> Gallery {
        let mut g = Gallery::new(MODEL);
        for i in 0..n {
            let p = person(
                &g,
                &format!("Person {i}"),
                &[i as u32 * 3, i as u32 * 3 + 1],
            );
            g.people.push(p);
        }
        g
    }

    #[test]
    fn save_and_load_round_trip_with_private_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gallery.toml");
        let g = sample(3);
        Locked::acquire(&path).unwrap().save(&g).unwrap();
        assert_eq!(Gallery::load(&path, MODEL).unwrap(), g);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "biometric data must not be world-readable");
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn a_missing_file_is_an_empty_gallery() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Gallery::load(&dir.path().join("none.toml"), MODEL)
            .unwrap()
            .people
            .is_empty());
    }

    #[test]
    fn another_models_gallery_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.toml");
        Locked::acquire(&path).unwrap().save(&sample(1)).unwrap();
        let err = Gallery::load(&path, "other-model/999").unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, GalleryError::ModelMismatch { .. }));
        assert!(
            msg.contains("test-model/0123") && msg.contains("re-enrol"),
            "{msg}"
        );
    }

    #[test]
    fn malformed_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.toml");
        for text in [
            "this is not toml [",
            "format = 1\nmodel = \"test-model/0123\"\nunknown = 3\n",
            "format = 3\nmodel = \"test-model/0123\"\n",
            "format = 2\nmodel = \"test-model/0123\"\n[[person]]\nid = \"a\"\nname = \"A\"\nenrolments = [{ enrolled_at = \"x\", source = \"s\", sha256 = \"h\", embedding = \"AACAPw==\", crop = \"../../etc/passwd:AACAPwAAgD8AAIA/AACAPwAAgD8AAIA/AACAPwAAgD8AAIA/AACAPw==\" }]\n",
            "format = 1\nmodel = \"test-model/0123\"\n[[person]]\nid = \"a\"\nname = \"A\"\nenrolments = [{ enrolled_at = \"x\", source = \"s\", sha256 = \"h\", embedding = \"AACAPw==\" }, { enrolled_at = \"x\", source = \"s\", sha256 = \"h\", embedding = \"AACAPwAAAEA=\" }]\n",
            "format = 1\nmodel = \"test-model/0123\"\n[[person]]\nid = \"../etc\"\nname = \"A\"\nenrolments = []\n",
        ] {
            std::fs::write(&path, text).unwrap();
            assert!(matches!(Gallery::load(&path, MODEL), Err(GalleryError::Parse { .. })), "accepted: {text}");
        }
    }

    #[test]
    fn an_empty_embedding_is_refused_and_a_zero_length_index_finds_no_one() {
        // Found by fuzzing (fuzz/regressions/gallery/): `embedding = ""` was accepted, and
        // searching the zero-length index panicked.
        let text = format!(
            "format = 2\nmodel = \"{MODEL}\"\n[[person]]\nid = \"ada\"\nname = \"Ada\"\n\
             [[person.enrolments]]\nenrolled_at = \"2026-01-02T03:04:05Z\"\nsource = \"a.jpg\"\n\
             sha256 = \"{}\"\nembedding = \"\"\n",
            "ab".repeat(32)
        );
        let err = Gallery::parse(&text, Path::new("g.toml"), MODEL).unwrap_err();
        assert!(err.to_string().contains("empty embedding"), "{err}");
        let mut g = sample(2);
        for e in g.people.iter_mut().flat_map(|p| &mut p.enrolments) {
            e.embedding.clear();
        }
        for scoring in [Scoring::EUCLIDEAN, Scoring::COSINE] {
            assert!(g.index(scoring).best(&Embedding(Vec::new())).is_none());
        }
    }

    #[test]
    fn best_match_reports_distance_and_margin_over_the_next_person() {
        let mut g = Gallery::new(MODEL);
        let a = person(&g, "Ada", &[1, 2]);
        g.people.push(a);
        let b = person(&g, "Bob", &[50]);
        g.people.push(b);
        let index = g.index(Scoring::EUCLIDEAN);
        assert_eq!(index.len(), 3);
        let q = Embedding(emb(2));
        let m = index.best(&q).unwrap();
        assert_eq!(g.people[m.person].name, "Ada");
        assert!(m.distance < 1e-6);
        let to_bob = q.distance(&Embedding(emb(50)), Metric::Euclidean);
        assert!(
            (m.margin - to_bob).abs() < 1e-4,
            "margin {} vs {to_bob}",
            m.margin
        );
        // Ada's other photo is not the runner-up: the margin is over another person.
        let to_ada_other = q.distance(&Embedding(emb(1)), Metric::Euclidean);
        assert!(
            (to_ada_other - to_bob).abs() > 1e-3,
            "test embeddings must differ"
        );
        assert!(Gallery::new(MODEL)
            .index(Scoring::EUCLIDEAN)
            .best(&q)
            .is_none());
        assert!(index.best(&Embedding(vec![0.0; 3])).is_none());
    }

    /// The nearest person and margin by brute force: every enrolment, exact distances.
    fn brute_force(g: &Gallery, q: &Embedding, metric: Metric) -> (Vec<f32>, usize, f32, f32) {
        let per: Vec<f32> = g
            .people
            .iter()
            .map(|p| {
                p.enrolments
                    .iter()
                    .map(|e| q.distance(&Embedding(e.embedding.clone()), metric))
                    .fold(f32::INFINITY, f32::min)
            })
            .collect();
        let first = (0..per.len())
            .min_by(|&a, &b| per[a].total_cmp(&per[b]))
            .unwrap();
        let second = (0..per.len())
            .filter(|&i| i != first)
            .map(|i| per[i])
            .fold(f32::INFINITY, f32::min);
        let d1 = per[first];
        (per, first, d1, second)
    }

    #[test]
    fn the_two_pass_search_is_exact_for_both_metrics() {
        let g = sample(300);
        for scoring in [Scoring::EUCLIDEAN, Scoring::COSINE] {
            let index = g.index(scoring);
            assert_eq!(index.scoring(), scoring);
            for s in 0..200u32 {
                let q = Embedding(emb(s * 13 + 5).iter().map(|v| v * 0.97 + 0.001).collect());
                let (per, first, d1, d2) = brute_force(&g, &q, scoring.metric);
                let m = index.best(&q).unwrap();
                // Rounding may reorder an exact tie, never anything farther apart.
                assert!(
                    m.person == first || (per[m.person] - d1).abs() < 1e-5,
                    "{scoring:?}: {m:?}, brute force person {first} at {d1}"
                );
                assert!(
                    (m.distance - d1).abs() < 1e-4 && (m.margin - (d2 - d1)).abs() < 1e-4,
                    "{scoring:?}: {m:?} vs {d1} {d2}"
                );
            }
        }
    }

    #[test]
    fn cosine_matching_ignores_length_and_reports_cosine_distance() {
        // Stored embeddings stay as the network gave them (any length); the index normalises.
        let mut g = sample(50);
        for (k, p) in g.people.iter_mut().enumerate() {
            for e in &mut p.enrolments {
                e.embedding.iter_mut().for_each(|v| *v *= 1.0 + k as f32);
            }
        }
        let stored = g.clone();
        let index = g.index(Scoring::COSINE);
        assert_eq!(g, stored, "indexing must not change the gallery");
        // A longer copy of person 7's second photo: cosine distance 0, far in Euclidean terms.
        let q = Embedding(
            g.people[7].enrolments[1]
                .embedding
                .iter()
                .map(|v| v * 3.0)
                .collect(),
        );
        let m = index.best(&q).unwrap();
        assert_eq!(m.person, 7);
        assert!(m.distance.abs() < 1e-5, "{m:?}");
        let (_, _, _, d2) = brute_force(&g, &q, Metric::Cosine);
        assert!((m.margin - d2).abs() < 1e-4, "{m:?} vs {d2}");
        let e = g.index(Scoring::EUCLIDEAN).best(&q).unwrap();
        assert!(e.distance > 1.0, "Euclidean sees the length: {e:?}");
        // Orthogonal is 1, opposite is 2; a query without direction matches no one.
        let mut h = Gallery::new(MODEL);
        h.people.push(Person {
            policy: Default::default(),
            id: "x".into(),
            name: "X".into(),
            enrolments: vec![Enrolment {
                embedding: vec![2.0, 0.0],
                ..sample(1).people[0].enrolments[0].clone()
            }],
            credential: None,
        });
        let hi = h.index(Scoring::COSINE);
        let d = |v: Vec<f32>| hi.best(&Embedding(v)).map(|m| m.distance);
        assert!((d(vec![0.0, 5.0]).unwrap() - 1.0).abs() < 1e-6);
        assert!((d(vec![-1.0, 0.0]).unwrap() - 2.0).abs() < 1e-6);
        assert_eq!(d(vec![0.0, 0.0]), None);
        assert_eq!(d(vec![f32::NAN, 1.0]), None);
        assert_eq!(
            h.index(Scoring::EUCLIDEAN)
                .best(&Embedding(vec![f32::NAN, 1.0])),
            None
        );
    }

    #[test]
    fn ids_are_unique_and_safe() {
        let mut g = Gallery::new(MODEL);
        assert_eq!(g.new_id("Ada Lovelace"), "ada-lovelace");
        let p = person(&g, "Ada Lovelace", &[1]);
        g.people.push(p);
        assert_eq!(g.new_id("Ada  Lovelace!"), "ada-lovelace-2");
        assert_eq!(g.new_id("李"), "person");
        assert!(
            validate_id("../x").is_err()
                && validate_id("").is_err()
                && validate_id("ok_id-1.2").is_ok()
        );
    }

    #[test]
    fn concurrent_writers_do_not_lose_updates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.toml");
        let threads: Vec<_> = (0..2)
            .map(|t| {
                let path = path.clone();
                std::thread::spawn(move || {
                    for i in 0..15 {
                        let lock = Locked::acquire(&path).unwrap();
                        let mut g = lock.load(MODEL).unwrap();
                        let p = person(&g, &format!("t{t} p{i}"), &[t * 100 + i]);
                        g.people.push(p);
                        lock.save(&g).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(Gallery::load(&path, MODEL).unwrap().people.len(), 30);
    }

    /// Child side of the crash test: rewrites the gallery forever (until killed).
    #[test]
    fn crash_writer_child() {
        let Some(path) = std::env::var_os("FACEGATE_CRASH_WRITER") else {
            return;
        };
        let path = PathBuf::from(path);
        let crops = crops(16);
        let (small, large) = (with_crops(40, &crops[..8]), with_crops(80, &crops));
        println!("ready");
        for i in 0.. {
            let lock = Locked::acquire(&path).unwrap();
            lock.save_with_crops(if i % 2 == 0 { &small } else { &large }, &crops)
                .unwrap();
        }
    }

    /// `n` distinct encoded crops.
    fn crops(n: usize) -> Vec<EncodedCrop> {
        (0..n)
            .map(|i| {
                let image = image::RgbImage::from_fn(
                    crate::crops::CROP_SIZE,
                    crate::crops::CROP_SIZE,
                    |x, y| image::Rgb([i as u8, (x * y % 256) as u8, 7]),
                );
                let c = crate::crops::FaceCrop {
                    image,
                    landmarks: crate::crops::CROP_TEMPLATE,
                };
                c.encode().unwrap()
            })
            .collect()
    }

    /// `sample(n)` whose people's first photos refer to the first `n` of `crops`.
    fn with_crops(n: usize, crops: &[EncodedCrop]) -> Gallery {
        let mut g = sample(n);
        for (p, c) in g.people.iter_mut().zip(crops) {
            p.enrolments[0].crop = Some(c.reference.clone());
        }
        g
    }

    /// Whether every crop `g` refers to is in the store of the gallery at `path`.
    fn crops_present(g: &Gallery, path: &Path) -> bool {
        let store = CropStore::for_gallery(path);
        g.people
            .iter()
            .flat_map(|p| &p.enrolments)
            .filter_map(|e| e.crop.as_ref())
            .all(|c| store.get(c).is_ok())
    }

    #[test]
    fn crops_are_written_before_the_gallery_and_deleted_with_their_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gallery.toml");
        let lock = Locked::acquire(&path).unwrap();
        let c = crops(3);
        let mut g = with_crops(3, &c);
        lock.save_with_crops(&g, &c).unwrap();
        assert_eq!(Gallery::load(&path, MODEL).unwrap(), g);
        assert!(crops_present(&g, &path));
        let store = lock.crops();
        let files = || std::fs::read_dir(store.dir()).unwrap().count();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(files(), 3);
        assert_eq!(mode(store.dir()), 0o700);
        for e in std::fs::read_dir(store.dir()).unwrap() {
            assert_eq!(mode(&e.unwrap().path()), 0o600, "biometric data");
        }
        // Removing a person deletes their face; an interrupted write's leftovers go too.
        std::fs::write(store.dir().join(".gallery-tmp123"), b"partial").unwrap();
        let gone = g.remove("person-1").unwrap();
        lock.save(&g).unwrap();
        assert_eq!(files(), 2);
        let gone = gone.enrolments[0].crop.clone().unwrap();
        assert!(store.get(&gone).is_err());
        assert!(crops_present(&g, &path));
        // Crops not referenced by the saved gallery are not kept.
        lock.save_with_crops(&g, &crops(5)[3..]).unwrap();
        assert_eq!(files(), 2);
    }

    #[test]
    fn format_1_galleries_load_and_are_saved_as_format_2() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.toml");
        std::fs::write(
            &path,
            "format = 1\nmodel = \"test-model/0123\"\n[[person]]\nid = \"a\"\nname = \"A\"\n\
             enrolments = [{ enrolled_at = \"x\", source = \"s\", sha256 = \"h\", embedding = \"AACAPw==\" }]\n",
        )
        .unwrap();
        let g = Gallery::load(&path, MODEL).unwrap();
        assert_eq!(g.people[0].enrolments[0].embedding, vec![1.0]);
        assert_eq!(
            g.people[0].enrolments[0].crop, None,
            "no crop: cannot be re-embedded"
        );
        Locked::acquire(&path).unwrap().save(&g).unwrap();
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .starts_with("format = 2\n"));
        assert_eq!(Gallery::load(&path, MODEL).unwrap(), g);
        assert_eq!(
            Gallery::load_any_model(&path).unwrap().unwrap().model,
            MODEL,
            "loads whatever its model"
        );
        assert!(Gallery::load_any_model(&dir.path().join("none"))
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_crash_at_any_moment_leaves_an_old_or_new_gallery() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.toml");
        // The large gallery refers to 8 crops more than the small one: each write adds or
        // deletes some.
        let crops = crops(16);
        let (small, large) = (with_crops(40, &crops[..8]), with_crops(80, &crops));
        Locked::acquire(&path)
            .unwrap()
            .save_with_crops(&small, &crops[..8])
            .unwrap();
        for round in 0..12u64 {
            let mut child = std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "gallery::tests::crash_writer_child",
                    "--nocapture",
                ])
                .env("FACEGATE_CRASH_WRITER", &path)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            // Killed while writing, not while still making its crops.
            let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
            let mut line = String::new();
            while !line.starts_with("ready") {
                line.clear();
                assert!(std::io::BufRead::read_line(&mut out, &mut line).unwrap() > 0);
            }
            std::thread::sleep(std::time::Duration::from_millis(30 + round * 17 % 50));
            child.kill().unwrap(); // SIGKILL: no destructor, no cleanup
            child.wait().unwrap();
            let g = Gallery::load(&path, MODEL)
                .unwrap_or_else(|e| panic!("round {round}: torn gallery: {e}"));
            assert!(
                g == small || g == large,
                "round {round}: neither the old nor the new gallery"
            );
            assert!(
                crops_present(&g, &path),
                "round {round}: the gallery refers to a crop that is not there"
            );
        }
    }

    #[test]
    fn reloader_follows_changes_and_keeps_the_last_good_gallery() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.toml");
        Locked::acquire(&path).unwrap().save(&sample(2)).unwrap();
        let mut r = Reloader::new(&path, MODEL, Scoring::EUCLIDEAN).unwrap();
        assert_eq!(r.gallery().people.len(), 2);
        assert!(!r.poll(false).unwrap(), "nothing changed");

        Locked::acquire(&path).unwrap().save(&sample(5)).unwrap();
        assert!(r.poll(false).unwrap());
        assert_eq!((r.gallery().people.len(), r.index().len()), (5, 10));

        std::fs::write(&path, "garbage [").unwrap();
        assert!(r.poll(false).is_err());
        assert_eq!(
            r.gallery().people.len(),
            5,
            "the last good gallery stays in use"
        );
        assert!(
            !r.poll(false).unwrap(),
            "a refused file is not retried until it changes"
        );

        Locked::acquire(&path).unwrap().save(&sample(1)).unwrap();
        assert!(r.poll(false).unwrap());
        assert_eq!(r.gallery().people.len(), 1);
        assert!(r.poll(true).unwrap(), "forced reload (SIGHUP)");
    }

    #[test]
    fn credentials_round_trip_and_one_card_is_one_person() {
        use crate::credential::Credential;
        let mut g = sample(2);
        assert!(
            g.people.iter().all(|p| p.credential.is_none()),
            "old people have none"
        );
        let c = Credential::Wiegand26 {
            facility: 12,
            card: 3456,
        };
        g.people[0].credential = Some(c);
        let text = toml::to_string(&g).unwrap();
        let back = Gallery::parse(&text, Path::new("g"), MODEL).unwrap();
        assert_eq!(back.people[0].credential, Some(c));
        assert_eq!(back.people[1].credential, None);
        g.people[1].credential = Some(c);
        let err = Gallery::parse(&toml::to_string(&g).unwrap(), Path::new("g"), MODEL)
            .unwrap_err()
            .to_string();
        assert!(err.contains("same credential"), "{err}");
        g.people[1].credential = Some(Credential::Raw { bits: 4, value: 99 });
        let err = Gallery::parse(&toml::to_string(&g).unwrap(), Path::new("g"), MODEL)
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not fit"), "{err}");
    }
}
