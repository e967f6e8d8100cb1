//! The photo commands: `facegate embed` (every face of every photo as JSON lines) and `facegate
//! verify` (are the main faces of two photos the same person), and what the other commands that
//! read photos share with them: the detector's settings for photos and the walk of the paths given.

use crate::output::Output;
use anyhow::{Context, Result};
use facegate::{decode_file, DetectorParams, Face, ModelSet, Pipeline};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The detector's settings for photos, with the smallest face asked for.
pub fn photo_params(models: &ModelSet, min_face: f32) -> DetectorParams {
    DetectorParams {
        min_face,
        ..DetectorParams::for_photos(&models.manifest.detector)
    }
}

/// One face as `facegate embed` prints it.
#[derive(Serialize)]
struct FaceJson {
    #[serde(rename = "box")]
    bbox: [f32; 4],
    score: f32,
    landmarks: [[f32; 2]; 5],
    embedding: Vec<f32>,
}

impl From<&Face> for FaceJson {
    fn from(f: &Face) -> Self {
        let b = f.detection.bbox;
        let r = |v: f32| (v * 100.0).round() / 100.0;
        Self {
            bbox: [r(b.x), r(b.y), r(b.w), r(b.h)],
            score: f.detection.score,
            landmarks: f.detection.landmarks.map(|p| [r(p[0]), r(p[1])]),
            embedding: f.embedding.0.clone(),
        }
    }
}

#[derive(Serialize)]
#[serde(untagged)]
enum EmbedLine<'a> {
    Faces { path: &'a str, faces: Vec<FaceJson> },
    Error { path: &'a str, error: String },
}

/// Expands directories (recursively, sorted) into image files; files named directly are kept.
pub fn image_files(paths: &[PathBuf]) -> Vec<PathBuf> {
    let is_image = |p: &Path| {
        p.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
    };
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            for entry in walkdir::WalkDir::new(p).sort_by_file_name() {
                match entry {
                    Ok(e) if e.file_type().is_file() && is_image(e.path()) => {
                        out.push(e.into_path())
                    }
                    Ok(_) => {}
                    // Unreadable subdirectories are reported like unreadable images.
                    Err(e) => out.push(e.path().map(Path::to_owned).unwrap_or_else(|| p.clone())),
                }
            }
        } else {
            out.push(p.clone());
        }
    }
    out
}

pub fn embed(pipeline: &mut Pipeline, paths: &[PathBuf]) -> Result<ExitCode> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut failed = 0usize;
    for path in image_files(paths) {
        let shown = path.to_string_lossy();
        let line = match faces_in(pipeline, &path) {
            Ok(faces) => {
                if faces.is_empty() {
                    tracing::info!("{shown}: no face found");
                }
                EmbedLine::Faces {
                    path: &shown,
                    faces: faces.iter().map(FaceJson::from).collect(),
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("error: {shown}: {e:#}");
                EmbedLine::Error {
                    path: &shown,
                    error: format!("{e:#}"),
                }
            }
        };
        serde_json::to_writer(&mut out, &line)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

fn faces_in(pipeline: &mut Pipeline, path: &Path) -> Result<Vec<Face>> {
    if path.is_dir() {
        anyhow::bail!("cannot read directory");
    }
    let img = decode_file(path)?;
    Ok(pipeline.faces(&img)?)
}

#[derive(Serialize)]
struct VerifyJson<'a> {
    a: &'a str,
    b: &'a str,
    distance: f32,
    threshold: f32,
    same: bool,
    model: &'a str,
}

fn main_face(pipeline: &mut Pipeline, path: &Path) -> Result<Face> {
    let faces = faces_in(pipeline, path).with_context(|| format!("{}", path.display()))?;
    if faces.len() > 1 {
        tracing::warn!(
            "{}: {} faces, using the largest",
            path.display(),
            faces.len()
        );
    }
    faces
        .into_iter()
        .next()
        .with_context(|| format!("{}: no face found", path.display()))
}

pub fn verify(
    pipeline: &mut Pipeline,
    a: &Path,
    b: &Path,
    threshold: f32,
    output: Output,
) -> Result<ExitCode> {
    if !(threshold.is_finite() && threshold > 0.0) {
        anyhow::bail!("--threshold must be a positive number (got {threshold})");
    }
    let fa = main_face(pipeline, a)?;
    let fb = main_face(pipeline, b)?;
    let distance = pipeline.distance(&fa.embedding, &fb.embedding);
    let same = distance <= threshold;
    match output {
        Output::Json => {
            let line = VerifyJson {
                a: &a.to_string_lossy(),
                b: &b.to_string_lossy(),
                distance,
                threshold,
                same,
                model: pipeline.embedder_name(),
            };
            println!("{}", serde_json::to_string(&line)?);
        }
        Output::Text => {
            println!(
                "{}: distance {distance:.3} (threshold {threshold:.3}, model {})",
                if same {
                    "same person"
                } else {
                    "different people"
                },
                pipeline.embedder_name()
            );
        }
    }
    Ok(if same {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
