//! The gate end to end: every source of "open the door" (a face, the exit button, a remote
//! unlock, office hours) through the real daemon loop, in lockdown and in reader mode; and the
//! defects of c8d23fe that came from four sources deciding in four places (each of these tests
//! failed there). The gate's table, cell by cell, is tested against the gate alone in
//! `firmware/src/access/gate/tests.rs`.

use facegate::hal::LockState;
use facegate::records::audit::EventKind;
use facegate_e2e::{fixture, fixtures_dir};
use facegate_sim::{Report, Scenario};
use std::path::Path;
use std::time::Duration;

mod common;

/// Obama enrolled with a card (f32 embedder, as in `door.rs`); Monday 11:59:50 UTC, office
/// hours until 12:00 (10 s after the start) unless `config` sets `access`; unlocks last one
/// second.
fn head(config: &str) -> String {
    let access = if config.contains("access =") {
        ""
    } else {
        "access = { timezone = \"UTC\", office_hours = [\"mon-fri 09:00-12:00\"] }\n"
    };
    for f in ["obama.jpg", "obama2.jpg"] {
        fixture(f);
    }
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/manifest.toml");
    format!(
        "fps = 5\nstart_time = \"2026-11-30T11:59:50Z\"\n\
         [config]\n{access}\
         lock = {{ unlock_seconds = 1 }}\n{config}\n\
         [config.recognition]\nmodels = \"{manifest}\"\nembedder = \"dlib_resnet_v1_f32\"\n\n\
         [[enroll]]\nid = \"obama\"\nname = \"Barack Obama\"\nphotos = [\"obama.jpg\"]\n\
         credential = {{ format = \"wiegand26\", facility = 18, card = 36363 }}\n\n"
    )
}

fn run(config: &str, steps: &str) -> Report {
    let text = format!("{}{steps}", head(config));
    let s = Scenario::parse(&text, Path::new("gate.toml"), &fixtures_dir()).unwrap();
    common::run_checked(&s, false)
}

fn state_at(r: &Report, secs: f64) -> LockState {
    r.relay_state_at(Duration::from_secs_f64(secs)).unwrap()
}

fn reasons(r: &Report, kind: EventKind) -> Vec<String> {
    r.of(kind)
        .iter()
        .map(|e| e.reason.clone().unwrap_or_default())
        .collect()
}

/// In lockdown a face and office hours are refused; the exit button and a remote unlock still
/// open the door; lifting the lockdown inside office hours lets them hold the door again.
/// (c8d23fe: office hours held the door open through the lockdown.)
#[test]
fn in_lockdown_only_the_exit_button_and_remote_unlocks_open_the_door() {
    let r = run(
        "",
        "[[step]]\nlockdown = true\n\n\
         [[step]]\nshow = \"obama2.jpg\"\nseconds = 3\n\n\
         [[step]]\nexit_button = true\n\n\
         [[step]]\nshow = \"blank\"\nseconds = 2\n\n\
         [[step]]\nremote_unlock = \"guard\"\n\n\
         [[step]]\nshow = \"blank\"\nseconds = 2\n\n\
         [[step]]\nlockdown = false\n\n\
         [[step]]\nshow = \"blank\"\nseconds = 5\n",
    );
    let lines = r.json_lines();
    // 0 s: the door started inside office hours; the lockdown, taken at the next frame (0.2 s),
    // locked it at once. Until 3 s neither office hours nor the recognised face open it.
    assert_eq!(state_at(&r, 0.3), LockState::Locked, "{lines:#?}");
    assert!(
        r.relay.iter().all(|e| e.0 <= Duration::from_millis(200)
            || e.0 >= Duration::from_secs(3)
            || e.1 == LockState::Locked),
        "{lines:#?}"
    );
    let denied = r.of(EventKind::Deny);
    assert!(
        denied
            .iter()
            .any(|d| d.identity.as_deref() == Some("obama")
                && d.reason.as_deref() == Some("lockdown")),
        "{lines:#?}"
    );
    assert!(r.grants().is_empty(), "{lines:#?}");
    assert!(
        reasons(&r, EventKind::Relock).contains(&"lockdown: locked at once".to_owned()),
        "{lines:#?}"
    );
    // 3 s: the exit button; 5 s: the remote unlock, recorded with who asked.
    assert_eq!(state_at(&r, 3.5), LockState::Unlocked, "{lines:#?}");
    assert_eq!(state_at(&r, 4.5), LockState::Locked, "{lines:#?}");
    assert_eq!(state_at(&r, 5.5), LockState::Unlocked, "{lines:#?}");
    assert_eq!(state_at(&r, 6.5), LockState::Locked, "{lines:#?}");
    let remote = r.of(EventKind::RemoteUnlock);
    assert_eq!(remote.len(), 1);
    assert_eq!(remote[0].identity.as_deref(), Some("guard"));
    assert_eq!(remote[0].lock, Some(LockState::Unlocked));
    // 7 s: lockdown lifted at 11:59:57; office hours hold the door until 12:00 (10 s).
    assert_eq!(state_at(&r, 8.0), LockState::Unlocked, "{lines:#?}");
    assert!(reasons(&r, EventKind::OfficeHoursStart)
        .iter()
        .any(|s| s.starts_with("lockdown lifted")));
    assert_eq!(state_at(&r, 11.5), LockState::Locked, "{lines:#?}");
}

/// Reader mode: the relay is never driven, whatever asks. The face becomes a card read; the
/// exit button and office hours are the panel's; a remote unlock is refused and recorded.
/// (c8d23fe: office hours and the remote unlock drove the relay in reader mode.)
#[test]
fn in_reader_mode_no_source_drives_the_relay() {
    let r = run(
        "output = { mode = \"wiegand\" }",
        "[[step]]\nshow = \"blank\"\nseconds = 1\n\n\
         [[step]]\nexit_button = true\n\n\
         [[step]]\nshow = \"blank\"\nseconds = 1\n\n\
         [[step]]\nremote_unlock = \"guard\"\n\n\
         [[step]]\nshow = \"obama2.jpg\"\nseconds = 2\n\n\
         [[step]]\nshow = \"blank\"\nseconds = 8\n",
    );
    let lines = r.json_lines();
    assert_eq!(
        r.relay,
        vec![(Duration::ZERO, LockState::Locked)],
        "{lines:#?}"
    );
    assert_eq!(r.of(EventKind::CredentialSent).len(), 1, "{lines:#?}");
    let refused = reasons(&r, EventKind::CommandRefused);
    assert_eq!(refused.len(), 1, "{lines:#?}");
    assert!(refused[0].contains("reader mode"), "{refused:?}");
    assert!(r.of(EventKind::RemoteUnlock).is_empty());
    assert!(r.of(EventKind::Exit).is_empty());
    assert!(r.of(EventKind::OfficeHoursStart).is_empty());
    // Every line the gate wrote says the relay stayed locked.
    for e in r.events.iter().filter(|e| e.lock.is_some()) {
        assert_eq!(e.lock, Some(LockState::Locked), "{e:?}");
    }
}

/// Reader mode in lockdown: the recognised face is refused and no card read goes to the panel.
#[test]
fn in_reader_mode_a_lockdown_sends_the_panel_nothing() {
    let r = run(
        "output = { mode = \"wiegand\" }",
        "[[step]]\nlockdown = true\n\n\
         [[step]]\nshow = \"obama2.jpg\"\nseconds = 2\n",
    );
    assert!(r.wiegand.is_empty(), "{:?}", r.wiegand);
    assert!(r.of(EventKind::CredentialSent).is_empty());
    assert!(reasons(&r, EventKind::Deny).iter().any(|d| d == "lockdown"));
    assert_eq!(r.relay, vec![(Duration::ZERO, LockState::Locked)]);
}

/// With `on_failure = "deny"` a remote unlock that cannot be recorded does not open the door;
/// with `grant_and_alarm` it does. (c8d23fe: the relay was driven first, then the record tried.)
#[test]
fn a_remote_unlock_that_cannot_be_recorded_leaves_the_door_locked_under_deny() {
    for (policy, opens) in [("deny", false), ("grant_and_alarm", true)] {
        let r = run(
            &format!(
                "access = {{}}\n\
                 audit = {{ path = \"/nonexistent/facegate/audit.jsonl\", on_failure = \"{policy}\" }}"
            ),
            "[[step]]\nremote_unlock = \"guard\"\n\n\
             [[step]]\nshow = \"blank\"\nseconds = 2\n",
        );
        let unlocked = r.relay.iter().any(|(_, s)| *s == LockState::Unlocked);
        assert_eq!(unlocked, opens, "{policy}: relay {:?}", r.relay);
        assert!(!r.of(EventKind::AuditFailed).is_empty(), "{policy}");
    }
}

/// What the site is told is what the relay does: every line the gate wrote while office hours
/// held the door says `unlocked`, and the relock after them `locked`. (c8d23fe: Home Assistant
/// was told LOCKED while office hours held the door open; `site/link.rs` reads `lock`.)
#[test]
fn the_records_of_office_hours_say_the_relay_is_unlocked() {
    let r = run("", "[[step]]\nshow = \"blank\"\nseconds = 12\n");
    let start = &r.of(EventKind::OfficeHoursStart)[0];
    assert_eq!(start.lock, Some(LockState::Unlocked));
    let end = &r.of(EventKind::OfficeHoursEnd)[0];
    assert!(end.t >= 10.0, "{end:?}");
    let relock = r.of(EventKind::Relock);
    assert_eq!(relock.last().unwrap().lock, Some(LockState::Locked));
    assert_eq!(state_at(&r, 11.5), LockState::Locked);
}
