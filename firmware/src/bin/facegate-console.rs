//! `facegate-console`: the door's web console as a process of its own (issue #25). It serves
//! HTTPS pages for the live view, the people, the audit log and the review of unknown faces; it
//! drives nothing itself but reaches the door only through the control API (with the operator
//! key), and reads the gallery and the audit log read-only.

use anyhow::{Context, Result};
use clap::Parser;
use facegate::config::{Config, DEFAULT_CONFIG};
use facegate::console::{read_operator_key, server, tls, users::Users};
use facegate::drivers::service::SdNotify;
use facegate::hal::Supervisor;
use std::path::PathBuf;
use std::process::ExitCode;

/// The facegate web console (HTTPS): live view, door controls, people, audit log, review.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// The door's config file (TOML): `[console]`, `[control] socket`, `[gallery] path`,
    /// `[audit] path` and `[recognition]` are used.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// Check the settings (users file, certificate, operator key), then exit.
    #[arg(long)]
    check: bool,
    /// More log output (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

fn main() -> ExitCode {
    let args = Args::parse();
    facegate::drivers::service::init_logging(args.verbose);
    facegate::drivers::service::exit_status("facegate-console", run(args))
}

fn run(args: Args) -> Result<()> {
    let config = Config::load(&args.config)?;
    let c = &config.console;
    let addr = c
        .listen_addr()
        .map_err(|(key, problem)| anyhow::anyhow!("{key}: {problem}"))?;
    let users = Users::load(&c.users)?;
    if users.users.is_empty() {
        tracing::warn!(
            "{} has no accounts: add one with `facegate console user add NAME --role admin`",
            c.users.display()
        );
    }
    let operator_key = if c.operator_key.as_os_str().is_empty() {
        None
    } else {
        Some(read_operator_key(&c.operator_key)?)
    };
    let (cert, _) = c.tls_files();
    if args.check {
        // Checked, never made here: a certificate made by root at --check would be one the
        // console's user cannot read.
        if c.tls && (!c.self_signed() || cert.exists()) {
            tls::server_config(c)?;
        }
        println!(
            "{}: console settings OK ({} account(s), {})",
            args.config.display(),
            users.users.len(),
            if c.tls {
                "HTTPS"
            } else {
                "plain HTTP on loopback"
            }
        );
        return Ok(());
    }
    let listener =
        std::net::TcpListener::bind(addr).with_context(|| format!("listening on {addr}"))?;
    let scheme = if c.tls { "https" } else { "http" };
    let mut notify = SdNotify::from_env();
    // SIGTERM (systemd's stop) or Ctrl-C ends the server; the runtime is the console's own.
    let stop = async {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    server::run_blocking(config.clone(), operator_key, listener, stop, || {
        notify.ready();
        tracing::info!("console on {scheme}://{addr}");
    })?;
    notify.stopping();
    Ok(())
}
