//! `facegate calibrate` and `facegate cluster`: threshold calibration on labelled photos, and
//! grouping unknown faces by identity in the embedding space (the FaceNet idea).

use crate::output::Output;
use anyhow::{bail, Result};
use facegate::{decode_file, Embedding, Pipeline};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Image files under `dir`, recursively, sorted.
pub fn images_under(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
        })
        .collect();
    v.sort();
    v
}

/// `DIR/<person>/<photos>` as (person, photo) pairs.
pub fn labelled_photos(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let mut people: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .collect();
    people.sort_by_key(|e| e.file_name());
    for p in people {
        let name = p.file_name().to_string_lossy().into_owned();
        for photo in images_under(&p.path()) {
            out.push((name.clone(), photo));
        }
    }
    if out.is_empty() {
        bail!(
            "{}: no photos found in DIR/<person>/<photo> layout",
            dir.display()
        );
    }
    Ok(out)
}

#[derive(Serialize)]
struct Rates {
    threshold: f32,
    false_accept_rate: f64,
    false_reject_rate: f64,
}

#[derive(Serialize)]
struct Calibration {
    photos: usize,
    skipped: Vec<String>,
    same_pairs: usize,
    different_pairs: usize,
    same_distance: [f32; 3],
    different_distance: [f32; 3],
    rates: Vec<Rates>,
    target_far: f64,
    recommended_threshold: Option<f32>,
    recommended_frr: Option<f64>,
}

fn spread(v: &[f32]) -> [f32; 3] {
    if v.is_empty() {
        return [f32::NAN; 3];
    }
    [v[0], v[v.len() / 2], v[v.len() - 1]]
}

/// `facegate calibrate`.
pub fn calibrate(
    pipeline: &mut Pipeline,
    dir: &Path,
    target_far: f64,
    output: Output,
) -> Result<ExitCode> {
    if !(0.0..1.0).contains(&target_far) {
        bail!("--target-far must be in [0, 1) (got {target_far})");
    }
    let mut faces: Vec<(String, Embedding)> = Vec::new();
    let mut skipped = Vec::new();
    for (who, photo) in labelled_photos(dir)? {
        match decode_file(&photo)
            .map_err(anyhow::Error::from)
            .and_then(|img| Ok(pipeline.faces(&img)?))
        {
            Ok(f) if !f.is_empty() => faces.push((who, f[0].embedding.clone())),
            Ok(_) => skipped.push(format!("{}: no face found", photo.display())),
            Err(e) => skipped.push(format!("{}: {e:#}", photo.display())),
        }
    }
    let (mut same, mut diff) = (Vec::new(), Vec::new());
    for (i, a) in faces.iter().enumerate() {
        for b in &faces[i + 1..] {
            let d = pipeline.distance(&a.1, &b.1);
            if a.0 == b.0 {
                same.push(d)
            } else {
                diff.push(d)
            }
        }
    }
    if same.is_empty() || diff.is_empty() {
        bail!("calibration needs at least two people, one of them with two photos with a face");
    }
    same.sort_by(f32::total_cmp);
    diff.sort_by(f32::total_cmp);
    let far = |t: f32| diff.iter().filter(|&&d| d <= t).count() as f64 / diff.len() as f64;
    let frr = |t: f32| same.iter().filter(|&&d| d > t).count() as f64 / same.len() as f64;
    let rates: Vec<Rates> = (6..=15)
        .map(|k| k as f32 * 0.05)
        .map(|t| Rates {
            threshold: t,
            false_accept_rate: far(t),
            false_reject_rate: frr(t),
        })
        .collect();
    // The largest threshold (fewest rejections) whose false-accept rate stays within the
    // target: just under the nearest different-person distance that would break it.
    let allowed = (target_far * diff.len() as f64).floor() as usize;
    let recommended = diff.get(allowed).map(|d| d - 1e-4).filter(|t| *t > 0.0);
    let c = Calibration {
        photos: faces.len(),
        skipped,
        same_pairs: same.len(),
        different_pairs: diff.len(),
        same_distance: spread(&same),
        different_distance: spread(&diff),
        rates,
        target_far,
        recommended_threshold: recommended,
        recommended_frr: recommended.map(frr),
    };
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&c)?);
        return Ok(ExitCode::SUCCESS);
    }
    for s in &c.skipped {
        println!("skipped {s}");
    }
    println!(
        "{} photos with a face; {} same-person pairs, {} different-person pairs",
        c.photos, c.same_pairs, c.different_pairs
    );
    println!(
        "same-person distance:      min {:.3}  median {:.3}  max {:.3}",
        c.same_distance[0], c.same_distance[1], c.same_distance[2]
    );
    println!(
        "different-person distance: min {:.3}  median {:.3}  max {:.3}",
        c.different_distance[0], c.different_distance[1], c.different_distance[2]
    );
    println!("threshold  false-accept  false-reject");
    for r in &c.rates {
        println!(
            "   {:.2}     {:>8.4}      {:>8.4}",
            r.threshold, r.false_accept_rate, r.false_reject_rate
        );
    }
    match (c.recommended_threshold, c.recommended_frr) {
        (Some(t), Some(r)) => println!(
            "recommended threshold for a false-accept rate <= {target_far}: {t:.3} (false-reject rate {r:.4}; model default {:.3})",
            pipeline.embedder_spec().threshold
        ),
        _ => println!("no threshold meets a false-accept rate <= {target_far} on these photos"),
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct ClusterFace {
    path: String,
    #[serde(rename = "box")]
    bbox: [f32; 4],
}

/// `facegate cluster`.
pub fn cluster(
    pipeline: &mut Pipeline,
    paths: &[PathBuf],
    threshold: Option<f32>,
    output: Output,
) -> Result<ExitCode> {
    let threshold = threshold.unwrap_or(pipeline.embedder_spec().threshold);
    let mut photos = Vec::new();
    for p in paths {
        if p.is_dir() {
            photos.extend(images_under(p))
        } else {
            photos.push(p.clone())
        }
    }
    let mut faces = Vec::new();
    let mut embeddings = Vec::new();
    let mut failed = 0;
    for photo in &photos {
        match decode_file(photo)
            .map_err(anyhow::Error::from)
            .and_then(|img| Ok(pipeline.faces(&img)?))
        {
            Ok(found) => {
                for f in found {
                    let b = f.detection.bbox;
                    faces.push(ClusterFace {
                        path: photo.to_string_lossy().into_owned(),
                        bbox: [b.x, b.y, b.w, b.h],
                    });
                    embeddings.push(f.embedding);
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("error: {}: {e:#}", photo.display());
            }
        }
    }
    let groups = facegate::people::cluster::cluster_embeddings(&embeddings, threshold, |a, b| {
        pipeline.distance(a, b)
    });
    match output {
        Output::Json => {
            let v: Vec<Vec<&ClusterFace>> = groups
                .iter()
                .map(|g| g.iter().map(|&i| &faces[i]).collect())
                .collect();
            println!("{}", serde_json::to_string(&v)?);
        }
        Output::Text => {
            println!(
                "{} faces in {} photos: {} groups (threshold {threshold:.3})",
                faces.len(),
                photos.len(),
                groups.len()
            );
            for (k, g) in groups.iter().enumerate() {
                println!("group {} ({} face(s)):", k + 1, g.len());
                for &i in g {
                    let f = &faces[i];
                    println!(
                        "  {} [{:.0}, {:.0}, {:.0}, {:.0}]",
                        f.path, f.bbox[0], f.bbox[1], f.bbox[2], f.bbox[3]
                    );
                }
            }
        }
    }
    Ok(if failed > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}
