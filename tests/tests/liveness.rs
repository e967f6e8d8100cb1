//! Presentation-attack detection end to end: the liveness networks on the test photos framed as
//! the door camera sees them (bona fide stand-ins) and on the same photos held up printed or on a
//! phone (the simulator's synthetic attacks); then the door itself.
//! The reference samples' scores are checked by `models/convert/verify_minifasnet.py` (they stay
//! in `../shared`, never in this repository: `models/VERIFY-minifasnet.md`).

use facegate::control::Control;
use facegate::records::audit::EventKind;
use facegate::vision::liveness::{Level, Liveness};
use facegate::{decode_file, ModelSet, Pipeline};
use facegate_e2e::{fixture, fixtures_dir};
use facegate_sim::attack::{present, Attack};
use facegate_sim::runner::compose;
use facegate_sim::{run_scenario, RunOptions, Scenario};
use image::RgbImage;
use std::path::Path;

/// The test photos with one clear face.
const BONA_FIDE: [&str; 6] = facegate_e2e::ONE_FACE_PHOTOS;

struct Setup {
    pipeline: Pipeline,
    liveness: Liveness,
}

impl Setup {
    fn new() -> Self {
        let models = ModelSet::builtin().unwrap();
        Self {
            pipeline: Pipeline::new(&models, None, None).unwrap(),
            liveness: Liveness::new(&models).unwrap(),
        }
    }

    /// The liveness score of the largest face of `img`.
    fn score(&mut self, img: &RgbImage) -> f32 {
        let det = self.pipeline.detect_largest(img).unwrap().expect("a face");
        self.liveness.score(img, &det.bbox).unwrap()
    }

    /// `img` framed as the simulator's door camera shows it (640x480, face 160 px).
    fn framed(&mut self, img: &RgbImage) -> RgbImage {
        let face = self.pipeline.detect(img).unwrap().first().map(|d| d.bbox);
        compose(&[(img, face, 160.0)], 640, 480)
    }
}

fn min_score(level: Level) -> f32 {
    level.min_score().unwrap()
}

#[test]
fn bona_fide_photos_pass_and_their_print_and_screen_presentations_do_not() {
    let mut s = Setup::new();
    let level = min_score(Level::Normal);
    let mut report = Vec::new();
    let (mut bona_refused, mut attacks_passed, mut attacks) = (0, 0, 0);
    for name in BONA_FIDE {
        let photo = decode_file(&fixture(name)).unwrap();
        let frame = s.framed(&photo);
        let live = s.score(&frame);
        bona_refused += usize::from(live < level);
        report.push(format!("{name}: bona fide {live:.3}"));
        for attack in [Attack::Print, Attack::Screen] {
            let frame = s.framed(&present(&photo, attack));
            let score = s.score(&frame);
            attacks += 1;
            attacks_passed += usize::from(score >= level);
            report.push(format!("{name}: {attack:?} {score:.3}"));
        }
    }
    eprintln!("{}", report.join("\n"));
    // No live face framed as the door sees it refused at normal.
    assert_eq!(bona_refused, 0, "BPCER: {report:#?}");
    // The single-frame network is no complete defence (docs/security.md, "Presentation attacks": 6 of
    // these 12 synthetic attacks pass at normal); it must still refuse a good share of them.
    assert!(
        attacks_passed * 2 <= attacks,
        "APCER: {attacks_passed}/{attacks} {report:#?}"
    );
}

fn scenario(steps: &str) -> Scenario {
    fixture("obama.jpg");
    let text = format!(
        "[config.liveness]\nlevel = \"normal\"\n\n\
         [[enroll]]\nid = \"obama\"\nname = \"Barack Obama\"\nphotos = [\"obama.jpg\"]\n\n{steps}"
    );
    Scenario::parse(&text, Path::new("test.toml"), &fixtures_dir()).unwrap()
}

#[test]
fn the_employees_printed_photo_held_up_for_10_s_never_unlocks_and_is_audited_as_a_spoof() {
    for attack in ["print", "screen"] {
        // The employee's own badge photo (the enrolment photo), printed or on a phone.
        let s = scenario(&format!(
            "[[step]]\nshow = \"obama.jpg\"\nattack = \"{attack}\"\nseconds = 10\nexpect = \"no_unlock\"\n\n\
             [expect]\nunlocks = 0\nmin_denials = 1\n"
        ));
        let r = run_scenario(&s, &RunOptions::default(), Control::default()).unwrap();
        assert!(r.failures.is_empty(), "{attack}: {:#?}", r.failures);
        let denials = r.of(EventKind::Deny);
        assert!(
            denials
                .iter()
                .all(|d| d.reason.as_deref() == Some("spoof_suspected")),
            "{attack}: {:#?}",
            r.json_lines()
        );
    }
}

#[test]
fn the_employee_in_person_is_let_in_with_liveness_on() {
    let s = scenario(
        "[[step]]\nshow = \"blank\"\nseconds = 1\n\n\
         [[step]]\nshow = \"obama2.jpg\"\nseconds = 2\nexpect = \"unlock\"\nperson = \"obama\"\nwithin = 0.3\n",
    );
    let r = run_scenario(&s, &RunOptions::default(), Control::default()).unwrap();
    assert!(r.failures.is_empty(), "{:#?}", r.failures);
    assert_eq!(r.grants().len(), 1);
}

/// A stranger is refused as unknown, which needs no liveness score: the liveness networks run
/// only for a face that would be let in (they are the costliest part of a frame after the
/// embedder), while the employee's frames are still scored.
#[test]
fn a_strangers_frames_cost_no_liveness_run() {
    let stranger = scenario(
        "[[step]]\nshow = \"biden.jpg\"\nseconds = 2\nexpect = \"no_unlock\"\n\n\
         [expect]\nunlocks = 0\nmin_denials = 1\n",
    );
    let r = run_scenario(&stranger, &RunOptions::default(), Control::default()).unwrap();
    assert!(r.failures.is_empty(), "{:#?}", r.failures);
    assert!(r.summary.faces >= 10, "{:?}", r.summary);
    assert!(
        r.of(EventKind::Deny)
            .iter()
            .all(|d| d.reason.as_deref() == Some("unknown")),
        "{:#?}",
        r.json_lines()
    );
    assert_eq!(r.summary.liveness_runs, 0, "{:?}", r.summary);
    let employee = scenario(
        "[[step]]\nshow = \"obama2.jpg\"\nseconds = 1\nexpect = \"unlock\"\nperson = \"obama\"\n",
    );
    let r = run_scenario(&employee, &RunOptions::default(), Control::default()).unwrap();
    assert!(r.failures.is_empty(), "{:#?}", r.failures);
    assert!(r.summary.liveness_runs > 0, "{:?}", r.summary);
}
