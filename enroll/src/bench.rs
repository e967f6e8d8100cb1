//! `facegate bench`: times the pipeline on this machine, stage by stage, for each embedding
//! network, and optionally the door's frame rate with one worker and with several.

use crate::args::BenchArgs;
use crate::photos::{image_files, photo_params};
use anyhow::{Context, Result};
use facegate::{ModelSet, Pipeline};
use std::path::PathBuf;
use std::process::ExitCode;

/// `facegate bench`: per-stage times of each embedder on these photos (`embedder`: the one
/// `--embedder` names, else every one of the manifest).
pub fn run(
    models: &ModelSet,
    embedder: Option<&str>,
    min_face: f32,
    a: &BenchArgs,
) -> Result<ExitCode> {
    let threads = facegate::cores::use_threads(a.threads.count());
    let (rounds, workers) = (a.rounds, a.workers.map(usize::from));
    let files = image_files(&a.paths);
    if files.is_empty() {
        anyhow::bail!("no .jpg, .jpeg or .png photos in the paths given");
    }
    let names: Vec<String> = match embedder {
        Some(name) => vec![models.embedder(Some(name))?.0.to_owned()],
        None => models.manifest.embedders.keys().cloned().collect(),
    };
    println!(
        "facegate bench: {} photos x {rounds} rounds, networks on {threads} thread(s); median \
         (mean) over photos of each photo's median over rounds",
        files.len()
    );
    let params = photo_params(models, min_face);
    for name in names {
        let mut pipeline = match Pipeline::new(models, Some(&name), Some(params)) {
            // Without --models only the default network is in the binary: say so and go on.
            Err(facegate::PipelineError::Model(facegate::ModelError::NotBuiltin(file)))
                if embedder.is_none() =>
            {
                println!(
                    "{name}: skipped, {file} is not built into this binary (pass --models, e.g. \
                     /usr/share/facegate/models/manifest.toml)"
                );
                continue;
            }
            other => other.context("loading the face models")?,
        };
        let times = facegate::bench::time_photos(&mut pipeline, &files, rounds as usize, |_| {})?;
        let spec = pipeline.embedder_spec();
        println!("{name} ({}, {})", spec.quantization, spec.file);
        for (label, (median, mean)) in facegate::bench::STAGES.iter().zip(times.summary()) {
            println!("  {label:<24} {median:>9.2} ms  ({mean:.2})");
        }
        if let Some(n) = workers {
            let frames = door_frames(&mut pipeline, &files)?;
            pipeline
                .use_fast_detector(models)
                .context("loading the door's detector")?;
            let secs = f64::from(rounds).clamp(2.0, 10.0);
            for w in if n > 1 { vec![1, n] } else { vec![1] } {
                let r = facegate::bench::door_rate(&pipeline, &frames, w, secs)?;
                println!(
                    "  door frames, {w} worker(s)   {:>7.1} a second  ({:.2} ms a frame on a worker, {} frames)",
                    r.frames_per_second, r.frame_ms, r.frames
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The photos as a door camera's 640x480 frames, each with its largest face 160 px large.
fn door_frames(pipeline: &mut Pipeline, files: &[PathBuf]) -> Result<Vec<facegate::RgbImage>> {
    files
        .iter()
        .map(|f| {
            let img = facegate::decode_file(f).with_context(|| f.display().to_string())?;
            let faces = pipeline.detect(&img)?;
            let face = faces
                .first()
                .with_context(|| format!("{}: no face found", f.display()))?;
            let shown = (&img, Some(face.bbox), facegate::bench::DEFAULT_FACE_PX);
            Ok(facegate::bench::compose(&[shown], 640, 480))
        })
        .collect()
}
