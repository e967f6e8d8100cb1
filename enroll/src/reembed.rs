//! `facegate reembed`: moves the gallery to another embedding network from the face crops kept
//! at enrolment, so changing the model (int8 or f32 for this CPU, or another network) does not
//! mean re-enrolling everyone.

use crate::output::Output;
use anyhow::{bail, Context, Result};
use facegate::people::gallery::{Gallery, Locked};
use facegate::people::reembed::reembed;
use facegate::vision::embed::Embedder;
use facegate::ModelSet;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

/// Re-embeds the gallery at `gallery` with `embedder` (default: the manifest's), under the
/// gallery's lock; the new gallery replaces the old one atomically, or nothing is written.
pub fn run(
    models: &ModelSet,
    embedder: Option<&str>,
    gallery: &Path,
    output: Output,
) -> Result<ExitCode> {
    let (name, spec) = models.embedder(embedder)?;
    let lock = Locked::acquire(gallery)?;
    let Some(old) = Gallery::load_any_model(gallery)? else {
        bail!("{}: no gallery to re-embed", gallery.display());
    };
    let photos: usize = old.people.iter().map(|p| p.enrolments.len()).sum();
    if old.model == spec.fingerprint {
        match output {
            Output::Json => {
                println!(
                    "{}",
                    serde_json::json!({"embedder": name, "model": spec.fingerprint,
                    "people": old.people.len(), "photos": photos, "changed": false})
                );
            }
            Output::Text => {
                println!(
                    "the gallery is already on {name} ({}): nothing to do",
                    spec.fingerprint
                );
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let t0 = Instant::now();
    let mut net = Embedder::new(models, spec).context("loading the embedding network")?;
    let bar = indicatif::ProgressBar::new(photos as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} photos, {eta} left")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let new = reembed(&old, &lock.crops(), &mut net, spec, || bar.inc(1));
    bar.finish_and_clear();
    let new = new.with_context(|| {
        format!(
            "{}: not re-embedded, nothing was changed",
            gallery.display()
        )
    })?;
    lock.save(&new)?;
    let seconds = t0.elapsed().as_secs_f64();
    match output {
        Output::Json => {
            println!(
                "{}",
                serde_json::json!({"embedder": name, "model": spec.fingerprint, "from": old.model,
                "people": new.people.len(), "photos": photos, "changed": true,
                "seconds": (seconds * 100.0).round() / 100.0})
            );
        }
        Output::Text => {
            println!(
            "re-embedded {photos} photo(s) of {} people from {} to {name} ({}) in {seconds:.1} s.\n\
             The door must now run this embedder: set `embedder = \"{name}\"` under [recognition] \
             in its config and restart facegated (until then it keeps the gallery it has loaded \
             and refuses this file, whose model differs).",
            new.people.len(),
            old.model,
            spec.fingerprint,
        );
        }
    }
    Ok(ExitCode::SUCCESS)
}
