//! Second factors end to end (issue #26): each mode through the real daemon loop and the
//! simulator's card reader and keypad (`present_card`, `type_pin`). Obama and Biden are
//! employees with a card and a PIN each; the astronaut (Eileen Collins) is a stranger. The gate
//! decides the mode (`second_factor`); a card or PIN makes the face check 1:1.

use facegate::hal::LockState;
use facegate::records::audit::EventKind;
use facegate_e2e::{fixture, fixtures_dir};
use facegate_sim::{Report, Scenario};
use std::path::Path;

mod common;

/// The employees enrolled with cards and PINs; `access` is the `[config.access]` table's body.
fn head(access: &str, obama_policy: &str) -> String {
    for f in ["obama.jpg", "obama2.jpg", "biden.jpg", "astronaut.png"] {
        fixture(f);
    }
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/manifest.toml");
    format!(
        "fps = 5\nstart_time = \"2026-11-30T12:00:00Z\"\n\
         [config]\nlock = {{ unlock_seconds = 1 }}\n\
         access = {{ timezone = \"UTC\", {access} }}\n\
         [config.recognition]\nmodels = \"{manifest}\"\nembedder = \"dlib_resnet_v1_f32\"\n\n\
         [[enroll]]\nid = \"obama\"\nname = \"Barack Obama\"\nphotos = [\"obama.jpg\"]\n\
         credential = {{ format = \"wiegand26\", facility = 18, card = 36363 }}\n\
         pin = \"1234\"\nduress_pin = \"9999\"\n{obama_policy}\n\n\
         [[enroll]]\nid = \"biden\"\nname = \"Joe Biden\"\nphotos = [\"biden.jpg\"]\n\
         credential = {{ format = \"wiegand26\", facility = 18, card = 2 }}\n\
         pin = \"5678\"\n\n"
    )
}

fn run(access: &str, obama_policy: &str, steps: &str) -> Report {
    let text = format!("{}{steps}", head(access, obama_policy));
    let s = Scenario::parse(&text, Path::new("factors.toml"), &fixtures_dir()).unwrap();
    common::run_checked(&s, false)
}

fn deny_reasons(r: &Report) -> Vec<String> {
    r.of(EventKind::Deny)
        .iter()
        .map(|e| e.reason.clone().unwrap_or_default())
        .collect()
}

fn granted(r: &Report) -> Vec<(String, String)> {
    r.grants()
        .iter()
        .map(|g| {
            (
                g.identity.clone().unwrap_or_default(),
                g.reason.clone().unwrap_or_default(),
            )
        })
        .collect()
}

const GAP: &str = "[[step]]\nshow = \"blank\"\nseconds = 2\n\n";

/// Card + face: the employee with their card gets in (the face checked 1:1: the grant says
/// `face+card`); their face alone is refused at the gate (`second_factor`); a stranger with the
/// stolen card is refused (`face_mismatch`), so is a card of nobody (`unknown_card`); both
/// count towards the lockout (with the stranger's own denial once the card's claim is gone).
#[test]
fn card_and_face_lets_the_holder_in_and_no_stranger_with_a_stolen_card() {
    let r = run(
        "factors = \"card_and_face\", lockout_denials = 3",
        "",
        &format!(
            "[[step]]\nshow = \"obama2.jpg\"\nseconds = 2\nexpect = \"no_unlock\"\n\n{GAP}\
             [[step]]\npresent_card = \"obama\"\n\n\
             [[step]]\nshow = \"obama2.jpg\"\nseconds = 2\nexpect = \"unlock\"\nperson = \"obama\"\nwithin = 2.0\n\n{GAP}\
             [[step]]\npresent_card = \"obama\"\n\n\
             [[step]]\nshow = \"astronaut.png\"\nseconds = 4\nexpect = \"no_unlock\"\n\n{GAP}\
             [[step]]\npresent_card = {{ format = \"wiegand26\", facility = 99, card = 1 }}\n\n\
             [[step]]\nshow = \"blank\"\nseconds = 1\n"
        ),
    );
    let lines = r.json_lines();
    assert_eq!(
        granted(&r),
        vec![("obama".into(), "face+card (card_and_face)".into())],
        "{lines:#?}"
    );
    let reasons = deny_reasons(&r);
    for want in ["second_factor", "face_mismatch", "unknown_card"] {
        assert!(reasons.iter().any(|d| d == want), "{want}: {lines:#?}");
    }
    // The stolen card names Obama: recorded as whom it claimed.
    let mismatch = r
        .of(EventKind::Deny)
        .into_iter()
        .find(|e| e.reason.as_deref() == Some("face_mismatch"))
        .unwrap();
    assert_eq!(mismatch.nearest.as_deref(), Some("obama"));
    // The face mismatch, the stranger's face alone, the card of nobody: 3 denials, a lockout.
    assert_eq!(r.of(EventKind::Lockout).len(), 1, "{lines:#?}");
    assert_eq!(r.unlocks().len(), 1);
}

/// Face + PIN: the employee who types their PIN and shows their face gets in; a stranger who
/// knows the PIN does not; a wrong face with the right PIN is refused and counted; the duress
/// PIN opens the door and records a silent `duress` event.
#[test]
fn face_and_pin_the_pin_names_one_of_the_nearest_and_the_duress_pin_alarms_silently() {
    let r = run(
        "factors = \"face_and_pin\"",
        "",
        &format!(
            "[[step]]\ntype_pin = \"1234#\"\n\n\
             [[step]]\nshow = \"obama2.jpg\"\nseconds = 2\nexpect = \"unlock\"\nperson = \"obama\"\nwithin = 2.0\n\n{GAP}\
             [[step]]\ntype_pin = \"1234#\"\n\n\
             [[step]]\nshow = \"astronaut.png\"\nseconds = 3\nexpect = \"no_unlock\"\n\n{GAP}\
             [[step]]\ntype_pin = \"1234#\"\n\n\
             [[step]]\nshow = \"biden.jpg\"\nseconds = 3\nexpect = \"no_unlock\"\n\n{GAP}\
             [[step]]\ntype_pin = \"9999#\"\n\n\
             [[step]]\nshow = \"obama2.jpg\"\nseconds = 2\nexpect = \"unlock\"\nperson = \"obama\"\nwithin = 2.0\n\n{GAP}"
        ),
    );
    let lines = r.json_lines();
    assert_eq!(
        granted(&r),
        vec![
            ("obama".into(), "face+pin (face_and_pin)".into()),
            ("obama".into(), "face+pin (face_and_pin)".into())
        ],
        "{lines:#?}"
    );
    let reasons = deny_reasons(&r);
    // The stranger: near no one (face_mismatch) or near Obama and then not him; Biden's face
    // with Obama's PIN: the PIN is not Biden's (wrong_pin).
    assert!(
        reasons
            .iter()
            .filter(|d| *d == "face_mismatch" || *d == "wrong_pin")
            .count()
            >= 2,
        "{lines:#?}"
    );
    assert!(reasons.iter().any(|d| d == "wrong_pin"), "{lines:#?}");
    let duress = r.of(EventKind::Duress);
    assert_eq!(duress.len(), 1, "{lines:#?}");
    assert_eq!(duress[0].identity.as_deref(), Some("obama"));
    // Silent: no alarm output at the door.
    assert!(r.alarm.iter().all(|a| !a.1), "{:?}", r.alarm);
    // No PIN in the trail, ever.
    for l in &lines {
        assert!(!l.contains("1234") && !l.contains("9999"), "{l}");
    }
}

/// Wrong PINs count towards the lockout like any denial: two in a row lock recognition out.
#[test]
fn wrong_pins_count_towards_the_lockout() {
    let r = run(
        "factors = \"face_and_pin\", lockout_denials = 2",
        "",
        &format!(
            "[[step]]\ntype_pin = \"1111#\"\n\n\
             [[step]]\nshow = \"obama2.jpg\"\nseconds = 1\nexpect = \"no_unlock\"\n\n{GAP}\
             [[step]]\ntype_pin = \"2222#\"\n\n\
             [[step]]\nshow = \"obama2.jpg\"\nseconds = 1\nexpect = \"no_unlock\"\n\n\
             [[step]]\ntype_pin = \"1234#\"\n\n\
             [[step]]\nshow = \"obama2.jpg\"\nseconds = 2\nexpect = \"no_unlock\"\n"
        ),
    );
    let lines = r.json_lines();
    let wrong = deny_reasons(&r)
        .iter()
        .filter(|d| *d == "wrong_pin")
        .count();
    assert_eq!(wrong, 2, "{lines:#?}");
    assert_eq!(r.of(EventKind::Lockout).len(), 1, "{lines:#?}");
    assert!(
        r.grants().is_empty(),
        "locked out: even the right PIN waits"
    );
}

/// A card whose face does not come within `factor_seconds` is refused (`factor_timeout`); the
/// face that comes later alone is refused at the gate.
#[test]
fn a_timeout_between_card_and_face_refuses() {
    let r = run(
        "factors = \"card_and_face\", factor_seconds = 2",
        "",
        "[[step]]\npresent_card = \"obama\"\n\n\
         [[step]]\nshow = \"blank\"\nseconds = 3\n\n\
         [[step]]\nshow = \"obama2.jpg\"\nseconds = 2\nexpect = \"no_unlock\"\n",
    );
    let lines = r.json_lines();
    let reasons = deny_reasons(&r);
    assert!(reasons.iter().any(|d| d == "factor_timeout"), "{lines:#?}");
    assert!(reasons.iter().any(|d| d == "second_factor"), "{lines:#?}");
    assert_eq!(r.relay_state_at(r.end), Some(LockState::Locked));
    assert!(r.unlocks().is_empty());
}

/// Someone who must always use two factors (`policy.factors`) at a face-only site: their face
/// alone is refused, with their PIN they get in; others still come in by face alone. Face or
/// card: the face alone, or the card and the face.
#[test]
fn a_person_who_must_use_a_pin_at_a_face_only_site_and_face_or_card() {
    let r = run(
        "factors = \"face\"",
        "policy = { factors = \"face_and_pin\" }",
        &format!(
            "[[step]]\nshow = \"obama2.jpg\"\nseconds = 2\nexpect = \"no_unlock\"\n\n{GAP}\
             [[step]]\nshow = \"biden.jpg\"\nseconds = 2\nexpect = \"unlock\"\nperson = \"biden\"\n\n{GAP}\
             [[step]]\ntype_pin = \"1234#\"\n\n\
             [[step]]\nshow = \"obama2.jpg\"\nseconds = 2\nexpect = \"unlock\"\nperson = \"obama\"\n"
        ),
    );
    let lines = r.json_lines();
    assert!(
        deny_reasons(&r).iter().any(|d| d == "second_factor"),
        "{lines:#?}"
    );
    assert_eq!(granted(&r).len(), 2, "{lines:#?}");
    let r = run(
        "factors = \"face_or_card\"",
        "",
        &format!(
            "[[step]]\nshow = \"obama2.jpg\"\nseconds = 2\nexpect = \"unlock\"\nperson = \"obama\"\n\n{GAP}{GAP}\
             [[step]]\npresent_card = \"biden\"\n\n\
             [[step]]\nshow = \"biden.jpg\"\nseconds = 2\nexpect = \"unlock\"\nperson = \"biden\"\n"
        ),
    );
    assert_eq!(
        granted(&r),
        vec![
            ("obama".into(), String::new()),
            ("biden".into(), "face+card (face_or_card)".into())
        ],
        "{:#?}",
        r.json_lines()
    );
}

/// A stricter mode inside a schedule window: at 12:00 UTC on a Monday the night window is not
/// in force (face alone); a window covering noon asks for the card.
#[test]
fn a_schedule_window_makes_the_mode_stricter() {
    let steps = "[[step]]\nshow = \"obama2.jpg\"\nseconds = 2\n";
    let r = run(
        "factors = \"face\", factors_windows = [{ window = \"mon-fri 19:00-07:00\", factors = \"card_and_face\" }]",
        "",
        steps,
    );
    assert_eq!(r.grants().len(), 1, "{:#?}", r.json_lines());
    let r = run(
        "factors = \"face\", factors_windows = [{ window = \"mon 11:00-13:00\", factors = \"card_and_face\" }]",
        "",
        steps,
    );
    assert!(r.grants().is_empty());
    assert!(deny_reasons(&r).iter().any(|d| d == "second_factor"));
}

/// The 1:1 check a card names uses its own threshold (`access.factor_threshold`, else the
/// calibration's `one_to_one`), said in the `start` line: at a threshold no real face meets, the
/// holder's own face is refused (`face_mismatch`), at the model's it is let in.
#[test]
fn the_card_check_uses_the_one_to_one_threshold_and_the_start_line_says_which() {
    let steps = format!(
        "[[step]]\npresent_card = \"obama\"\n\n\
         [[step]]\nshow = \"obama2.jpg\"\nseconds = 3\n\n{GAP}"
    );
    let strict = run(
        "factors = \"card_and_face\", factor_threshold = 0.05",
        "",
        &steps,
    );
    let start = strict.of(EventKind::Start)[0].reason.clone().unwrap();
    assert!(
        start.contains("1:1 check of a card or PIN: threshold 0.050 from access.factor_threshold"),
        "{start}"
    );
    assert!(strict.unlocks().is_empty(), "{:#?}", strict.json_lines());
    assert!(
        deny_reasons(&strict).iter().any(|d| d == "face_mismatch"),
        "{:#?}",
        strict.json_lines()
    );

    // The dlib network's manifest has no 1:1 point: its threshold is used, and said so.
    let model = run("factors = \"card_and_face\"", "", &steps);
    let start = model.of(EventKind::Start)[0].reason.clone().unwrap();
    assert!(
        start.contains("1:1 check of a card or PIN: threshold 0.600 from the model's threshold"),
        "{start}"
    );
    assert_eq!(
        granted(&model),
        vec![("obama".into(), "face+card (card_and_face)".into())]
    );
}
