//! The employee gallery: who is enrolled and their face embeddings, stored in one TOML file that
//! is written atomically under a lock, matched 1:N, and reloaded live when it changes.
//!
//! The file holds biometric data: it is created 0600, and every write goes to a temporary file
//! in the same directory that is fsynced and renamed over the old one (then the directory is
//! fsynced), so a crash at any moment leaves the old gallery or the new one, never a torn one.
//! Writers serialise on an exclusive lock of `<gallery>.lock`. Each enrolment's face crop lives
//! beside the file in a [`CropStore`] that every save keeps in step with the gallery.

use crate::fs::FileError;
use crate::people::crops::{CropStore, EncodedCrop};
use crate::vision::embed::Embedding;
use crate::vision::models::{EmbedderManifest, Metric};
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
    /// The card is another person's: one card, one person.
    #[error("{card} already belongs to {id} ({name:?}): one card, one person")]
    CardTaken {
        /// The card, as it prints.
        card: String,
        /// Who holds it.
        id: String,
        /// Their display name.
        name: String,
    },
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
    pub crop: Option<crate::people::crops::CropRef>,
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
    #[serde(
        default,
        skip_serializing_if = "crate::people::policy::Policy::is_open"
    )]
    pub policy: crate::people::policy::Policy,
    /// The card credential sent to the panel in reader mode (`[output] mode = "wiegand"`);
    /// absent in galleries written before reader mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<crate::people::credential::Credential>,
    /// The person's PIN (second factor) as an argon2id hash (`people::pin`), never the PIN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_hash: Option<String>,
    /// Their duress PIN's hash: it opens like the PIN and raises a silent `duress` event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duress_hash: Option<String>,
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

    /// Gives person `id` the card `credential` (or none), refused when another person holds
    /// it: a card stands for one person (the CLI and the control API both set it here).
    pub fn set_credential(
        &mut self,
        id: &str,
        credential: Option<crate::people::credential::Credential>,
    ) -> Result<(), GalleryError> {
        if let Some(c) = credential {
            if let Some(other) = self
                .people
                .iter()
                .find(|p| p.id != id && p.credential == Some(c))
            {
                return Err(GalleryError::CardTaken {
                    card: c.to_string(),
                    id: other.id.clone(),
                    name: other.name.clone(),
                });
            }
        }
        let p = self
            .get_mut(id)
            .ok_or_else(|| GalleryError::UnknownId(id.to_owned()))?;
        p.credential = credential;
        Ok(())
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

impl Index {
    /// The distance of `query` to `person`'s nearest enrolment: one comparison per enrolment of
    /// theirs, no search (the 1:1 check of a card or PIN claim). `None` as for [`Index::best`],
    /// or when the person has no usable enrolment.
    pub fn distance_to(&self, person: usize, query: &Embedding) -> Option<f32> {
        let q = self.prepare(query)?;
        // `owner` is in gallery order: the person's rows are one run.
        let start = self.owner.partition_point(|&o| o < person);
        let end = self.owner.partition_point(|&o| o <= person);
        self.data
            .chunks_exact(self.dim)
            .skip(start)
            .take(end - start)
            .map(|row| squared_distance(row, &q))
            .fold(None, |m: Option<f32>, d| Some(m.map_or(d, |m| m.min(d))))
            .map(|d| self.scoring.distance(d))
    }

    /// The people within `threshold` of `query`, nearest first, at most `k` (a PIN is checked
    /// against these only). Exact distances over every row: done once per PIN, not per frame.
    pub fn within(&self, query: &Embedding, threshold: f32, k: usize) -> Vec<(usize, f32)> {
        let Some(q) = self.prepare(query) else {
            return Vec::new();
        };
        let mut best = vec![f32::INFINITY; self.people];
        for (row, &who) in self.data.chunks_exact(self.dim).zip(&self.owner) {
            let d = squared_distance(row, &q);
            if d < best[who] {
                best[who] = d;
            }
        }
        let mut near: Vec<(usize, f32)> = best
            .into_iter()
            .enumerate()
            .map(|(i, d)| (i, self.scoring.distance(d)))
            .filter(|(_, d)| *d <= threshold)
            .collect();
        near.sort_by(|a, b| a.1.total_cmp(&b.1));
        near.truncate(k);
        near
    }

    /// The query as the rows are stored (unit length where the scoring asks).
    fn prepare(&self, query: &Embedding) -> Option<Vec<f32>> {
        if self.is_empty() || self.dim == 0 || query.0.len() != self.dim {
            return None;
        }
        let mut q = query.0.clone();
        if self.scoring.unit() && !normalize(&mut q) {
            return None;
        }
        Some(q)
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

/// The most characters of a display name.
pub const MAX_NAME_CHARS: usize = 128;

/// Checks a display name (`facegate enroll --name`, `facegate rename`, the door's `people add`
/// and `people rename`): not blank, at most [`MAX_NAME_CHARS`] characters, no control
/// characters (it is shown in logs, on the console and on a display).
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("a name must not be empty".into());
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(format!("a name has at most {MAX_NAME_CHARS} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err("a name must not contain control characters".into());
    }
    Ok(())
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
mod tests;
