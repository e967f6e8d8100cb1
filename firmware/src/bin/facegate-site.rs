//! `facegate-site`: the site link as a process of its own (issue #24). It talks MQTT to the
//! site's broker and reaches the door only through the door's control API and the audit log it
//! reads, so the process that drives the lock (`facegated`) needs no network at all, and a
//! fault or a compromise here can do no more than the site's signing key allows.

use anyhow::{Context, Result};
use clap::Parser;
use facegate::config::{Config, DEFAULT_CONFIG};
use facegate::drivers::service::SdNotify;
use facegate::hal::Supervisor;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The facegate site link: the door's events to the site's MQTT broker, the site's signed
/// gallery and commands to the door's control API.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// The door's config file (TOML): `[mqtt]`, `[audit] path` and `[control] socket` are used.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// Check the settings (certificates, keys, password file), then exit.
    #[arg(long)]
    check: bool,
    /// More log output (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

/// A link loop that has not gone round for this long is hung: the watchdog is not fed, and
/// systemd restarts the link (the unit's WatchdogSec is longer).
const HUNG: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    let args = Args::parse();
    facegate::drivers::service::init_logging(args.verbose);
    facegate::drivers::service::exit_status("facegate-site", run(args))
}

fn run(args: Args) -> Result<()> {
    let config = Config::load(&args.config)?;
    let mqtt = config
        .mqtt
        .as_ref()
        .with_context(|| format!("{}: no [mqtt]: nothing to link", args.config.display()))?;
    let socket = config
        .control
        .socket()
        .context("control.socket is empty: the site link reaches the door only through it")?;
    if args.check {
        facegate::site::link::options(mqtt, "facegate-site-check", None)?;
        println!(
            "site link OK: broker {}:{} ({}), door {}/{}, control API {}",
            mqtt.host,
            mqtt.port,
            if mqtt.tls { "TLS" } else { "plain, loopback" },
            mqtt.site,
            mqtt.door,
            socket.display()
        );
        return Ok(());
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    // The cursor in the unit's own state directory (the door's is read-only to this user).
    let mut mqtt = mqtt.clone();
    if mqtt.cursor.is_none() {
        if let Some(dir) = std::env::var_os("STATE_DIRECTORY") {
            mqtt.cursor = Some(PathBuf::from(dir).join("audit.mqtt-cursor"));
        }
    }
    let link = facegate::site::start(&mqtt, &config.audit.path, socket).context("[mqtt]")?;
    let mut notify = SdNotify::from_env();
    notify.ready();
    tracing::info!(
        "site link for {}/{}: broker {}:{}, door's control API {}",
        mqtt.site,
        mqtt.door,
        mqtt.host,
        mqtt.port,
        socket.display()
    );
    while !stop.load(Ordering::SeqCst) && !link.finished() {
        if link.since_alive() < HUNG {
            notify.watchdog();
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    notify.stopping();
    link.stop();
    Ok(())
}
