//! The operating point follows the gallery (issue 26): the real daemon takes its threshold for the
//! number of people enrolled from a calibration, says so in its `start` event, and tightens it
//! when an admin enrols more people while it runs.

use facegate::records::audit::EventKind;
use facegate_e2e::{fixture, fixtures_dir};
use facegate_sim::Scenario;
use std::path::Path;

mod common;

/// The f32 dlib network (fast here) and a site calibration of two points: up to 1 person
/// enrolled 0.6 (dlib's own threshold), up to 2 people 0.2 (far too strict for anyone: so the
/// test sees which point the door uses).
fn scenario(dir: &Path, second_enrolment: bool) -> Scenario {
    for f in ["obama.jpg", "obama2.jpg", "biden.jpg"] {
        fixture(f);
    }
    let calibration = dir.join("calibration.toml");
    std::fs::write(
        &calibration,
        r#"model = "dlib_resnet_v1_f32/51ca58ae4a65"
target_fpir = 0.001
source = "a test"

[[point]]
gallery = 1
threshold = 0.6
fpir = 0.0001
fnir = 0.05

[[point]]
gallery = 2
threshold = 0.2
fpir = 0.0
fnir = 0.9
"#,
    )
    .unwrap();
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/manifest.toml");
    let mut text = format!(
        r#"fps = 5
[config.recognition]
models = "{manifest}"
embedder = "dlib_resnet_v1_f32"
calibration = "{}"
cooldown_seconds = 1

[[enroll]]
id = "obama"
name = "Barack Obama"
photos = ["obama.jpg"]

[[step]]
show = "obama2.jpg"
seconds = 2
expect = "unlock"
person = "obama"

[[step]]
show = "blank"
seconds = 2
"#,
        calibration.display()
    );
    if second_enrolment {
        text.push_str(
            r#"
[[step]]
enroll = { id = "biden", name = "Joe Biden", photos = ["biden.jpg"] }

[[step]]
show = "blank"
seconds = 2

[[step]]
show = "obama2.jpg"
seconds = 3
expect = "no_unlock"
"#,
        );
    }
    Scenario::parse(&text, &dir.join("op.toml"), &fixtures_dir()).unwrap()
}

#[test]
fn the_door_takes_the_threshold_for_its_gallery_size_and_tightens_it_as_the_gallery_grows() {
    let dir = tempfile::tempdir().unwrap();
    let r = common::run_checked(&scenario(dir.path(), true), false);
    let start = &r.of(EventKind::Start)[0];
    let said = start.reason.as_deref().unwrap_or_default();
    assert!(
        said.contains("operating point for 1 people: threshold 0.600 from the site's calibration"),
        "{said}"
    );
    let reload = r
        .of(EventKind::GalleryReloaded)
        .into_iter()
        .find(|e| {
            e.reason
                .as_deref()
                .is_some_and(|w| w.starts_with("2 people"))
        })
        .expect("the enrolment is reloaded");
    let said = reload.reason.as_deref().unwrap();
    assert!(
        said.contains("threshold 0.200 from the site's calibration")
            && said.contains("(calibrated at 2 people: expected FPIR 0.00%, FNIR 90.0% per photo)"),
        "{said}"
    );
    // The same face let in before the second enrolment is refused after it: the threshold the
    // decision uses is the new one, not only the one the audit names.
    assert_eq!(r.grants().len(), 1);
}

#[test]
fn a_calibration_made_for_another_model_stops_the_door_from_starting() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = scenario(dir.path(), false);
    let cal = dir.path().join("calibration.toml");
    let text = std::fs::read_to_string(&cal).unwrap().replace(
        "dlib_resnet_v1_f32/51ca58ae4a65",
        "sface_2021dec_int8/637a3377ce48",
    );
    std::fs::write(&cal, text).unwrap();
    s.expect.unlocks = None;
    let err = facegate_sim::run_scenario(
        &s,
        &facegate_sim::RunOptions {
            realtime: false,
            workdir: None,
        },
        facegate::control::Control::default(),
    )
    .expect_err("the door must not start on another model's calibration");
    let msg = format!("{err:#}");
    assert!(msg.contains("made for the model"), "{msg}");
}
