//! `facegated`: the door daemon. Drives the lock to "locked" first (from a tolerant read of
//! `[lock]`, so nothing that can fail comes before it), then checks its config, opens the camera,
//! loads the models, and runs the door until SIGTERM/SIGINT (SIGHUP reloads).

use anyhow::{Context, Result};
use clap::Parser;
use facegate::config::{CameraSource, Config, DEFAULT_CONFIG};
use facegate::control::Control;
use facegate::daemon::{self, Devices};
use facegate::door::control_api::people::GalleryAccess;
use facegate::door::control_api::ControlApi;
use facegate::door::lockpin::{self, LockPin};
use facegate::drivers::hw::{GpioRelay, V4l2Camera};
use facegate::drivers::hw_inputs::GpioDoorIo;
use facegate::drivers::hw_wiegand::GpioWiegand;
use facegate::drivers::rpicam::RpicamCamera;
use facegate::drivers::service::SdNotify;
use facegate::hal::{CameraError, FrameSource, SystemClock};
use facegate::panel::reader::{CredentialOutput, OutputMode};
use facegate::panel::wiegand::{Timing, WiegandOutput};
use facegate::records::audit::AuditLog;
use facegate::site::SiteTrust;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The facegate door daemon: camera -> face recognition -> relay, with an audit log.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// Config file (TOML). Without this option, /etc/facegate/config.toml is read if it exists,
    /// and the defaults are used if it does not.
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Check the config and load the models, then exit (0 if all is well).
    #[arg(long)]
    check: bool,
    /// Drive the relay to "locked" and exit (systemd's ExecStopPost, so the door is locked even
    /// after the daemon was killed). Uses the pin the last daemon recorded, else the config's
    /// `[lock]` read tolerantly (a broken file elsewhere does not stop it), else GPIO17.
    #[arg(long, conflicts_with = "check")]
    lock: bool,
    /// Where the daemon records the pin it drives, for `--lock`.
    #[arg(long, value_name = "PATH", default_value = lockpin::RECORD_PATH)]
    lock_record: PathBuf,
    /// More log output (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

fn main() -> ExitCode {
    let args = Args::parse();
    facegate::drivers::service::init_logging(args.verbose);
    facegate::drivers::service::exit_status("facegated", run(args))
}

/// The pin to drive locked, chosen without the strict config check (see `lockpin`).
fn choose_pin(args: &Args, path: Option<&Path>) -> lockpin::Choice {
    let read = |p: &Path| match std::fs::read_to_string(p) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            tracing::warn!("{}: {e}", p.display());
            None
        }
    };
    let record = if args.lock {
        read(&args.lock_record)
    } else {
        // At start the config decides: the record is what a previous run drove.
        None
    };
    let config = path.and_then(read);
    let choice = lockpin::choose(record.as_deref(), config.as_deref());
    for note in &choice.notes {
        tracing::warn!("lock: {note}");
    }
    choice
}

/// Drives the chosen pin locked; the error says which pin and why.
fn lock_now(choice: &lockpin::Choice) -> Result<GpioRelay> {
    GpioRelay::open(choice.pin).with_context(|| format!("cannot lock {choice}"))
}

fn run(args: Args) -> Result<()> {
    let path = match &args.config {
        Some(p) => Some(p.clone()),
        None if Path::new(DEFAULT_CONFIG).exists() => Some(PathBuf::from(DEFAULT_CONFIG)),
        None => None,
    };
    if args.lock {
        let choice = choose_pin(&args, path.as_deref());
        lock_now(&choice)?;
        // Released on exit; the line keeps its level (see hw::GpioRelay).
        println!("{choice}: driven to locked");
        return Ok(());
    }
    if args.check {
        let config = load(path.as_deref())?;
        config
            .control
            .operator_key()
            .context("[control] operator_key")?;
        let pipeline = daemon::load_pipeline(&config)?;
        println!(
            "config OK; model {}, {}",
            pipeline.embedder_name(),
            config.threshold_record(pipeline.embedder_spec().threshold)
        );
        for w in config.warnings() {
            println!("warning (loosens security): {w}");
        }
        return Ok(());
    }
    // The lock first, before anything that can fail: from here on the pin drives "locked".
    let choice = choose_pin(&args, path.as_deref());
    let lock = lock_now(&choice).inspect_err(|e| tracing::error!("{e:#}"));
    if lock.is_ok() {
        tracing::info!("{choice}: driven to locked");
        if let Err(e) = lockpin::write_record(&args.lock_record, choice.pin) {
            tracing::error!(
                "{}: cannot record the lock pin ({e}); `facegated --lock` will read the config",
                args.lock_record.display()
            );
        }
    }
    let config = load(path.as_deref())?;
    let lock = lock?;
    if LockPin::of(&config.lock) != choice.pin {
        // Cannot happen with one file read twice, unless it changed in between: start again.
        anyhow::bail!("the config changed while starting (lock.gpio/active_low); restart");
    }
    // A log that cannot be opened is retried per event; meanwhile audit.on_failure applies.
    let mut audit =
        AuditLog::open_or_later(&config.audit.path).with_rotation(config.audit.rotation());
    // A camera missing now (unplugged, slow USB enumeration at boot) is retried by the loop.
    let camera = Camera::open_or_later(&config.camera);
    // NIR mode: the second camera, opened (or retried) the same way.
    let nir = config
        .liveness
        .nir
        .as_ref()
        .map(|n| Box::new(Camera::open_or_later(&n.camera)) as Box<dyn FrameSource + Send>);
    // Exit button, door contact and alarm output as `[door]` says (none configured: nothing).
    let sensors = GpioDoorIo::open(&config.door).context("the [door] GPIO lines")?;
    let credentials = facegate::drivers::credential_inputs(&config.access.inputs)
        .context("the [access.inputs] card reader / keypad")?;
    let mut pipeline = daemon::load_pipeline(&config).context("loading the models")?;
    let control = Control::default();
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, control.stop_flag())?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGHUP, control.reload_flag())?;
    let clock = SystemClock::default();
    let mut notify = SdNotify::from_env();
    // Reader mode: the panel drives the lock; the relay pin stays driven to locked.
    let mut output: Option<Box<dyn CredentialOutput>> = match config.output.mode {
        OutputMode::Relay => None,
        OutputMode::Wiegand => Some(Box::new(WiegandOutput::new(
            GpioWiegand::open(&config.output.wiegand).context("Wiegand output")?,
            Timing::of(&config.output.wiegand),
        ))),
        OutputMode::Osdp => Some(open_osdp(&config)?),
    };
    let output = output.as_deref_mut();
    // The local control API (`facegate door ...`): a door that cannot offer it still works.
    let api_stop = Arc::new(AtomicBool::new(false));
    // The site link is another process (`facegate-site`): what it hands over is judged here,
    // with the site's public key.
    let site = match &config.mqtt {
        Some(m) => SiteTrust::open(
            m,
            &config.gallery.path,
            &pipeline.embedder_spec().fingerprint,
        )
        .context("[mqtt] site_key")?,
        None => None,
    };
    // A configured key that cannot be used stops the start: the console would be locked out.
    let operator_key = config
        .control
        .operator_key()
        .context("[control] operator_key")?;
    let (api_server, api) = match config.control.socket() {
        Some(path) => match ControlApi::bind(path) {
            Ok(bound) => {
                tracing::info!("control API on {}", path.display());
                let bound = match site {
                    Some((trust, startup)) => bound.with_site(trust, startup, &control),
                    None => bound,
                };
                // Decision pictures and gallery changes (`people add`, ...), admin only.
                let bound = bound
                    .with_gallery(GalleryAccess::new(&config, pipeline.embedder_spec()))
                    .with_operator_key(operator_key);
                let (server, rx) = bound.serve(api_stop.clone());
                (Some(server), Some(rx))
            }
            Err(e) => {
                tracing::error!("no control API: {}: {e}", path.display());
                (None, None)
            }
        },
        None => (None, None),
    };
    let summary = daemon::run(
        daemon::Parts {
            config,
            config_path: path.clone(),
            pipeline: &mut pipeline,
            devices: Devices {
                camera,
                lock,
                sensors,
                nir,
                credentials,
            },
            clock: &clock,
            supervisor: &mut notify,
            audit: &mut audit,
            output,
            api,
        },
        &control,
    );
    api_stop.store(true, Ordering::SeqCst);
    drop(api_server);
    let summary = summary?;
    tracing::info!(
        frames = summary.frames,
        grants = summary.grants,
        denials = summary.denials,
        "stopped; door locked"
    );
    Ok(())
}

/// The strict config (or the defaults when there is no file).
fn load(path: Option<&Path>) -> Result<Config> {
    match path {
        Some(p) => Ok(Config::load(p)?),
        None => {
            tracing::warn!("no {DEFAULT_CONFIG}: using the defaults");
            Ok(Config::default())
        }
    }
}

/// The camera `[camera] source` chose.
enum Camera {
    V4l2(V4l2Camera),
    Rpicam(RpicamCamera),
}

impl Camera {
    /// The camera `cfg.source` names (one missing now is retried by the daemon).
    fn open_or_later(cfg: &facegate::config::CameraConfig) -> Self {
        match cfg.source {
            CameraSource::V4l2 => Self::V4l2(V4l2Camera::open_or_later(cfg)),
            CameraSource::Rpicam => Self::Rpicam(RpicamCamera::open_or_later(cfg)),
        }
    }
}

impl FrameSource for Camera {
    fn next_frame(&mut self, frame: &mut image::RgbImage) -> Result<(), CameraError> {
        match self {
            Self::V4l2(c) => c.next_frame(frame),
            Self::Rpicam(c) => c.next_frame(frame),
        }
    }

    fn reopen(&mut self) -> Result<(), CameraError> {
        match self {
            Self::V4l2(c) => c.reopen(),
            Self::Rpicam(c) => c.reopen(),
        }
    }

    fn sequence(&self) -> Option<u64> {
        match self {
            Self::V4l2(c) => c.sequence(),
            Self::Rpicam(c) => c.sequence(),
        }
    }
}

/// The OSDP reader on `[output.osdp]`'s serial line; the panel's LED and buzzer commands are
/// logged and counted (no LED or buzzer hardware on the Pi yet).
#[cfg(feature = "osdp")]
fn open_osdp(config: &Config) -> Result<Box<dyn CredentialOutput>> {
    let status = Box::<facegate::panel::osdp::LoggedStatus>::default();
    let out = facegate::panel::osdp_pd::OsdpOutput::open(&config.output.osdp, status)
        .context("OSDP reader ([output.osdp])")?;
    Ok(Box::new(out))
}

#[cfg(not(feature = "osdp"))]
fn open_osdp(_: &Config) -> Result<Box<dyn CredentialOutput>> {
    anyhow::bail!("output.mode = \"osdp\": this facegated was built without the `osdp` feature")
}
