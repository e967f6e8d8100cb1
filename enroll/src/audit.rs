//! `facegate audit verify`: checks the audit log's hash chain and names the first broken line.

use anyhow::Result;
use clap::Subcommand;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The default audit log (the daemon's `[audit] path`).
const DEFAULT_LOG: &str = "/var/lib/facegate/audit.jsonl";

/// `facegate audit ...`
#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check the audit log's sequence numbers and hash chain. Exit status 0 if every line checks
    /// out (lines written before the chain existed are counted as "unchained"), 1 at the first
    /// edited, inserted or removed line (named with its number), 2 if the log cannot be read.
    Verify {
        /// The audit log (default: /var/lib/facegate/audit.jsonl).
        path: Option<PathBuf>,
    },
}

/// Runs an audit subcommand.
pub fn run(cmd: &AuditCommand) -> Result<ExitCode> {
    match cmd {
        AuditCommand::Verify { path } => verify(path.as_deref().unwrap_or(Path::new(DEFAULT_LOG))),
    }
}

fn verify(path: &Path) -> Result<ExitCode> {
    let r = facegate::audit::verify(path)?;
    let p = path.display();
    if let Some(seq) = r.continues_at {
        println!(
            "{p}: starts at seq {seq}: continues an earlier file, its first line taken on trust"
        );
    }
    if let Some((line, why)) = &r.broken {
        println!("{p}: line {line}: {why}");
        println!(
            "{p}: BROKEN at line {line} ({} line(s) before it verified)",
            r.chained
        );
        return Ok(ExitCode::from(1));
    }
    println!(
        "{p}: {} line(s) verified, {} unchained (written before the hash chain)",
        r.chained, r.unchained
    );
    Ok(ExitCode::SUCCESS)
}
