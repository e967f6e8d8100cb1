//! `facegate policy ID ...`: shows or edits one person's access policy (enabled, valid from /
//! until, weekly windows) under the gallery's lock, and says whether the door would let them in
//! now and, if not, which rule refuses (`disabled`, `not_yet_valid`, `expired`,
//! `outside_schedule`), as the audit log would.

use crate::output::Output;
use anyhow::Result;
use clap::Args;
use facegate::people::gallery::{GalleryError, Locked};
use facegate::people::policy::{parse_local, person_factors, AccessConfig, Policy, Window};
use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

/// What to change; nothing: show the policy.
#[derive(Args, Debug, Default)]
pub struct PolicyArgs {
    /// The person's id.
    pub id: String,
    /// Refuse the person (kept enrolled).
    #[arg(long, conflicts_with = "enable")]
    pub disable: bool,
    /// Let the person in again.
    #[arg(long)]
    pub enable: bool,
    /// Valid from this site-local date or date-time (2026-12-01, 2026-12-01T08:00); "none" clears.
    #[arg(long, value_name = "WHEN")]
    pub from: Option<String>,
    /// Valid until (not including) this site-local date or date-time; "none" clears.
    #[arg(long, value_name = "WHEN")]
    pub until: Option<String>,
    /// Add a weekly window, e.g. "mon-fri 07:00-19:00" (repeatable).
    #[arg(long, value_name = "WINDOW")]
    pub window: Vec<String>,
    /// Remove every weekly window first (then the person may come at any time, or only in the
    /// windows given with --window).
    #[arg(long)]
    pub clear_windows: bool,
    /// Second factors this person must always use: "card_and_face" or "face_and_pin" (whatever
    /// the site's [access] factors); "none" clears.
    #[arg(long, value_name = "MODE")]
    pub factors: Option<String>,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

impl PolicyArgs {
    fn edits(&self) -> bool {
        self.disable
            || self.enable
            || self.from.is_some()
            || self.until.is_some()
            || !self.window.is_empty()
            || self.clear_windows
            || self.factors.is_some()
    }

    fn apply(&self, p: &mut Policy) -> Result<()> {
        if self.disable {
            p.disabled = true;
        }
        if self.enable {
            p.disabled = false;
        }
        let when = |s: &str| -> Result<_> {
            if s == "none" {
                return Ok(None);
            }
            parse_local(s).map(Some).map_err(anyhow::Error::msg)
        };
        if let Some(f) = &self.from {
            p.valid_from = when(f)?;
        }
        if let Some(u) = &self.until {
            p.valid_until = when(u)?;
        }
        if self.clear_windows {
            p.windows.clear();
        }
        for w in &self.window {
            p.windows
                .push(w.parse::<Window>().map_err(anyhow::Error::msg)?);
        }
        if let Some(f) = &self.factors {
            p.factors = person_factors(f).map_err(|e| anyhow::anyhow!("--factors {e}"))?;
        }
        // The library's check, the one the door applies to the console's edits too.
        p.validate().map_err(anyhow::Error::msg)?;
        Ok(())
    }
}

/// Shows or edits the policy; exit status 0 if the person would be let in now, 1 if refused.
pub fn run(
    gallery: &Path,
    fingerprint: &str,
    access: &AccessConfig,
    a: &PolicyArgs,
) -> Result<ExitCode> {
    let output = Output::json_if(a.json);
    let lock = Locked::acquire(gallery)?;
    let mut g = lock.load(fingerprint)?;
    let p = g
        .get_mut(&a.id)
        .ok_or_else(|| GalleryError::UnknownId(a.id.clone()))?;
    if a.edits() {
        a.apply(&mut p.policy)?;
        let p = p.clone();
        lock.save(&g)?;
        return report(&p.id, &p.name, &p.policy, access, output, true);
    }
    let p = p.clone();
    drop(lock);
    report(&p.id, &p.name, &p.policy, access, output, false)
}

fn report(
    id: &str,
    name: &str,
    policy: &Policy,
    access: &AccessConfig,
    output: Output,
    saved: bool,
) -> Result<ExitCode> {
    let zone = access.zone().map_err(anyhow::Error::msg)?;
    let now = access.local(&zone, SystemTime::now());
    let verdict = policy.check(now);
    let reason = verdict.err().map(|r| r.as_str());
    match output {
        Output::Json => {
            println!(
                "{}",
                serde_json::json!({
                    "id": id, "name": name, "policy": policy, "site_time": now.to_string(),
                    "allowed_now": reason.is_none(), "reason": reason,
                })
            );
        }
        Output::Text => {
            if saved {
                println!("saved the policy of {name:?} (id {id})");
            }
            println!("{id} ({name}):");
            println!(
                "  enabled:     {}",
                if policy.disabled { "no" } else { "yes" }
            );
            let from = policy.valid_from.map_or("-".to_owned(), |d| d.to_string());
            let until = policy.valid_until.map_or("-".to_owned(), |d| d.to_string());
            println!("  valid from:  {from}");
            println!("  valid until: {until}");
            if policy.windows.is_empty() {
                println!("  windows:     any time");
            }
            for w in &policy.windows {
                println!("  window:      {w}");
            }
            if let Some(f) = policy.factors {
                println!("  factors:     {} (always)", f.as_str());
            }
            match reason {
                None => println!("  now ({now} site time): allowed"),
                Some(r) => println!("  now ({now} site time): refused: {r}"),
            }
        }
    }
    Ok(if reason.is_none() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
