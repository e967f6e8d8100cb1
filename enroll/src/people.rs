//! The gallery commands of `facegate`: enrol, list, show, remove, rename, identify.

use crate::output::Output;
use anyhow::{bail, Result};
use facegate::access::acceptance::{FaceFacts, Nearest, Refusal, Rule};
use facegate::access::enrolment::{
    duplicate, enrol_photo_with, enrolment, enrolment_face_with, Checks,
};
use facegate::access::operating_point::{people, PhotoAdvice};
use facegate::people::gallery::{validate_id, validate_name, Gallery, Locked, Person, Scoring};
use facegate::vision::quality::{measure, QualityParams};
use facegate::{decode_file, Pipeline};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// How an enrolment's photos are checked: for quality, and against the people enrolled.
#[derive(Debug, Clone, Copy)]
pub struct EnrolChecks {
    /// The photo checks (`--strict` or not).
    pub photo: Checks,
    /// Enrol a face that matches another person (`--force`).
    pub force: bool,
    /// The distance under which a face matches an enrolled person.
    pub threshold: f32,
}

/// `facegate enroll`.
pub fn enroll(
    pipeline: &mut Pipeline,
    gallery: &Path,
    name: &str,
    id: Option<&str>,
    photos: &[PathBuf],
    checks: EnrolChecks,
) -> Result<ExitCode> {
    let EnrolChecks {
        photo: photo_checks,
        force,
        threshold,
    } = checks;
    validate_name(name).map_err(|e| anyhow::anyhow!("--name: {e}"))?;
    if let Some(id) = id {
        validate_id(id)?;
    }
    // Every photo is checked before anything is written: all or nothing.
    let mut new = Vec::new();
    for photo in photos {
        new.push(enrol_photo_with(pipeline, photo, photo_checks)?);
    }
    // Said before anything else, so the admin sees it even if the duplicate check refuses.
    for (e, photo) in new.iter().zip(photos) {
        for w in &e.warnings {
            eprintln!(
                "warning: {}: {w} (--strict refuses such photos)",
                photo.display()
            );
        }
    }
    let spec = pipeline.embedder_spec();
    let lock = Locked::acquire(gallery)?;
    let mut g = lock.load(&spec.fingerprint)?;
    let target = id.map(str::to_owned).unwrap_or_else(|| g.new_id(name));
    let index = g.index(Scoring::of(spec));
    for (e, photo) in new.iter().zip(photos) {
        let face = facegate::Embedding(e.enrolment.embedding.clone());
        if let Some(other) = duplicate(&g, &index, &face, &target, threshold) {
            let msg = format!(
                "{}: this face matches {:?} (id {}) at distance {:.3} (threshold {threshold:.3}); \
                 if it is the same person add the photo with --id {}, otherwise use --force",
                photo.display(),
                other.name,
                other.id,
                other.distance,
                other.id
            );
            if !force {
                bail!("refusing to enrol: {msg}");
            }
            tracing::warn!("{msg} (enrolling anyway: --force)");
        }
    }
    let count = new.len();
    let (entries, crops): (Vec<_>, Vec<_>) = new.into_iter().map(|n| (n.enrolment, n.crop)).unzip();
    let new = entries;
    let (verb, person) = match g.get_mut(&target) {
        Some(p) => {
            if p.name != name {
                tracing::warn!(
                    "id {target} is {:?}; keeping that name (use `facegate rename` to change it)",
                    p.name
                );
            }
            p.enrolments.extend(new);
            ("added to", p.clone())
        }
        None => {
            g.people.push(Person {
                policy: Default::default(),
                id: target.clone(),
                name: name.to_owned(),
                enrolments: new,
                credential: None,
                pin_hash: None,
                duress_hash: None,
            });
            ("enrolled", g.people.last().cloned().expect("just pushed"))
        }
    };
    lock.save_with_crops(&g, &crops)?;
    println!(
        "{verb} {:?} (id {}): {count} photo(s) now {} in all",
        person.name,
        person.id,
        person.enrolments.len()
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct PersonJson<'a> {
    id: &'a str,
    name: &'a str,
    photos: usize,
    /// Fewer photos than the site's `recognition.target_fnir` needs at the gallery's size
    /// (absent from `show`).
    #[serde(skip_serializing_if = "Option::is_none")]
    fewer_than_advised: Option<bool>,
    /// The card credential sent in reader mode, e.g. "wiegand26 facility 18 card 4660".
    credential: Option<String>,
    enrolments: Option<Vec<EnrolmentJson<'a>>>,
}

#[derive(Serialize)]
struct EnrolmentJson<'a> {
    enrolled_at: &'a str,
    source: &'a str,
    sha256: &'a str,
    /// Whether the face crop is kept (needed by `facegate reembed`).
    crop: bool,
}

fn person_json(p: &Person, detail: bool) -> PersonJson<'_> {
    PersonJson {
        id: &p.id,
        name: &p.name,
        photos: p.enrolments.len(),
        fewer_than_advised: None,
        credential: p.credential.map(|c| c.to_string()),
        enrolments: detail.then(|| {
            p.enrolments
                .iter()
                .map(|e| EnrolmentJson {
                    enrolled_at: &e.enrolled_at,
                    source: &e.source,
                    sha256: &e.sha256,
                    crop: e.crop.is_some(),
                })
                .collect()
        }),
    }
}

/// The people of `g` with fewer photos than `advice` asks for.
pub fn fewer_photos<'a>(
    g: &'a Gallery,
    advice: &'a PhotoAdvice,
) -> impl Iterator<Item = &'a Person> + 'a {
    g.people
        .iter()
        .filter(move |p| p.enrolments.len() < advice.photos)
}

/// `facegate list`: everyone (or with `only_fewer`, those with fewer photos than advised), those
/// under the advice marked.
pub fn list(
    g: &Gallery,
    advice: Option<&PhotoAdvice>,
    only_fewer: bool,
    output: Output,
) -> Result<ExitCode> {
    let advised = advice.map_or(1, |a| a.photos);
    let short = |p: &Person| p.enrolments.len() < advised;
    let shown: Vec<&Person> = g
        .people
        .iter()
        .filter(|p| !only_fewer || short(p))
        .collect();
    match output {
        Output::Json => {
            let v: Vec<_> = shown
                .iter()
                .map(|p| PersonJson {
                    fewer_than_advised: Some(short(p)),
                    ..person_json(p, false)
                })
                .collect();
            println!("{}", serde_json::to_string(&v)?);
        }
        Output::Text if g.people.is_empty() => println!("no one is enrolled"),
        Output::Text => {
            for p in &shown {
                let card = p.credential.map(|c| format!("  {c}")).unwrap_or_default();
                let mark = if short(p) {
                    format!("  (fewer than {advised} advised)")
                } else {
                    String::new()
                };
                println!(
                    "{:<24} {:<32} {} photo(s){card}{mark}",
                    p.id,
                    p.name,
                    p.enrolments.len()
                );
            }
            match advice {
                Some(a) if a.photos > 1 => println!(
                    "{} of {} have fewer than the {advised} photos advised at that size for \
                     recognition.target_fnir = {}",
                    g.people.iter().filter(|p| short(p)).count(),
                    people(g.people.len()),
                    a.target
                ),
                Some(_) if only_fewer => println!(
                    "one photo each is enough for recognition.target_fnir at {}",
                    people(g.people.len())
                ),
                None if only_fewer => println!(
                    "no advice: the door's threshold here is not a calibrated operating point \
                     (recognition.threshold set, or a model without points), or its config cannot be read"
                ),
                _ => {}
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `facegate show`.
pub fn show(g: &Gallery, id: &str, output: Output) -> Result<ExitCode> {
    let p = g
        .get(id)
        .ok_or_else(|| facegate::people::gallery::GalleryError::UnknownId(id.to_owned()))?;
    match output {
        Output::Json => {
            println!("{}", serde_json::to_string(&person_json(p, true))?);
        }
        Output::Text => {
            println!("id:   {}\nname: {}", p.id, p.name);
            if let Some(c) = p.credential {
                println!("card: {c}");
            }
            for e in &p.enrolments {
                let crop = if e.crop.is_some() {
                    "face crop kept"
                } else {
                    "no face crop: cannot be re-embedded for another model"
                };
                println!(
                    "  {}  {}  sha256 {}  ({crop})",
                    e.enrolled_at, e.source, e.sha256
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `facegate remove` and `facegate rename`: a locked read-modify-write. A person removed loses
/// their decision pictures in `faces` too (the door's `[audit] faces`), where this user may.
pub fn modify(
    gallery: &Path,
    fingerprint: &str,
    id: &str,
    new_name: Option<&str>,
    faces: Option<&facegate::records::faces::FaceStore>,
) -> Result<ExitCode> {
    let lock = Locked::acquire(gallery)?;
    let mut g = lock.load(fingerprint)?;
    match new_name {
        None => {
            let p = g.remove(id)?;
            lock.save(&g)?;
            println!(
                "removed {:?} (id {}) and their {} embedding(s)",
                p.name,
                p.id,
                p.enrolments.len()
            );
            match faces.map(|f| f.remove_person(&p.id)) {
                Some(Ok(n)) if n > 0 => println!("deleted their {n} decision picture(s)"),
                Some(Err(e)) => eprintln!(
                    "warning: their decision pictures were not deleted ({e}); run as root, or they go after [audit] faces_days"
                ),
                _ => {}
            }
        }
        Some(name) => {
            validate_name(name).map_err(|e| anyhow::anyhow!("the new name: {e}"))?;
            let p = g
                .get_mut(id)
                .ok_or_else(|| facegate::people::gallery::GalleryError::UnknownId(id.to_owned()))?;
            let old = std::mem::replace(&mut p.name, name.to_owned());
            lock.save(&g)?;
            println!("renamed {id} from {old:?} to {name:?}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct IdentifiedJson<'a> {
    path: &'a str,
    #[serde(rename = "box")]
    bbox: [f32; 4],
    /// The person the door would accept, or null.
    id: Option<&'a str>,
    name: Option<&'a str>,
    /// The rule that refused the face (too_small, unknown, ambiguous, or a quality issue).
    refused: Option<&'static str>,
    /// The nearest enrolled person, whether accepted or not.
    nearest: Option<NearestJson<'a>>,
    distance: Option<f32>,
    margin: Option<f32>,
}

#[derive(Serialize)]
struct NearestJson<'a> {
    id: &'a str,
    name: &'a str,
}

/// `facegate identify`: every face of every photo, judged by the door's rule.
pub fn identify(
    pipeline: &mut Pipeline,
    g: &Gallery,
    rule: &Rule,
    gates: &QualityParams,
    photos: &[PathBuf],
    output: Output,
) -> Result<ExitCode> {
    let index = g.index(Scoring::of(pipeline.embedder_spec()));
    let template = pipeline.embedder_spec().template;
    let mut known = 0usize;
    let mut failed = 0usize;
    for photo in photos {
        let shown = photo.to_string_lossy();
        let faces = match decode_file(photo)
            .map_err(anyhow::Error::from)
            .and_then(|img| Ok((pipeline.faces(&img)?, img)))
        {
            Ok((f, img)) => (f, img),
            Err(e) => {
                failed += 1;
                eprintln!("error: {shown}: {e:#}");
                continue;
            }
        };
        let (faces, img) = faces;
        if faces.is_empty() && output == Output::Text {
            println!("{shown}: no face found");
        }
        for f in &faces {
            // The door's quality gates, on the same chip the embedding came from.
            let quality = pipeline.align(&img, &f.detection).map_or(Ok(()), |chip| {
                gates.judge(&measure(&chip, &template, &f.detection.landmarks))
            });
            let b = f.detection.bbox;
            let nearest = index.best(&f.embedding).map(|m| Nearest {
                person: m.person,
                distance: m.distance,
                margin: m.margin,
            });
            let verdict = rule.judge(&FaceFacts {
                size: b.size(),
                quality,
                nearest,
                // The CLI has one photo, no camera: liveness is the door's.
                liveness: None,
                cues: None,
            });
            known += usize::from(verdict.is_ok());
            let who = verdict.ok().map(|n| &g.people[n.person]);
            let near = nearest.map(|n| (&g.people[n.person], n));
            if output == Output::Json {
                let line = IdentifiedJson {
                    path: &shown,
                    bbox: [b.x, b.y, b.w, b.h],
                    id: who.map(|p| p.id.as_str()),
                    name: who.map(|p| p.name.as_str()),
                    refused: verdict.err().map(Refusal::as_str),
                    nearest: near.map(|(p, _)| NearestJson {
                        id: &p.id,
                        name: &p.name,
                    }),
                    distance: nearest.map(|m| m.distance),
                    margin: nearest.map(|m| m.margin),
                };
                println!("{}", serde_json::to_string(&line)?);
                continue;
            }
            let place = format!("face at [{:.0}, {:.0}, {:.0}, {:.0}]", b.x, b.y, b.w, b.h);
            let closest = match near {
                Some((p, n)) => format!(
                    "nearest {} (id {}) at distance {:.3}, margin {:.3}",
                    p.name, p.id, n.distance, n.margin
                ),
                None => "no one is enrolled".to_owned(),
            };
            match verdict {
                Ok(_) => println!(
                    "{shown}: {place}: {} (id {}): {closest}",
                    who.map_or("", |p| p.name.as_str()),
                    who.map_or("", |p| p.id.as_str())
                ),
                Err(r) => {
                    let why = match r {
                        Refusal::TooSmall => {
                            format!("face {:.0} px, min_face {:.0}", b.size(), rule.min_face)
                        }
                        Refusal::Unknown => format!("threshold {:.3}", rule.threshold),
                        Refusal::Ambiguous => format!("min_margin {:.3}", rule.min_margin),
                        Refusal::PoorQuality(_) => "poor image".to_owned(),
                        Refusal::SpoofSuspected => "liveness".to_owned(),
                    };
                    println!(
                        "{shown}: {place}: refused, {} ({why}); {closest}",
                        r.as_str()
                    )
                }
            }
        }
    }
    Ok(if failed > 0 {
        ExitCode::from(2)
    } else if known > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `facegate import DIR`: every `DIR/<name>/<photo>`, each photo on its own merits; one bad photo
/// never aborts the rest. Saved once, atomically, at the end.
pub fn import(
    pipeline: &mut Pipeline,
    gallery: &Path,
    dir: &Path,
    checks: EnrolChecks,
    output: Output,
) -> Result<ExitCode> {
    let EnrolChecks {
        photo: photo_checks,
        force,
        threshold,
    } = checks;
    let photos = crate::analysis::labelled_photos(dir)?;
    let spec = pipeline.embedder_spec().clone();
    let lock = Locked::acquire(gallery)?;
    let mut g = lock.load(&spec.fingerprint)?;
    let bar = indicatif::ProgressBar::new(photos.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let (mut enrolled, mut skipped, mut warnings) = (Vec::new(), Vec::new(), Vec::new());
    let mut crops = Vec::new();
    for (name, photo) in &photos {
        bar.set_message(name.clone());
        let result = (|| -> Result<()> {
            let face = enrolment_face_with(pipeline, photo, photo_checks)?;
            let id = match g.people.iter().find(|p| &p.name == name) {
                Some(p) => p.id.clone(),
                None => g.new_id(name),
            };
            let index = g.index(Scoring::of(&spec));
            if let Some(other) = duplicate(&g, &index, &face.face.embedding, &id, threshold) {
                if !force {
                    bail!(
                        "{}: matches {:?} (id {}) at distance {:.3}",
                        photo.display(),
                        other.name,
                        other.id,
                        other.distance
                    );
                }
            }
            let new = enrolment(photo, face)?;
            for w in &new.warnings {
                warnings.push(format!("{}: {w}", photo.display()));
            }
            let e = new.enrolment;
            crops.push(new.crop);
            match g.get_mut(&id) {
                Some(p) => p.enrolments.push(e),
                None => g.people.push(Person {
                    policy: Default::default(),
                    id,
                    name: name.clone(),
                    enrolments: vec![e],
                    credential: None,
                    pin_hash: None,
                    duress_hash: None,
                }),
            }
            Ok(())
        })();
        match result {
            Ok(()) => enrolled.push(photo.display().to_string()),
            Err(e) => skipped.push(format!("{e:#}")),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    lock.save_with_crops(&g, &crops)?;
    match output {
        Output::Json => {
            println!(
                "{}",
                serde_json::json!({"enrolled": enrolled, "skipped": skipped, "warnings": warnings, "people": g.people.len()})
            );
        }
        Output::Text => {
            for s in &skipped {
                println!("skipped {s}");
            }
            for w in &warnings {
                println!("warning {w}");
            }
            println!(
            "enrolled {} photo(s) ({} with a warning: --strict refuses those), skipped {}; {} people in the gallery",
            enrolled.len(),
            warnings.len(),
            skipped.len(),
            g.people.len()
        );
        }
    }
    Ok(if enrolled.is_empty() && !skipped.is_empty() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}
