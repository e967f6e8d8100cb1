//! `facegate calibrate`: on labelled photos, the pairs mode (`analysis::calibrate`) or the
//! door's 1:N question (`--open-set`, `openset::run`) with the door's own rule, and writing the
//! operating point it recommends into a config (`--write-config`).

use crate::args::CalibrateArgs;
use crate::output::Output;
use crate::{analysis, enrol, openset};
use anyhow::Result;
use facegate::access::acceptance::Rule;
use facegate::config::Config;
use facegate::Pipeline;
use std::path::PathBuf;
use std::process::ExitCode;

/// Runs the mode asked for. `door` gives the door's config and rule (read only by the open set,
/// so a broken config does not stop the pairs mode); `embedder_asked` is `--embedder`.
pub fn run(
    pipeline: &mut Pipeline,
    mut a: CalibrateArgs,
    door: impl FnOnce() -> Result<(Config, Rule)>,
    embedder_asked: Option<&str>,
) -> Result<ExitCode> {
    let output = Output::json_if(a.json);
    match (a.open_set.take(), a.dir.take()) {
        (Some(source), _) => open_set(pipeline, source, a, door()?, embedder_asked, output),
        (None, Some(dir)) => analysis::calibrate(pipeline, &dir, a.target_far, output),
        (None, None) => unreachable!("clap requires DIR or --open-set"),
    }
}

/// `facegate calibrate --open-set SOURCE`, then `--write-config` if asked.
fn open_set(
    pipeline: &mut Pipeline,
    source: PathBuf,
    a: CalibrateArgs,
    (config, rule): (Config, Rule),
    embedder_asked: Option<&str>,
    output: Output,
) -> Result<ExitCode> {
    let CalibrateArgs {
        strangers,
        enrol_photos,
        sizes,
        draws,
        seed,
        target_fpir,
        target_fmr,
        thresholds,
        margins,
        write_config,
        write_points,
        point_sizes,
        flip,
        strict,
        ..
    } = a;
    let options = openset::Options {
        source,
        strangers,
        enrol_photos,
        sizes,
        draws,
        seed,
        target_fpir,
        target_fmr,
        thresholds,
        margins,
        current: rule,
        quality: config.recognition.quality,
        flip,
        point_sizes,
        checks: enrol::checks(strict),
        output,
    };
    let outcome = openset::run(pipeline, &options)?;
    let recommended = outcome.recommended;
    if let Some(path) = write_points {
        let Some(c) = outcome.calibration else {
            anyhow::bail!(
                "no threshold meets --target-fpir {target_fpir} at any size; {} not written",
                path.display()
            );
        };
        facegate::people::gallery::write_atomic(&path, c.to_toml().as_bytes())?;
        eprintln!(
            "wrote {} operating points{} into {} (set recognition.calibration to use them)",
            c.point.len(),
            if c.one_to_one.is_some() {
                " and the 1:1 check's"
            } else {
                ""
            },
            path.display()
        );
    }
    if let Some(path) = write_config {
        let Some(r) = recommended else {
            anyhow::bail!(
                "no operating point meets --target-fpir {target_fpir}; {} left unchanged",
                path.display()
            );
        };
        openset::write_config(&path, r.threshold, r.min_margin)?;
        eprintln!(
            "wrote threshold {:.3} and min_margin {:.3} into {} [recognition]",
            r.threshold,
            r.min_margin,
            path.display()
        );
        let named = config.recognition.embedder.as_deref();
        if embedder_asked.is_some() && embedder_asked != named {
            tracing::warn!(
                "these values are for embedder {}; set recognition.embedder (and models) \
                 in {} to match",
                pipeline.embedder_name(),
                path.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
