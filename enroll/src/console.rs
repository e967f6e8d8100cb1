//! `facegate console user add|remove|list` and `facegate console fingerprint`: the web
//! console's accounts (the config's `[console] users`, argon2id hashes, 0600) and its TLS
//! certificate's SHA-256, to compare with what the browser shows.

use anyhow::{Context, Result};
use clap::Subcommand;
use facegate::console::users::{Role, Users, MAX_PASSWORD};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `facegate console ...`
#[derive(Subcommand)]
pub enum ConsoleCommand {
    /// The console's accounts.
    User {
        #[command(subcommand)]
        cmd: UserCommand,
        /// The accounts file (default: the config's `[console] users`).
        #[arg(long, global = true, value_name = "FILE")]
        users: Option<PathBuf>,
    },
    /// The SHA-256 fingerprint of the console's certificate (the self-signed one it made, or
    /// `[console] tls_cert`): compare it with the one the browser shows on first visit.
    Fingerprint,
}

/// `facegate console user ...`
#[derive(Subcommand)]
pub enum UserCommand {
    /// Add an account, or set a new password and role for an existing one (their sessions end
    /// within a request). Without --password-stdin a random password is made and printed once.
    Add {
        /// Login name: 1 to 32 of a-z A-Z 0-9 . _ - (the door's audit log records `NAME@console`).
        name: String,
        /// `viewer`: live view, door status, audit log. `admin`: also the door controls, the
        /// people and the review of unknown faces.
        #[arg(long, value_parser = ["viewer", "admin"])]
        role: String,
        /// Read the password (10 to 256 characters) from standard input, its first line.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Remove an account (its sessions end at its next request).
    Remove {
        /// Login name.
        name: String,
    },
    /// The accounts and their roles.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a console subcommand with the door's config `config` (its `[console]`).
pub fn run(cmd: &ConsoleCommand, config: Option<&Path>) -> Result<ExitCode> {
    let config = crate::door_config(config)?;
    match cmd {
        ConsoleCommand::Fingerprint => {
            let (cert, _) = config.console.tls_files();
            if !cert.exists() {
                anyhow::bail!(
                    "{}: no certificate yet (the console makes its own at first start)",
                    cert.display()
                );
            }
            println!("SHA-256 {}", facegate::console::tls::fingerprint(&cert)?);
            Ok(ExitCode::SUCCESS)
        }
        ConsoleCommand::User { cmd, users } => {
            let path = users.clone().unwrap_or(config.console.users.clone());
            user(cmd, &path)
        }
    }
}

fn user(cmd: &UserCommand, path: &Path) -> Result<ExitCode> {
    let mut users = Users::load(path)?;
    match cmd {
        UserCommand::Add {
            name,
            role,
            password_stdin,
        } => {
            let role = Role::parse(role).context("--role is viewer or admin")?;
            let (password, made) = if *password_stdin {
                let mut text = String::new();
                std::io::stdin()
                    .take(MAX_PASSWORD as u64 + 2)
                    .read_to_string(&mut text)
                    .context("reading the password from standard input")?;
                let line = text.lines().next().unwrap_or("").to_owned();
                (line, false)
            } else {
                (facegate::console::auth::random_hex(12)?, true)
            };
            // Before the console's first start its state folder is not there yet; systemd
            // hands it (and this file) to the console's user when it starts the unit.
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                use std::os::unix::fs::DirBuilderExt;
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .with_context(|| dir.display().to_string())?;
            }
            let existed = users.get(name).is_some();
            users.set(name, role, &password)?;
            users.save(path)?;
            println!(
                "{} {name} ({}) in {}",
                if existed { "updated" } else { "added" },
                role.word(),
                path.display()
            );
            if made {
                println!("password (shown once): {password}");
            }
            Ok(ExitCode::SUCCESS)
        }
        UserCommand::Remove { name } => {
            if !users.remove(name) {
                eprintln!("no account {name} in {}", path.display());
                return Ok(ExitCode::from(1));
            }
            users.save(path)?;
            println!("removed {name}");
            Ok(ExitCode::SUCCESS)
        }
        UserCommand::List { json } => {
            if *json {
                let v: Vec<_> = users
                    .users
                    .iter()
                    .map(|u| serde_json::json!({"name": u.name, "role": u.role.word()}))
                    .collect();
                println!("{}", serde_json::to_string(&v)?);
            } else {
                for u in &users.users {
                    println!("{:<32} {}", u.name, u.role.word());
                }
                println!("{} account(s)", users.users.len());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
