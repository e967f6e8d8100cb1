//! The control API's decision pictures and gallery changes (`picture SEQ`, `pictures unknown`,
//! `pictures dismiss`, `people add|remove|rename|policy|credential`): admin requests, carried out on the client's
//! thread (the door's loop never waits for a file), with the gallery's own code and lock
//! ([`Locked`]) and the one duplicate check of every enrolment
//! ([`crate::access::enrolment::duplicate`]). A change made is handed to the loop as
//! [`Command::PeopleChanged`], which reloads the gallery and audits it with who asked.
//!
//! Everything from the client is bounded before it is used: payloads ([`MAX_PAYLOAD`]), faces
//! ([`MAX_FACES`], each embedding of the model's dimension, finite and normalised as the gallery
//! expects, each crop a PNG of at most [`MAX_CROP_PNG`] bytes by its signature, never decoded
//! here), SEQs parsed as numbers only (no client text reaches the file system).

use super::{read_payload, Command};
use crate::access::enrolment::duplicate;
use crate::people::credential::Credential;
use crate::people::crops::EncodedCrop;
use crate::people::gallery::{
    validate_id, validate_name, Enrolment, Gallery, GalleryError, Locked, Person, Scoring,
};
use crate::people::policy::{Policy, PolicyRequest};
use crate::records::faces::{FaceStore, MAX_LISTED};
use crate::vision::models::EmbedderManifest;
use crate::Embedding;
use std::io::{self, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

/// The largest `people add` payload.
pub const MAX_PAYLOAD: usize = 1 << 20;
/// The largest `people rename` payload (a name of at most 128 characters).
pub const MAX_RENAME: usize = 1024;
/// The largest `people policy` payload (a policy's JSON: dates, up to 32 windows).
pub const MAX_POLICY: usize = 4096;
/// Faces one `people add` may carry.
pub const MAX_FACES: usize = 10;
/// The largest face crop PNG.
pub const MAX_CROP_PNG: usize = 256 << 10;
/// Pictures one `pictures dismiss` (or one `from_pictures`) may name.
pub const MAX_DISMISS: usize = 100;
/// The PNG signature, which every crop must start with.
pub const PNG_SIGNATURE: &[u8; 8] = b"\x89PNG\r\n\x1a\n";
/// How far from unit length a normalised embedding may be (f32 sums, JSON round trips).
const UNIT_TOLERANCE: f32 = 1e-2;

/// What the gallery requests work on: the gallery file, the model it must be of, the door's
/// threshold for the duplicate check, and the decision pictures.
#[derive(Debug, Clone)]
pub struct GalleryAccess {
    gallery: PathBuf,
    fingerprint: String,
    dim: usize,
    scoring: Scoring,
    threshold: f32,
    faces: FaceStore,
}

impl GalleryAccess {
    /// For the door running `config` with the embedder `spec` (the threshold is the door's at
    /// start; `[recognition]` changes by reload are not seen here until a restart).
    pub fn new(config: &crate::config::Config, spec: &EmbedderManifest) -> Self {
        Self {
            gallery: config.gallery.path.clone(),
            fingerprint: spec.fingerprint.clone(),
            dim: spec.dim,
            scoring: Scoring::of(spec),
            threshold: config
                .decision_params(spec.threshold, spec.min_margin)
                .threshold,
            faces: FaceStore::for_audit(&config.audit.path),
        }
    }

    /// The decision pictures.
    pub fn faces(&self) -> &FaceStore {
        &self.faces
    }
}

/// A gallery change made, for the loop to reload the gallery and audit it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeopleChange {
    /// A person enrolled, or faces added to one.
    Added {
        /// Their id.
        id: String,
        /// Their display name.
        name: String,
        /// Faces added.
        faces: usize,
        /// A new person (else faces added to an enrolled one).
        new: bool,
        /// Decision pictures deleted (`from_pictures`).
        pictures: Vec<u64>,
        /// Enrolled although the face matched another person (`force`).
        forced: Option<String>,
    },
    /// A person removed with their crops and decision pictures.
    Removed {
        /// Their id.
        id: String,
        /// Their display name.
        name: String,
        /// Decision pictures deleted.
        pictures: usize,
    },
    /// A display name changed.
    Renamed {
        /// Their id.
        id: String,
        /// The old name.
        from: String,
        /// The new name.
        to: String,
    },
    /// An access policy replaced.
    Policy {
        /// Their id.
        id: String,
        /// Their display name.
        name: String,
        /// The policy now.
        policy: Policy,
    },
    /// A card credential set or cleared.
    Credential {
        /// Their id.
        id: String,
        /// Their display name.
        name: String,
        /// The card now (`None`: cleared).
        credential: Option<Credential>,
    },
    /// Unknown faces' pictures deleted.
    Dismissed {
        /// The seqs asked for.
        seqs: Vec<u64>,
        /// How many were there and deleted.
        deleted: usize,
    },
}

/// `people add`'s JSON.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AddRequest {
    name: String,
    #[serde(default)]
    id: Option<String>,
    faces: Vec<FaceIn>,
    #[serde(default)]
    force: bool,
    #[serde(default)]
    from_pictures: Vec<u64>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FaceIn {
    embedding: Vec<f32>,
    crop_png: String,
}

/// A `people add` checked on its own (before the gallery is looked at).
#[derive(Debug)]
pub(super) struct NewFaces {
    pub(super) name: String,
    pub(super) id: Option<String>,
    pub(super) faces: Vec<(Vec<f32>, EncodedCrop)>,
    pub(super) force: bool,
    pub(super) from_pictures: Vec<u64>,
}

/// Parses and checks a `people add` payload for a model of `dim` dimensions under `scoring`.
pub(super) fn check_add(bytes: &[u8], dim: usize, scoring: Scoring) -> Result<NewFaces, String> {
    use base64::Engine;
    if bytes.len() > MAX_PAYLOAD {
        return Err(format!("too large: at most {MAX_PAYLOAD} bytes"));
    }
    let req: AddRequest = serde_json::from_slice(bytes).map_err(|e| {
        // serde's message quotes at most a token; cut and escaped all the same.
        let m: String = e.to_string().chars().take(120).collect();
        format!("bad request: {}", m.escape_default())
    })?;
    validate_name(&req.name).map_err(|e| format!("bad name: {e}"))?;
    if let Some(id) = &req.id {
        validate_id(id).map_err(|e| format!("bad id: {e}"))?;
    }
    if !(1..=MAX_FACES).contains(&req.faces.len()) {
        return Err(format!("1 to {MAX_FACES} faces"));
    }
    if req.from_pictures.len() > MAX_DISMISS {
        return Err(format!("at most {MAX_DISMISS} from_pictures"));
    }
    let mut faces = Vec::with_capacity(req.faces.len());
    for (i, f) in req.faces.into_iter().enumerate() {
        let n = i + 1;
        if f.embedding.len() != dim {
            return Err(format!(
                "face {n}: the embedding has {} values, this door's model {dim}",
                f.embedding.len()
            ));
        }
        if !f.embedding.iter().all(|v| v.is_finite()) {
            return Err(format!("face {n}: the embedding is not all finite numbers"));
        }
        let norm = f.embedding.iter().map(|v| v * v).sum::<f32>().sqrt();
        if norm == 0.0 || (scoring.normalize && (norm - 1.0).abs() > UNIT_TOLERANCE) {
            return Err(format!(
                "face {n}: the embedding's length is {norm:.4}; this model's are unit length"
            ));
        }
        if f.crop_png.len() > MAX_CROP_PNG.div_ceil(3) * 4 + 4 {
            return Err(format!("face {n}: the crop is over {MAX_CROP_PNG} bytes"));
        }
        let png = base64::engine::general_purpose::STANDARD
            .decode(f.crop_png.as_bytes())
            .map_err(|_| format!("face {n}: crop_png is not base64"))?;
        if png.len() > MAX_CROP_PNG {
            return Err(format!("face {n}: the crop is over {MAX_CROP_PNG} bytes"));
        }
        if !png.starts_with(PNG_SIGNATURE) {
            return Err(format!("face {n}: the crop is not a PNG"));
        }
        faces.push((f.embedding, EncodedCrop::from_png(png)));
    }
    Ok(NewFaces {
        name: req.name,
        id: req.id,
        faces,
        force: req.force,
        from_pictures: req.from_pictures,
    })
}

fn gallery_err(e: GalleryError) -> String {
    match e {
        GalleryError::UnknownId(id) => format!("no person {id}"),
        e @ GalleryError::CardTaken { .. } => format!("refused: {e}"),
        other => {
            tracing::error!("control API gallery change: {other}");
            format!("the gallery cannot be changed: {other}")
        }
    }
}

/// Enrols the faces of `new` (a new person, or added to the one with its id), under the
/// gallery's lock, after the duplicate check; then deletes the pictures they came from.
pub(super) fn add(access: &GalleryAccess, new: NewFaces, by: &str) -> Result<PeopleChange, String> {
    let lock = Locked::acquire(&access.gallery).map_err(gallery_err)?;
    let mut g = lock.load(&access.fingerprint).map_err(gallery_err)?;
    let target = new.id.clone().unwrap_or_else(|| g.new_id(&new.name));
    let index = g.index(access.scoring);
    let mut forced = None;
    for (embedding, _) in &new.faces {
        let face = Embedding(embedding.clone());
        if let Some(d) = duplicate(&g, &index, &face, &target, access.threshold) {
            let what = format!("looks like {} (distance {:.3})", d.id, d.distance);
            if !new.force {
                return Err(format!("duplicate: {what}"));
            }
            tracing::warn!(%target, "enrolled although the face {what} (force)");
            forced = Some(what);
        }
    }
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let count = new.faces.len();
    let (entries, crops): (Vec<Enrolment>, Vec<EncodedCrop>) = new
        .faces
        .into_iter()
        .map(|(embedding, crop)| {
            let e = Enrolment {
                enrolled_at: now.clone(),
                source: format!("control API by {by}"),
                sha256: crop.reference.sha256.clone(),
                embedding,
                crop: Some(crop.reference.clone()),
            };
            (e, crop)
        })
        .unzip();
    let (is_new, name) = match g.get_mut(&target) {
        Some(p) => {
            p.enrolments.extend(entries);
            (false, p.name.clone())
        }
        None => {
            g.people.push(Person {
                policy: Default::default(),
                id: target.clone(),
                name: new.name.clone(),
                enrolments: entries,
                credential: None,
                pin_hash: None,
                duress_hash: None,
            });
            (true, new.name.clone())
        }
    };
    lock.save_with_crops(&g, &crops).map_err(gallery_err)?;
    drop(lock);
    let pictures = delete_pictures(access, &new.from_pictures, false);
    Ok(PeopleChange::Added {
        id: target,
        name,
        faces: count,
        new: is_new,
        pictures,
        forced,
    })
}

/// Deletes the pictures of `seqs` (the ones there), logging a failure; the seqs deleted.
fn delete_pictures(access: &GalleryAccess, seqs: &[u64], unknown_only: bool) -> Vec<u64> {
    if seqs.is_empty() {
        return Vec::new();
    }
    let there: Vec<u64> = access
        .faces
        .pictures()
        .unwrap_or_default()
        .iter()
        .filter(|p| {
            seqs.contains(&p.seq) && (!unknown_only || p.id == crate::records::faces::UNKNOWN)
        })
        .map(|p| p.seq)
        .collect();
    if let Err(e) = access.faces.delete_seqs(&there, unknown_only) {
        tracing::error!("decision pictures not deleted: {e}");
        return Vec::new();
    }
    there
}

/// Removes person `id`, their crops (the save prunes them) and their decision pictures.
pub(super) fn remove(access: &GalleryAccess, id: &str) -> Result<PeopleChange, String> {
    let lock = Locked::acquire(&access.gallery).map_err(gallery_err)?;
    let mut g = lock.load(&access.fingerprint).map_err(gallery_err)?;
    let p = g.remove(id).map_err(gallery_err)?;
    lock.save(&g).map_err(gallery_err)?;
    drop(lock);
    let pictures = access.faces.remove_person(id).unwrap_or_else(|e| {
        tracing::error!("{id}'s decision pictures not deleted: {e}");
        0
    });
    Ok(PeopleChange::Removed {
        id: p.id,
        name: p.name,
        pictures,
    })
}

/// Gives person `id` the display name in `bytes`.
pub(super) fn rename(
    access: &GalleryAccess,
    id: &str,
    bytes: &[u8],
) -> Result<PeopleChange, String> {
    let name = std::str::from_utf8(bytes).map_err(|_| "the name is not UTF-8".to_owned())?;
    validate_name(name).map_err(|e| format!("bad name: {e}"))?;
    let lock = Locked::acquire(&access.gallery).map_err(gallery_err)?;
    let mut g: Gallery = lock.load(&access.fingerprint).map_err(gallery_err)?;
    let p = g.get_mut(id).ok_or_else(|| format!("no person {id}"))?;
    let from = std::mem::replace(&mut p.name, name.to_owned());
    lock.save(&g).map_err(gallery_err)?;
    Ok(PeopleChange::Renamed {
        id: id.to_owned(),
        from,
        to: name.to_owned(),
    })
}

/// Parses and checks a `people policy` payload with the library's code (as `facegate policy`
/// checks an edit), before the gallery is looked at.
pub(super) fn check_policy(bytes: &[u8]) -> Result<Policy, String> {
    if bytes.len() > MAX_POLICY {
        return Err(format!("too large: at most {MAX_POLICY} bytes"));
    }
    let req: PolicyRequest = serde_json::from_slice(bytes).map_err(|e| {
        let m: String = e.to_string().chars().take(120).collect();
        format!("bad request: {}", m.escape_default())
    })?;
    // The library's messages quote a few characters of the input; escaped all the same.
    req.to_policy()
        .map_err(|e| format!("bad policy: {}", cut(&e)))
}

/// At most 160 characters of `s`, escaped: for an answer line.
fn cut(s: &str) -> String {
    s.chars()
        .take(160)
        .collect::<String>()
        .escape_default()
        .to_string()
}

/// Replaces person `id`'s access policy, under the gallery's lock.
pub(super) fn set_policy(
    access: &GalleryAccess,
    id: &str,
    policy: Policy,
) -> Result<PeopleChange, String> {
    let lock = Locked::acquire(&access.gallery).map_err(gallery_err)?;
    let mut g = lock.load(&access.fingerprint).map_err(gallery_err)?;
    let p = g.get_mut(id).ok_or_else(|| format!("no person {id}"))?;
    p.policy = policy.clone();
    let name = p.name.clone();
    lock.save(&g).map_err(gallery_err)?;
    Ok(PeopleChange::Policy {
        id: id.to_owned(),
        name,
        policy,
    })
}

/// Sets or clears person `id`'s card, under the gallery's lock; a card another person holds is
/// refused ([`Gallery::set_credential`], as `facegate credential`).
pub(super) fn set_credential(
    access: &GalleryAccess,
    id: &str,
    credential: Option<Credential>,
) -> Result<PeopleChange, String> {
    let lock = Locked::acquire(&access.gallery).map_err(gallery_err)?;
    let mut g = lock.load(&access.fingerprint).map_err(gallery_err)?;
    g.set_credential(id, credential).map_err(gallery_err)?;
    let name = g.get(id).map(|p| p.name.clone()).unwrap_or_default();
    lock.save(&g).map_err(gallery_err)?;
    Ok(PeopleChange::Credential {
        id: id.to_owned(),
        name,
        credential,
    })
}

/// Whether `command` is followed by a payload of its own (`people add|rename|policy`).
pub(super) fn has_payload(command: &Command) -> bool {
    matches!(
        command,
        Command::PeopleAdd { .. } | Command::PeopleRename { .. } | Command::PeoplePolicy { .. }
    )
}

/// What became of one of these requests on the client's thread.
pub(super) enum Served {
    /// Answered here (pictures, refusals).
    Answered,
    /// Answered, and the connection cannot go on (a payload left unread).
    Close,
    /// Done: the loop reloads and audits it, and answers.
    Loop(Command),
}

/// Serves one of this module's requests (already allowed for the peer's role).
pub(super) fn serve(
    access: Option<&GalleryAccess>,
    command: Command,
    stream: &mut UnixStream,
    stop: &AtomicBool,
) -> io::Result<Served> {
    let Some(access) = access else {
        // The payload (if any) is not read: the connection cannot go on.
        stream.write_all(b"ERR not available: this door serves no gallery changes\n")?;
        return Ok(Served::Close);
    };
    let done = |change: Result<PeopleChange, String>, by: String| match change {
        Ok(change) => Ok(Served::Loop(Command::PeopleChanged { change, by })),
        Err(e) => Err(e),
    };
    let result = match command {
        Command::Picture(seq) => {
            match access.faces.read(seq) {
                Ok(Some(png)) => {
                    stream.write_all(format!("OK picture {}\n", png.len()).as_bytes())?;
                    stream.write_all(&png)?;
                }
                Ok(None) => stream.write_all(format!("ERR no picture for {seq}\n").as_bytes())?,
                Err(e) => {
                    tracing::error!("decision pictures: {e}");
                    stream.write_all(b"ERR the pictures cannot be read\n")?;
                }
            }
            return Ok(Served::Answered);
        }
        Command::PicturesUnknown => {
            match access.faces.unknown(MAX_LISTED) {
                Ok(seqs) => {
                    let mut out = format!("OK pictures {}\n", seqs.len());
                    for s in seqs {
                        out.push_str(&format!("{s}\n"));
                    }
                    stream.write_all(out.as_bytes())?;
                }
                Err(e) => {
                    tracing::error!("decision pictures: {e}");
                    stream.write_all(b"ERR the pictures cannot be read\n")?;
                }
            }
            return Ok(Served::Answered);
        }
        Command::PicturesDismiss { seqs, by } => {
            let deleted = delete_pictures(access, &seqs, true).len();
            done(Ok(PeopleChange::Dismissed { seqs, deleted }), by)
        }
        Command::PeopleAdd { len, by } => {
            if len > MAX_PAYLOAD {
                stream.write_all(
                    format!("ERR too large: {len} bytes, at most {MAX_PAYLOAD}\n").as_bytes(),
                )?;
                return Ok(Served::Close);
            }
            let bytes = read_payload(stream, len, stop)?;
            match check_add(&bytes, access.dim, access.scoring) {
                Ok(new) => done(add(access, new, &by), by),
                Err(e) => Err(e),
            }
        }
        Command::PeopleRemove { id, by } => done(remove(access, &id), by),
        Command::PeopleRename { id, len, by } => {
            if len > MAX_RENAME {
                stream.write_all(
                    format!("ERR too large: {len} bytes, at most {MAX_RENAME}\n").as_bytes(),
                )?;
                return Ok(Served::Close);
            }
            let bytes = read_payload(stream, len, stop)?;
            done(rename(access, &id, &bytes), by)
        }
        Command::PeoplePolicy { id, len, by } => {
            if len > MAX_POLICY {
                stream.write_all(
                    format!("ERR too large: {len} bytes, at most {MAX_POLICY}\n").as_bytes(),
                )?;
                return Ok(Served::Close);
            }
            let bytes = read_payload(stream, len, stop)?;
            match check_policy(&bytes) {
                Ok(policy) => done(set_policy(access, &id, policy), by),
                Err(e) => Err(e),
            }
        }
        Command::PeopleCredential { id, credential, by } => {
            done(set_credential(access, &id, credential), by)
        }
        _ => Err("not a gallery request".to_owned()),
    };
    match result {
        Ok(served) => Ok(served),
        Err(e) => {
            stream.write_all(format!("ERR {e}\n").as_bytes())?;
            Ok(Served::Answered)
        }
    }
}

#[cfg(test)]
mod tests;
