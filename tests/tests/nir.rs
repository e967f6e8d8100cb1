//! End-to-end tests of the near-infrared camera mode (`[liveness.nir]`, issue 14): the scenario
//! `host-sim/scenarios/nir.toml` on the real daemon loop, with a simulated NIR camera that sees
//! a grey IR rendering of a person or a print and a dark phone screen.

use facegate::control::Control;
use facegate::records::audit::EventKind;
use facegate_e2e::{fixture, fixtures_dir};
use facegate_sim::{run_scenario, Report, RunOptions, Scenario};
use std::path::Path;

mod common;

/// Runs the shipped scenario NAME with the photos it shows.
fn run(name: &str) -> Report {
    common::run_shipped(name, &["obama.jpg", "obama2.jpg"])
}

#[test]
fn nir_mode_lets_the_employee_in_never_a_phone_screen_and_fails_closed_without_its_camera() {
    // The scenario's own expectations: unlock, screen 10 s no unlock, print unlocks (the
    // documented limit), NIR unplugged no unlock, back: unlock.
    let r = run("nir");
    assert_eq!(r.grants().len(), 3, "{:#?}", r.json_lines());
    // Every denial is the cue's, none a stranger's: the faces were recognised, not let in.
    let denials = r.of(EventKind::Deny);
    assert!(!denials.is_empty());
    assert!(
        denials
            .iter()
            .all(|d| d.reason.as_deref() == Some("spoof_suspected")),
        "{:#?}",
        r.json_lines()
    );
    // The unplugged NIR camera is audited as such, once, and its return too.
    let errors = r.of(EventKind::CameraError);
    assert_eq!(errors.len(), 1, "{:#?}", r.json_lines());
    let reason = errors[0].reason.as_deref().unwrap_or_default();
    assert!(reason.starts_with("NIR camera: "), "{reason}");
    assert!(reason.contains("no face is let in"), "{reason}");
    let back = r.of(EventKind::CameraRecovered);
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].reason.as_deref(), Some("NIR camera"));
}

#[test]
fn nir_mode_without_a_nir_camera_lets_nobody_in() {
    // NIR mode on, but the NIR camera's frames never come (unplugged for the whole run).
    let s = Scenario::parse(
        "[config.liveness.nir]\n\n\
         [[enroll]]\nid = \"obama\"\nname = \"Barack Obama\"\nphotos = [\"obama.jpg\"]\n\n\
         [[step]]\nunplug_nir = 100\n\n\
         [[step]]\nshow = \"obama2.jpg\"\nseconds = 4\nexpect = \"no_unlock\"\n\n\
         [expect]\nunlocks = 0\nmin_denials = 1\ndeny_reasons = [\"spoof_suspected\"]\n",
        Path::new("test.toml"),
        &fixtures_dir(),
    )
    .unwrap();
    fixture("obama.jpg");
    fixture("obama2.jpg");
    let r = run_scenario(&s, &RunOptions::default(), Control::default()).unwrap();
    assert!(r.failures.is_empty(), "{:#?}", r.failures);
    assert_eq!(r.of(EventKind::CameraError).len(), 1);
}
