//! `facegate door status|events|unlock|lockdown|reload`: the running door, through its local
//! control API (a Unix socket; `facegate::door::control_api`). Unlocks and lockdowns go through
//! the door's gate and are audited with who asked.

use crate::output::Output;
use anyhow::{Context, Result};
use clap::Subcommand;
use facegate::door::control_api::{self, DEFAULT_SOCKET};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `facegate door ...`
#[derive(Subcommand)]
pub enum DoorCommand {
    /// The door's state: locked or unlocked and why, lockdown, camera health, alarms, the latest
    /// decisions.
    Status {
        /// The answer as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Every audit event from now on, one JSON line each, as the door records it (Ctrl-C ends).
    Events {
        /// Stop after this many events.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },
    /// Unlock the door once (as long as `[lock] unlock_seconds`), through the gate: refused in
    /// reader mode, and under audit.on_failure = "deny" when it cannot be recorded. Works in
    /// lockdown.
    Unlock {
        /// Who asks, for the audit log (default: your login name).
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
    },
    /// Lockdown on: no face and no office hours open the door (the exit button and remote
    /// unlocks still do). Off: back to normal.
    Lockdown {
        /// `on` or `off`.
        #[arg(value_parser = ["on", "off"])]
        state: String,
        /// Who asks, for the audit log (default: your login name).
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
    },
    /// Re-read the config and the gallery (as `systemctl reload facegated`).
    Reload {
        /// Who asks, for the log (default: your login name).
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
    },
    /// Every stored site version back to the door's clock: the recovery after the door took a
    /// message signed on a clock that ran ahead, so that correctly dated galleries and commands
    /// are taken again. Audited; a lockdown in force stays.
    SiteReset {
        /// Who asks, for the audit log (default: your login name).
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
    },
}

/// Runs `cmd` against the door whose socket is `socket`, or the one the door's config names
/// (`[control] socket` of `config`), or the default.
pub fn run(cmd: &DoorCommand, socket: Option<&Path>, config: Option<&Path>) -> Result<ExitCode> {
    let socket = match socket {
        Some(s) => s.to_owned(),
        None => socket_of(config)?,
    };
    let by = |b: &Option<String>| b.clone().unwrap_or_else(login_name);
    let request = match cmd {
        DoorCommand::Status { .. } => "status".to_owned(),
        DoorCommand::Events { count } => return events(&socket, *count),
        DoorCommand::Unlock { by: b } => format!("unlock by {}", by(b)),
        DoorCommand::Lockdown { state, by: b } => format!("lockdown {state} by {}", by(b)),
        DoorCommand::Reload { by: b } => format!("reload by {}", by(b)),
        DoorCommand::SiteReset { by: b } => format!("site reset by {}", by(b)),
    };
    let answer = control_api::ask(&socket, &request).with_context(|| connect_hint(&socket))?;
    match answer {
        Ok(text) => {
            match cmd {
                DoorCommand::Status { json } => match Output::json_if(*json) {
                    Output::Text => print_status(&text)?,
                    // The door's own answer is JSON.
                    Output::Json => println!("{text}"),
                },
                _ => println!("{text}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(refusal) => {
            eprintln!("the door refused: {refusal}");
            Ok(ExitCode::from(1))
        }
    }
}

fn connect_hint(socket: &Path) -> String {
    format!(
        "cannot reach the door's control API at {} (is facegated running? are you root, or in group facegate? unlock, lockdown and reload are for root and the door's user only)",
        socket.display()
    )
}

/// The socket the door's config names, or the default one.
fn socket_of(config: Option<&Path>) -> Result<PathBuf> {
    let default_config = Path::new(facegate::config::DEFAULT_CONFIG);
    let path = match config {
        Some(p) => p,
        None if default_config.exists() => default_config,
        None => return Ok(PathBuf::from(DEFAULT_SOCKET)),
    };
    let config = facegate::config::Config::load(path)
        .with_context(|| format!("the door's config {}", path.display()))?;
    config
        .control
        .socket()
        .map(Path::to_owned)
        .with_context(|| {
            format!(
                "{}: [control] socket is empty: the door has no control API",
                path.display()
            )
        })
}

/// Who runs this: the user behind sudo, else the login name, else the uid. Only characters the
/// protocol allows are kept.
pub(crate) fn login_name() -> String {
    let raw = ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| format!("uid-{}", own_uid()));
    let kept: String = raw
        .chars()
        .filter(|c| control_api::is_name_char(*c))
        .take(64)
        .collect();
    if kept.is_empty() {
        format!("uid-{}", own_uid())
    } else {
        kept
    }
}

fn own_uid() -> u32 {
    // The process's own uid from /proc (no libc call needed for a name of last resort).
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().next())
                .and_then(|u| u.parse().ok())
        })
        .unwrap_or(u32::MAX)
}

fn events(socket: &Path, count: Option<u64>) -> Result<ExitCode> {
    let mut seen = 0u64;
    control_api::follow_events(socket, |line| {
        println!("{line}");
        seen += 1;
        count.is_none_or(|n| seen < n)
    })
    .with_context(|| connect_hint(socket))?;
    Ok(ExitCode::SUCCESS)
}

/// `status` for people: one line per fact.
fn print_status(json: &str) -> Result<()> {
    let v: serde_json::Value = serde_json::from_str(json).context("the door's status")?;
    let door = &v["door"];
    let lock = door["lock"].as_str().unwrap_or("?");
    let held = door["held_by"]
        .as_str()
        .map(|h| format!(" (held by {h})"))
        .unwrap_or_default();
    println!("door:        {lock}{held}");
    println!(
        "lockdown:    {}",
        if door["lockdown"] == true {
            "ON"
        } else {
            "off"
        }
    );
    if door["reader_mode"] == true {
        println!("mode:        reader (the panel drives the lock)");
    }
    if door["office_hours"] == true {
        println!("office hours: open");
    }
    println!(
        "camera:      {}",
        if v["camera_ok"] == true {
            "ok"
        } else {
            "FAILING"
        }
    );
    if let Some(a) = v["alarm"].as_str() {
        println!("alarm:       {a}");
    }
    println!("people:      {}", v["people"]);
    println!("status:      {}", v["status"].as_str().unwrap_or(""));
    if let Some(recent) = v["recent"].as_array() {
        println!("latest decisions:");
        for e in recent {
            println!(
                "  {} {:5} {}{}",
                e["time"].as_str().unwrap_or(""),
                e["event"].as_str().unwrap_or(""),
                e["identity"].as_str().unwrap_or(""),
                e["reason"]
                    .as_str()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            );
        }
    }
    Ok(())
}
