//! `facegate`: the admin command line of the facegate door controller.
//!
//! `args` defines the command line; this file parses it, resolves what the commands share (the
//! door's config, the gallery, the networks) and hands each command to its module.

use anyhow::{Context, Result};
use args::{CalibrateArgs, Cli, Command, GlobalArgs};
use clap::Parser;
use facegate::access::acceptance::Rule;
use facegate::access::operating_point::PhotoAdvice;
use facegate::config::Config;
use facegate::people::gallery::Gallery;
use facegate::{ModelSet, Pipeline};
use output::Output;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

mod analysis;
mod args;
mod audit;
mod bench;
mod calibrate;
mod console;
mod credential;
mod door;
mod enrol;
mod openset;
mod output;
mod people;
mod photos;
mod pin;
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
    let Cli { global: g, command } = cli;
    // No models needed for these.
    match &command {
        Command::Audit { cmd } => return audit::run(cmd, g.config.as_deref()),
        Command::Door { cmd, socket } => {
            return door::run(cmd, socket.as_deref(), g.config.as_deref())
        }
        Command::Keygen { key } => return site::keygen(key),
        Command::Console { cmd } => return console::run(cmd, g.config.as_deref()),
        Command::Remote {
            action,
            door,
            by,
            key,
            wait,
            mqtt,
        } => {
            let door = site::door_for(action, door.as_deref())?;
            let by = by.clone().unwrap_or_else(door::login_name);
            let mqtt = site::mqtt_of(&mqtt_file(mqtt.as_deref(), &g)?)?;
            let wait = wait.map(Duration::from_secs_f64);
            return site::command(action, &door, &by, key, &mqtt, wait);
        }
        _ => {}
    }
    let shared = Shared::resolve(&g)?;
    let Shared {
        config,
        models,
        fingerprint,
        ..
    } = &shared;
    let gallery = || shared.gallery();
    // Commands that only read or edit the gallery do not load the networks.
    match command {
        Command::List { json, fewer_photos } => {
            let g = Gallery::load(gallery()?, fingerprint)?;
            let spec = models.embedder(shared.embedder.as_deref())?.1;
            let advice = photo_advice(&shared, spec, g.people.len());
            people::list(&g, advice.as_ref(), fewer_photos, Output::json_if(json))
        }
        Command::Show { id, json } => people::show(
            &Gallery::load(gallery()?, fingerprint)?,
            &id,
            Output::json_if(json),
        ),
        Command::Remove { id } => {
            // The door's decision pictures beside its audit log go with the person.
            let faces = config
                .as_ref()
                .ok()
                .map(|c| facegate::records::faces::FaceStore::for_audit(&c.audit.path));
            people::modify(gallery()?, fingerprint, &id, None, faces.as_ref())
        }
        Command::Policy(a) => {
            let access = config
                .as_ref()
                .map(|c| c.access.clone())
                .unwrap_or_default();
            policy::run(gallery()?, fingerprint, &access, &a)
        }
        Command::Credential(a) => credential::run(gallery()?, fingerprint, &a),
        Command::Pin(a) => pin::run(gallery()?, fingerprint, &a, &mut std::io::stdin().lock()),
        Command::Rename { id, name } => {
            people::modify(gallery()?, fingerprint, &id, Some(&name), None)
        }
        Command::Bench(a) => bench::run(models, g.embedder.as_deref(), g.min_face, &a),
        Command::Reembed { json } => reembed::run(
            models,
            g.embedder.as_deref(),
            gallery()?,
            Output::json_if(json),
        ),
        Command::Publish { key, mqtt } => {
            let mqtt = site::mqtt_of(&mqtt_file(mqtt.as_deref(), &g)?)?;
            site::publish(gallery()?, fingerprint, &key, &mqtt)
        }
        command => with_networks(command, &g, &shared),
    }
}

/// What the commands that use the gallery or the networks share, resolved once from the global
/// flags and the door's config.
struct Shared {
    /// The door's config (see `door_config`); an error only stops the commands that judge.
    config: Result<Config>,
    /// The gallery file: `--gallery`, else the one the door's config names; unknown when that
    /// config cannot be read, which stops only the commands that use the gallery.
    gallery: Result<PathBuf, String>,
    /// The networks: `--models`, else the config's, else those built into this binary.
    models: ModelSet,
    /// The embedding network: `--embedder`, else the config's, with `auto` resolved.
    embedder: Option<String>,
    /// That network's fingerprint, which the gallery must carry.
    fingerprint: String,
}

impl Shared {
    fn resolve(g: &GlobalArgs) -> Result<Self> {
        // The door's config also names the network its thresholds belong to: used unless
        // --models / --embedder say otherwise. A broken config only stops the commands that judge.
        let config = door_config(g.config.as_deref());
        // The gallery the door reads, unless told otherwise: never a file the door does not use.
        let gallery = match (&g.gallery, &config) {
            (Some(path), _) => Ok(path.clone()),
            (None, Ok(c)) => Ok(c.gallery.path.clone()),
            (None, Err(e)) => Err(format!(
                "the door's config cannot be read, so the gallery it uses is unknown: {e:#} (give --gallery FILE)"
            )),
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
        let embedder = match &gallery {
            Ok(path) => facegate::people::netform::resolve(&models, embedder.as_deref(), path)?,
            Err(e) if embedder.as_deref() == Some(facegate::people::netform::AUTO) => {
                anyhow::bail!("{e}")
            }
            Err(_) => embedder,
        };
        let fingerprint = models.embedder(embedder.as_deref())?.1.fingerprint.clone();
        Ok(Self {
            config,
            gallery,
            models,
            embedder,
            fingerprint,
        })
    }

    /// The gallery file, or why it is unknown.
    fn gallery(&self) -> Result<&Path> {
        self.gallery.as_deref().map_err(|e| anyhow::anyhow!("{e}"))
    }
}

/// The commands that look at faces: the networks are loaded for them.
fn with_networks(command: Command, g: &GlobalArgs, shared: &Shared) -> Result<ExitCode> {
    // Enrolment looks for faces down to 40 px so that a small face is refused as too small
    // rather than reported as missing (the open-set evaluation enrols, and reports small probes
    // as the door refuses them).
    let enrols = matches!(
        command,
        Command::Enroll(_)
            | Command::Import(_)
            | Command::Calibrate(CalibrateArgs {
                open_set: Some(_),
                ..
            })
    );
    let min_face = if enrols {
        g.min_face.min(40.0)
    } else {
        g.min_face
    };
    let params = photos::photo_params(&shared.models, min_face);
    let mut pipeline = Pipeline::new(&shared.models, shared.embedder.as_deref(), Some(params))
        .context("loading the face models")?;
    // The door's rule, from the same function the daemon takes it from (read only by the
    // commands that judge faces, so a broken config does not stop `embed`).
    let spec = pipeline.embedder_spec().clone();
    // The door's threshold follows its gallery's size (access::operating_point): the same here.
    let gallery_size = || -> usize {
        shared
            .gallery()
            .ok()
            .and_then(|p| Gallery::load_any_model(p).ok().flatten())
            .map_or(0, |g| g.people.len())
    };
    let door = || -> Result<(Config, Rule)> {
        let config = shared
            .config
            .as_ref()
            .map_err(|e| anyhow::anyhow!("{e:#}"))?
            .clone();
        let point = facegate::access::operating_point::for_config(&config, &spec, gallery_size())?;
        tracing::info!("{}", point.describe());
        let mut rule = config
            .decision_params(point.threshold, spec.min_margin)
            .rule();
        // A photo is not a presentation at a camera: liveness is the door's check alone.
        rule.min_liveness = None;
        rule.cues = false;
        Ok((config, rule))
    };
    let gallery = || shared.gallery();
    match command {
        Command::Embed { paths } => photos::embed(&mut pipeline, &paths),
        Command::Verify(v) => {
            let threshold = match v.threshold {
                Some(t) => t,
                None => door()?.1.threshold,
            };
            photos::verify(
                &mut pipeline,
                &v.a,
                &v.b,
                threshold,
                Output::json_if(v.json),
            )
        }
        Command::Identify { photos, json } => {
            let gallery = Gallery::load(gallery()?, &shared.fingerprint)?;
            let (config, rule) = door()?;
            people::identify(
                &mut pipeline,
                &gallery,
                &rule,
                &config.recognition.quality,
                &photos,
                Output::json_if(json),
            )
        }
        Command::Enroll(a) => {
            let code = enrol::enroll(&mut pipeline, gallery()?, &a, door()?.1.threshold)?;
            advise_photos(shared, &spec, gallery()?, Output::Text);
            Ok(code)
        }
        Command::Import(a) => {
            let code = enrol::import(&mut pipeline, gallery()?, &a, door()?.1.threshold)?;
            advise_photos(shared, &spec, gallery()?, Output::json_if(a.json));
            Ok(code)
        }
        Command::Calibrate(a) => calibrate::run(&mut pipeline, a, door, g.embedder.as_deref()),
        Command::Cluster(a) => analysis::cluster(
            &mut pipeline,
            &a.paths,
            a.threshold,
            Output::json_if(a.json),
        ),
        Command::List { .. }
        | Command::Show { .. }
        | Command::Remove { .. }
        | Command::Policy(_)
        | Command::Credential(_)
        | Command::Pin(_)
        | Command::Rename { .. }
        | Command::Bench(_)
        | Command::Reembed { .. }
        | Command::Audit { .. }
        | Command::Door { .. }
        | Command::Console { .. }
        | Command::Keygen { .. }
        | Command::Publish { .. }
        | Command::Remote { .. } => unreachable!("handled in run"),
    }
}

/// How many photos per person the site's `recognition.target_fnir` needs at a gallery of
/// `people`, at the operating point the door uses there; `None` when the config cannot be read
/// or the threshold is not a calibrated point (no figures to advise from).
fn photo_advice(
    shared: &Shared,
    spec: &facegate::vision::models::EmbedderManifest,
    people: usize,
) -> Option<PhotoAdvice> {
    let config = shared.config.as_ref().ok()?;
    let chosen = facegate::access::operating_point::for_config(config, spec, people).ok()?;
    PhotoAdvice::for_point(&chosen, config.recognition.target_fnir)
}

/// After an enrolment: one line when one photo each is not enough for the site's target at the
/// gallery's new size (on stderr under --json, whose stdout is one JSON object).
fn advise_photos(
    shared: &Shared,
    spec: &facegate::vision::models::EmbedderManifest,
    gallery: &Path,
    output: Output,
) {
    let Ok(Some(g)) = Gallery::load_any_model(gallery) else {
        return;
    };
    let Some(advice) = photo_advice(shared, spec, g.people.len()) else {
        return;
    };
    let fewer = people::fewer_photos(&g, &advice).count();
    if let Some(line) = advice.line(fewer) {
        match output {
            Output::Text => println!("{line}"),
            Output::Json => eprintln!("{line}"),
        }
    }
}

/// The config file whose [mqtt] names the broker: `--mqtt FILE`, else `--config`.
fn mqtt_file(mqtt: Option<&Path>, g: &GlobalArgs) -> Result<PathBuf> {
    mqtt.map(Path::to_owned)
        .or_else(|| g.config.clone())
        .ok_or_else(|| anyhow::anyhow!("--mqtt FILE: a config whose [mqtt] names the broker"))
}

/// The door's config: `--config` / `FACEGATE_CONFIG`, else the system one if it exists, else
/// the defaults (the same paths the door uses without a config file).
pub(crate) fn door_config(path: Option<&Path>) -> Result<Config> {
    let system = Path::new(facegate::config::DEFAULT_CONFIG);
    match path {
        Some(p) => Ok(Config::load(p)?),
        None if system.exists() => Ok(Config::load(system)?),
        None => Ok(Config::default()),
    }
}
