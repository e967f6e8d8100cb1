//! `facegate audit verify`: checks the audit log's hash chain (across its rotated files) and
//! names the first broken line; `facegate audit query`: who came in, when, denials, alarms, with
//! filters, as a table, JSON lines or CSV.

use anyhow::{Context, Result};
use clap::Subcommand;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `facegate audit ...`
#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check the audit log's sequence numbers and hash chain. Exit status 0 if every line checks
    /// out (lines written before the chain existed are counted as "unchained"), 1 at the first
    /// edited, inserted or removed line (named with its number), 2 if the log cannot be read.
    Verify {
        /// The audit log (default: the door config's `[audit] path`).
        path: Option<PathBuf>,
    },
    /// Events of the log and its rotated files, oldest first: e.g. `--entries --person ada
    /// --since 2026-11-01`, `--denials --json`, `--alarms --csv`.
    Query(Query),
}

/// Filters and format of `facegate audit query`.
#[derive(clap::Args, Debug)]
pub struct Query {
    /// The audit log (default: the door config's `[audit] path`); its rotated files are read too.
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// Only this person (grants, and denials that name them).
    #[arg(long)]
    pub person: Option<String>,
    /// Only these events (repeatable), e.g. grant, deny, exit, forced_open, held_open, lockout.
    #[arg(long)]
    pub event: Vec<String>,
    /// Who came in: grant and exit events.
    #[arg(long)]
    pub entries: bool,
    /// Denials only.
    #[arg(long)]
    pub denials: bool,
    /// Alarms only: forced_open, held_open, tamper, camera_lost, lockout, audit_failed.
    #[arg(long)]
    pub alarms: bool,
    /// From this time on: RFC 3339 (2026-11-29T08:00:00Z) or a UTC date (2026-11-29).
    #[arg(long)]
    pub since: Option<String>,
    /// Before this time (same forms).
    #[arg(long)]
    pub until: Option<String>,
    /// One JSON object per line (the log's own lines).
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// CSV with a header line.
    #[arg(long)]
    pub csv: bool,
}

/// How `query` prints the events it selects (`--json`, `--csv`, else a table).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    /// One line per event for people, and a count at the end.
    Table,
    /// The log's own lines.
    JsonLines,
    /// CSV with a header line.
    Csv,
}

const ALARMS: [&str; 6] = [
    "forced_open",
    "held_open",
    "tamper",
    "camera_lost",
    "lockout",
    "audit_failed",
];

/// Runs an audit subcommand; without a path, on the log the door's config (`config`, see
/// `door_config`) names.
pub fn run(cmd: &AuditCommand, config: Option<&Path>) -> Result<ExitCode> {
    let log = |given: Option<&Path>| -> Result<PathBuf> {
        match given {
            Some(p) => Ok(p.to_owned()),
            None => Ok(crate::door_config(config)
                .context("the door's config names the audit log (or give its path)")?
                .audit
                .path),
        }
    };
    match cmd {
        AuditCommand::Verify { path } => verify(&log(path.as_deref())?),
        AuditCommand::Query(q) => query(q, &log(q.log.as_deref())?),
    }
}

/// A time bound as the log writes times (RFC 3339 UTC, milliseconds), so they compare as text.
fn bound(s: &str) -> Result<String> {
    let t = humantime::parse_rfc3339_weak(s)
        .or_else(|_| humantime::parse_rfc3339_weak(&format!("{s}T00:00:00")))
        .or_else(|_| humantime::parse_rfc3339(s))
        .with_context(|| {
            format!("{s:?} is not a time (2026-11-29T08:00:00Z) or a date (2026-11-29)")
        })?;
    Ok(humantime::format_rfc3339_millis(t).to_string())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn query(q: &Query, path: &Path) -> Result<ExitCode> {
    let files = facegate::records::rotation::all_files(path);
    if files.is_empty() {
        anyhow::bail!("{}: no such audit log", path.display());
    }
    let since = q.since.as_deref().map(bound).transpose()?;
    let until = q.until.as_deref().map(bound).transpose()?;
    let mut kinds: Vec<&str> = q.event.iter().map(String::as_str).collect();
    if q.entries {
        kinds.extend(["grant", "exit"]);
    }
    if q.denials {
        kinds.push("deny");
    }
    if q.alarms {
        kinds.extend(ALARMS);
    }
    let cols = [
        "seq", "time", "event", "identity", "name", "reason", "nearest", "distance",
    ];
    let format = match (q.json, q.csv) {
        (true, _) => Format::JsonLines,
        (false, true) => Format::Csv,
        (false, false) => Format::Table,
    };
    let out = std::io::stdout();
    let mut out = out.lock();
    if format == Format::Csv {
        writeln!(out, "{}", cols.join(","))?;
    }
    let mut n = 0u64;
    for f in &files {
        let text = std::fs::read_to_string(f).with_context(|| f.display().to_string())?;
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                tracing::warn!("{}: skipping a line that is not JSON", f.display());
                continue;
            };
            let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("");
            let time = s("time");
            if since.as_deref().is_some_and(|b| time < b)
                || until.as_deref().is_some_and(|b| time >= b)
            {
                continue;
            }
            if !kinds.is_empty() && !kinds.contains(&s("event")) {
                continue;
            }
            if let Some(p) = &q.person {
                if s("identity") != p && s("nearest") != p {
                    continue;
                }
            }
            n += 1;
            let field = |k: &str| match v.get(k) {
                Some(serde_json::Value::String(x)) => x.clone(),
                Some(serde_json::Value::Null) | None => String::new(),
                Some(x) => x.to_string(),
            };
            match format {
                Format::JsonLines => writeln!(out, "{line}")?,
                Format::Csv => {
                    let row: Vec<String> = cols.iter().map(|c| csv_field(&field(c))).collect();
                    writeln!(out, "{}", row.join(","))?;
                }
                Format::Table => {
                    let who = match (field("identity"), field("name")) {
                        (i, nm) if !nm.is_empty() => format!("{i} ({nm})"),
                        (i, _) => i,
                    };
                    writeln!(
                        out,
                        "{:<24} {:<18} {:<28} {}",
                        time,
                        field("event"),
                        who,
                        field("reason")
                    )?;
                }
            }
        }
    }
    if format == Format::Table {
        writeln!(out, "{n} event(s) from {} file(s)", files.len())?;
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(path: &Path) -> Result<ExitCode> {
    // The active file and the files rotated away from it, as one chain.
    let files = facegate::records::rotation::all_files(path);
    let r = if files.len() > 1 {
        facegate::records::audit::verify_files(&files)?
    } else {
        facegate::records::audit::verify(path)?
    };
    if files.len() > 1 {
        println!(
            "{}: checked with its {} rotated file(s), lines counted across them",
            path.display(),
            files.len() - 1
        );
    }
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
