//! `facegated`: the door daemon. Reads its config, drives the lock to "locked", opens the camera,
//! loads the models, then runs the door until SIGTERM/SIGINT (SIGHUP reloads).

use anyhow::{Context, Result};
use clap::Parser;
use facegate::audit::AuditLog;
use facegate::config::Config;
use facegate::daemon::{self, Devices};
use facegate::hal::{Control, NoSensors, SystemClock};
use facegate::hw::{GpioRelay, V4l2Camera};
use facegate::service::SdNotify;
use std::path::PathBuf;
use std::process::ExitCode;

const DEFAULT_CONFIG: &str = "/etc/facegate/config.toml";

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
    /// after the daemon was killed).
    #[arg(long, conflicts_with = "check")]
    lock: bool,
    /// More log output (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let level = ["info", "debug", "trace"][usize::from(args.verbose.min(2))];
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    // journald stamps lines itself.
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    if journald {
        builder.without_time().init();
    } else {
        builder.init();
    }
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("facegated: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<()> {
    let (config, path) = match args.config {
        Some(p) => (Config::load(&p)?, Some(p)),
        None if std::path::Path::new(DEFAULT_CONFIG).exists() => {
            let p = PathBuf::from(DEFAULT_CONFIG);
            (Config::load(&p)?, Some(p))
        }
        None => {
            tracing::warn!("no {DEFAULT_CONFIG}: using the defaults");
            (Config::default(), None)
        }
    };
    if args.check {
        let pipeline = daemon::load_pipeline(&config)?;
        println!(
            "config OK; model {} (threshold {:.3})",
            pipeline.embedder_name(),
            pipeline.embedder_spec().threshold
        );
        return Ok(());
    }
    // The lock first: from here on the pin drives "locked".
    let lock = GpioRelay::open(&config.lock)?;
    if args.lock {
        // Opening drove the pin to "locked"; the driver leaves it driven on exit.
        println!("GPIO{} driven to locked", config.lock.gpio);
        return Ok(());
    }
    let mut audit = AuditLog::open(&config.audit.path)?;
    // A camera missing now (unplugged, slow USB enumeration at boot) is retried by the loop.
    let camera = V4l2Camera::open_or_later(&config.camera);
    let mut pipeline = daemon::load_pipeline(&config).context("loading the models")?;
    let control = Control::default();
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, control.stop_flag())?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGHUP, control.reload_flag())?;
    let clock = SystemClock::default();
    let mut notify = SdNotify::from_env();
    let summary = daemon::run(
        config,
        path.as_deref(),
        &mut pipeline,
        Devices {
            camera,
            lock,
            sensors: NoSensors,
        },
        &clock,
        &control,
        &mut notify,
        &mut audit,
    )?;
    tracing::info!(
        frames = summary.frames,
        grants = summary.grants,
        denials = summary.denials,
        "stopped; door locked"
    );
    Ok(())
}
