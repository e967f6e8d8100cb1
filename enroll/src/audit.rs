//! `facegate audit verify`: checks the audit log's hash chain (across its rotated files), names
//! the first broken line, says when the log starts mid-chain, and checks it against a head kept
//! elsewhere; `facegate audit head`: that head; `facegate audit query`: who came in, when,
//! denials, alarms, with filters, as a table, JSON lines or CSV.

use anyhow::{Context, Result};
use clap::Subcommand;
use facegate::records::audit::{Anchor, Head, Status};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `facegate audit ...`
#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check the audit log's sequence numbers and hash chain, across its rotated files. Exit
    /// status 0 if every line checks out from the start of the chain (lines written before the
    /// chain existed are counted as "unchained"); 1 at the first edited, inserted or removed
    /// line (named with its file and number), or when the log does not hold the head given with
    /// --head (cut or rewritten); 2 if the log cannot be read; 3 if every line present checks
    /// out but the log starts in the middle of its chain (earlier lines missing: nothing vouches
    /// for its first line).
    Verify {
        /// The audit log (default: the door config's `[audit] path`).
        path: Option<PathBuf>,
        /// A head kept from earlier (`facegate audit head`, or the site link's): the log must
        /// still hold the line with this seq and hash. Without one, a cut tail does not show.
        #[arg(long, value_name = "SEQ:HASH", conflicts_with = "head_file")]
        head: Option<String>,
        /// The same, from a file holding what `facegate audit head [--json]` printed.
        #[arg(long, value_name = "FILE")]
        head_file: Option<PathBuf>,
    },
    /// The log's head: the seq and hash of its last line, and its file. Keep it somewhere the
    /// door cannot write, and give it to `verify --head` later.
    Head {
        /// The audit log (default: the door config's `[audit] path`).
        path: Option<PathBuf>,
        /// As a JSON object (`seq`, `hash`, `file`).
        #[arg(long)]
        json: bool,
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
        AuditCommand::Verify {
            path,
            head,
            head_file,
        } => {
            let anchor = match (head, head_file) {
                (Some(h), _) => Some(Head::parse(h)?),
                (None, Some(f)) => Some(read_head(f)?),
                (None, None) => None,
            };
            verify(&log(path.as_deref())?, anchor.as_ref())
        }
        AuditCommand::Head { path, json } => head(&log(path.as_deref())?, *json),
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

/// A head from a file (`facegate audit head [--json] > FILE`).
fn read_head(f: &Path) -> Result<Head> {
    let mut text = String::new();
    // A head is one short line: read no more than a few of them.
    std::io::Read::read_to_string(
        &mut std::io::Read::take(
            std::fs::File::open(f).with_context(|| f.display().to_string())?,
            4096,
        ),
        &mut text,
    )
    .with_context(|| f.display().to_string())?;
    Head::parse(&text).with_context(|| f.display().to_string())
}

fn head(path: &Path, json: bool) -> Result<ExitCode> {
    let Some((h, file)) = facegate::records::audit::head_in(path)? else {
        anyhow::bail!(
            "{}: no chained line yet (an empty log, or only lines from before the chain)",
            path.display()
        );
    };
    if json {
        let v = serde_json::json!({"seq": h.seq, "hash": h.hash, "file": file});
        println!("{v}");
    } else {
        println!("{h} {}", file.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(path: &Path, anchor: Option<&Head>) -> Result<ExitCode> {
    // The active file and the files rotated away from it, as one chain.
    let files = facegate::records::rotation::all_files(path);
    if files.is_empty() {
        anyhow::bail!("{}: no such audit log", path.display());
    }
    let r = facegate::records::audit::verify_anchored(&files, anchor)?;
    let p = path.display();
    if files.len() > 1 {
        println!(
            "{p}: checked with its {} rotated file(s), lines counted across them",
            files.len() - 1
        );
    }
    if let Some(((line, why), (file, at))) = r.broken.as_ref().zip(r.broken_in.as_ref()) {
        println!("{}: line {at}: {why}", file.display());
        println!(
            "{p}: BROKEN at line {line} ({} line(s) before it verified)",
            r.chained
        );
    }
    if let (Some(a), Some(anchor)) = (&r.anchor, anchor) {
        let s = anchor.seq;
        match a {
            Anchor::Found => println!("{p}: holds the anchored head {anchor}"),
            Anchor::Missing { last } => println!(
                "{p}: CUT OR REWRITTEN: the anchored head seq {s} is not in the log ({})",
                last.map_or("no chained line".into(), |l| format!("it ends at seq {l}"))
            ),
            Anchor::Differs { hash } => println!(
                "{p}: CUT OR REWRITTEN: seq {s} has hash {hash}, the anchored head says {}",
                anchor.hash
            ),
            Anchor::Gone { first } => println!(
                "{p}: the anchored head seq {s} is before the first line present (seq {first}): \
                 its file is gone, it cannot be checked"
            ),
            Anchor::NotReached => {
                println!("{p}: the chain breaks before the anchored head seq {s}")
            }
        }
    }
    match r.status() {
        Status::Broken => return Ok(ExitCode::from(1)),
        Status::Unvouched => {
            let seq = r.continues_at.unwrap_or_default();
            println!(
                "{p}: NOT VERIFIED: starts at seq {seq}: earlier lines missing, cannot vouch for \
                 the first line ({} line(s) from it on check out; rotated files deleted by \
                 audit.retention_days, or lines removed)",
                r.chained
            );
            return Ok(ExitCode::from(3));
        }
        Status::Verified => {}
    }
    println!(
        "{p}: {} line(s) verified, {} unchained (written before the hash chain)",
        r.chained, r.unchained
    );
    if let Some(h) = &r.head {
        println!("{p}: head {h}");
    }
    Ok(ExitCode::SUCCESS)
}
