//! `facegate enroll` and `facegate import`: what their flags ask of an enrolment (the photo
//! checks of `--strict`, `--force`, the door's threshold for the duplicate check), handed to the
//! gallery code in `people`.

use crate::args::{EnrollArgs, ImportArgs};
use crate::output::Output;
use crate::people::{self, EnrolChecks};
use anyhow::Result;
use facegate::access::enrolment::Checks;
use facegate::Pipeline;
use std::path::Path;
use std::process::ExitCode;

/// The enrolment checks `--strict` asks for (also those of `calibrate --open-set --strict`).
pub fn checks(strict: bool) -> Checks {
    if strict {
        Checks::Strict
    } else {
        Checks::Lenient
    }
}

/// `facegate enroll`: `threshold` is the door's, under which a face matches another person.
pub fn enroll(
    pipeline: &mut Pipeline,
    gallery: &Path,
    a: &EnrollArgs,
    threshold: f32,
) -> Result<ExitCode> {
    people::enroll(
        pipeline,
        gallery,
        &a.name,
        a.id.as_deref(),
        &a.photos,
        EnrolChecks {
            photo: checks(a.strict),
            force: a.force,
            threshold,
        },
    )
}

/// `facegate import`: `threshold` is the door's, under which a face matches another person.
pub fn import(
    pipeline: &mut Pipeline,
    gallery: &Path,
    a: &ImportArgs,
    threshold: f32,
) -> Result<ExitCode> {
    people::import(
        pipeline,
        gallery,
        &a.dir,
        EnrolChecks {
            photo: checks(a.strict),
            force: a.force,
            threshold,
        },
        Output::json_if(a.json),
    )
}
