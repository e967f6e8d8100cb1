//! `facegate`: the admin command line of the facegate door controller.

use anyhow::{Context, Result};
use args::{Cli, Command};
use clap::Parser;
use facegate::enrolment::Checks;
use facegate::gallery::Gallery;
use facegate::{decode_file, DetectorParams, Face, ModelSet, Pipeline};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod analysis;
mod args;
mod audit;
mod credential;
mod door;
mod openset;
mod people;
mod policy;
mod reembed;
mod site;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.global.verbose);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| level.into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn run(cli: Cli) -> Result<ExitCode> {
    // No models needed for these.
    if let Command::Audit { cmd } = &cli.command {
        return audit::run(cmd, cli.global.config.as_deref());
    }
    if let Command::Door { cmd, socket } = &cli.command {
        return door::run(cmd, socket.as_deref(), cli.global.config.as_deref());
    }
    let mqtt_file = |f: &Option<PathBuf>| {
        f.clone()
            .or_else(|| cli.global.config.clone())
            .ok_or_else(|| anyhow::anyhow!("--mqtt FILE: a config whose [mqtt] names the broker"))
    };
    match &cli.command {
        Command::Keygen { key } => return site::keygen(key),
        Command::Remote {
            action,
            door,
            by,
            key,
            mqtt,
        } => return site::command(action, door, by, key, &site::mqtt_of(&mqtt_file(mqtt)?)?),
        _ => {}
    }
    let g = &cli.global;
    // The door's config also names the network its thresholds belong to: used unless
    // --models / --embedder say otherwise. A broken config only stops the commands that judge.
    let config = door_config(g.config.as_deref());
    // The gallery the door reads, unless told otherwise: never a file the door does not use.
    let gallery = match (&g.gallery, &config) {
        (Some(path), _) => path.clone(),
        (None, Ok(c)) => c.gallery.path.clone(),
        (None, Err(e)) => anyhow::bail!(
            "the door's config cannot be read, so the gallery it uses is unknown: {e:#} (give --gallery FILE)"
        ),
    };
    let (config_models, config_embedder) = config
        .as_ref()
        .map(|c| (c.recognition.models.clone(), c.recognition.embedder.clone()))
        .unwrap_or_default();
    let models_path = g.models.clone().or(config_models);
    let embedder = g.embedder.clone().or(config_embedder);
    let models = match &models_path {
        Some(path) => ModelSet::from_manifest(path)?,
        None => ModelSet::builtin()?,
    };
    if !(g.min_face.is_finite() && g.min_face >= 12.0) {
        anyhow::bail!("--min-face must be at least 12 pixels (got {})", g.min_face);
    }
    // `auto`: the gallery's network, else the form this CPU runs fastest (as the door does).
    let embedder = facegate::netform::resolve(&models, embedder.as_deref(), &gallery)?;
    let fingerprint = models.embedder(embedder.as_deref())?.1.fingerprint.clone();
    // Commands that only read or edit the gallery do not load the networks.
    match &cli.command {
        Command::List { json } => {
            return people::list(&Gallery::load(&gallery, &fingerprint)?, *json)
        }
        Command::Show { id, json } => {
            return people::show(&Gallery::load(&gallery, &fingerprint)?, id, *json)
        }
        Command::Remove { id } => return people::modify(&gallery, &fingerprint, id, None),
        Command::Policy(a) => {
            let access = config
                .as_ref()
                .map(|c| c.access.clone())
                .unwrap_or_default();
            return policy::run(&gallery, &fingerprint, &access, a);
        }
        Command::Credential(a) => return credential::run(&gallery, &fingerprint, a),
        Command::Rename { id, name } => {
            return people::modify(&gallery, &fingerprint, id, Some(name))
        }
        Command::Bench {
            paths,
            rounds,
            threads,
            workers,
        } => {
            let threads = facegate::cores::use_threads(threads.count());
            return bench(
                &models,
                g.embedder.as_deref(),
                g.min_face,
                paths,
                (*rounds, threads, workers.map(usize::from)),
            );
        }
        Command::Reembed { json } => {
            return reembed::run(&models, g.embedder.as_deref(), &gallery, *json)
        }
        Command::Publish { key, mqtt } => {
            let mqtt = site::mqtt_of(&mqtt_file(mqtt)?)?;
            return site::publish(&gallery, &fingerprint, key, &mqtt);
        }
        _ => {}
    }
    // Enrolment looks for faces down to 40 px so that a small face is refused as too small
    // rather than reported as missing (the open-set evaluation enrols, and reports small probes
    // as the door refuses them).
    let enrols = matches!(
        cli.command,
        Command::Enroll { .. }
            | Command::Import { .. }
            | Command::Calibrate {
                open_set: Some(_),
                ..
            }
    );
    let min_face = if enrols {
        g.min_face.min(40.0)
    } else {
        g.min_face
    };
    let params = photo_params(&models, min_face);
    let mut pipeline = Pipeline::new(&models, embedder.as_deref(), Some(params))
        .context("loading the face models")?;
    // The door's rule, from the same function the daemon takes it from (read only by the
    // commands that judge faces, so a broken config does not stop `embed`).
    let (model_threshold, model_margin) = (
        pipeline.embedder_spec().threshold,
        pipeline.embedder_spec().min_margin,
    );
    let door = || -> Result<(facegate::config::Config, facegate::acceptance::Rule)> {
        let config = config
            .as_ref()
            .map_err(|e| anyhow::anyhow!("{e:#}"))?
            .clone();
        let mut rule = config.decision_params(model_threshold, model_margin).rule();
        // A photo is not a presentation at a camera: liveness is the door's check alone.
        rule.min_liveness = None;
        rule.cues = false;
        Ok((config, rule))
    };
    match cli.command {
        Command::Enroll {
            name,
            id,
            force,
            strict,
            photos,
        } => people::enroll(
            &mut pipeline,
            &gallery,
            &name,
            id.as_deref(),
            &photos,
            people::EnrolChecks {
                photo: checks(strict),
                force,
                threshold: door()?.1.threshold,
            },
        ),
        Command::Import {
            dir,
            force,
            strict,
            json,
        } => people::import(
            &mut pipeline,
            &gallery,
            &dir,
            people::EnrolChecks {
                photo: checks(strict),
                force,
                threshold: door()?.1.threshold,
            },
            json,
        ),
        Command::Calibrate {
            open_set: Some(source),
            strangers,
            enrol_photos,
            sizes,
            draws,
            seed,
            target_fpir,
            thresholds,
            margins,
            write_config,
            flip,
            strict,
            json,
            ..
        } => {
            let (config, rule) = door()?;
            let options = openset::Options {
                source,
                strangers,
                enrol_photos,
                sizes,
                draws,
                seed,
                target_fpir,
                thresholds,
                margins,
                current: rule,
                quality: config.recognition.quality,
                flip,
                checks: checks(strict),
                json,
            };
            let recommended = openset::run(&mut pipeline, &options)?;
            if let Some(path) = write_config {
                let Some(r) = recommended else {
                    anyhow::bail!(
                        "no operating point meets --target-fpir {target_fpir}; {} left unchanged",
                        path.display()
                    );
                };
                openset::write_config(&path, r.threshold, r.min_margin)?;
                eprintln!(
                    "wrote threshold {:.3} and min_margin {:.3} into {} [recognition]",
                    r.threshold,
                    r.min_margin,
                    path.display()
                );
                let named = config.recognition.embedder.as_deref();
                if g.embedder.is_some() && g.embedder.as_deref() != named {
                    tracing::warn!(
                        "these values are for embedder {}; set recognition.embedder (and models) \
                         in {} to match",
                        pipeline.embedder_name(),
                        path.display()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Calibrate {
            dir: Some(dir),
            target_far,
            json,
            ..
        } => analysis::calibrate(&mut pipeline, &dir, target_far, json),
        Command::Calibrate { dir: None, .. } => unreachable!("clap requires DIR or --open-set"),
        Command::Cluster {
            paths,
            threshold,
            json,
        } => analysis::cluster(&mut pipeline, &paths, threshold, json),
        Command::Identify { photos, json } => {
            let gallery = Gallery::load(&gallery, &fingerprint)?;
            let (config, rule) = door()?;
            people::identify(
                &mut pipeline,
                &gallery,
                &rule,
                &config.recognition.quality,
                &photos,
                json,
            )
        }
        Command::List { .. }
        | Command::Show { .. }
        | Command::Remove { .. }
        | Command::Policy(_)
        | Command::Credential(_)
        | Command::Rename { .. }
        | Command::Bench { .. }
        | Command::Reembed { .. }
        | Command::Audit { .. }
        | Command::Door { .. }
        | Command::Keygen { .. }
        | Command::Publish { .. }
        | Command::Remote { .. } => unreachable!("handled above"),
        Command::Embed { paths } => embed(&mut pipeline, &paths),
        Command::Verify {
            a,
            b,
            threshold,
            json,
        } => verify(
            &mut pipeline,
            &a,
            &b,
            match threshold {
                Some(t) => t,
                None => door()?.1.threshold,
            },
            json,
        ),
    }
}

/// The door's config: `--config`, else /etc/facegate/config.toml if it exists, else defaults.
/// The enrolment checks `--strict` asks for.
fn checks(strict: bool) -> Checks {
    if strict {
        Checks::Strict
    } else {
        Checks::Lenient
    }
}

/// The door's config: `--config` / `FACEGATE_CONFIG`, else the system one if it exists, else
/// the defaults (the same paths the door uses without a config file).
pub(crate) fn door_config(path: Option<&Path>) -> Result<facegate::config::Config> {
    let system = Path::new(facegate::config::DEFAULT_CONFIG);
    match path {
        Some(p) => Ok(facegate::config::Config::load(p)?),
        None if system.exists() => Ok(facegate::config::Config::load(system)?),
        None => Ok(facegate::config::Config::default()),
    }
}

/// The detector's settings for photos, with the smallest face asked for.
fn photo_params(models: &ModelSet, min_face: f32) -> DetectorParams {
    DetectorParams {
        min_face,
        ..DetectorParams::for_photos(&models.manifest.detector)
    }
}

/// `facegate bench`: per-stage times of each embedder on these photos.
fn bench(
    models: &ModelSet,
    embedder: Option<&str>,
    min_face: f32,
    paths: &[PathBuf],
    (rounds, threads, workers): (u32, usize, Option<usize>),
) -> Result<ExitCode> {
    let files = image_files(paths);
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
fn image_files(paths: &[PathBuf]) -> Vec<PathBuf> {
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

fn embed(pipeline: &mut Pipeline, paths: &[PathBuf]) -> Result<ExitCode> {
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

fn verify(
    pipeline: &mut Pipeline,
    a: &Path,
    b: &Path,
    threshold: f32,
    json: bool,
) -> Result<ExitCode> {
    if !(threshold.is_finite() && threshold > 0.0) {
        anyhow::bail!("--threshold must be a positive number (got {threshold})");
    }
    let fa = main_face(pipeline, a)?;
    let fb = main_face(pipeline, b)?;
    let distance = pipeline.distance(&fa.embedding, &fb.embedding);
    let same = distance <= threshold;
    if json {
        let line = VerifyJson {
            a: &a.to_string_lossy(),
            b: &b.to_string_lossy(),
            distance,
            threshold,
            same,
            model: pipeline.embedder_name(),
        };
        println!("{}", serde_json::to_string(&line)?);
    } else {
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
    Ok(if same {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
