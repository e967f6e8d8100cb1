//! `facegate`: the admin command line of the facegate door controller.

use anyhow::{Context, Result};
use args::{Cli, Command};
use clap::Parser;
use facegate::enrolment::Checks;
use facegate::gallery::Gallery;
use facegate::{ModelSet, Pipeline};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod analysis;
mod args;
mod audit;
mod bench;
mod credential;
mod door;
mod openset;
mod people;
mod photos;
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
            return bench::run(
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
    let params = photos::photo_params(&models, min_face);
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
        Command::Embed { paths } => photos::embed(&mut pipeline, &paths),
        Command::Verify {
            a,
            b,
            threshold,
            json,
        } => photos::verify(
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
