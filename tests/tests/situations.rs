//! End-to-end tests of the door situations of issue 13 (forced, held, relock on close, lockout,
//! schedule, disabled, expired, office hours, tailgating, tamper): each runs the scenario of
//! `host-sim/scenarios/` on the real daemon loop, with the f32 embedder (fast on this CPU).

use facegate::hal::LockState;
use facegate::records::audit::EventKind;
use facegate_sim::Report;
use std::time::Duration;

mod common;

/// Runs the shipped scenario NAME with the photos it shows.
fn run(name: &str) -> Report {
    common::run_shipped(name, &["obama.jpg", "obama2.jpg", "biden.jpg"])
}

fn at(r: &Report, kind: EventKind) -> f64 {
    r.of(kind)
        .first()
        .unwrap_or_else(|| panic!("no {kind:?}"))
        .t
}

#[test]
fn a_forced_door_raises_the_alarm_until_it_closes_and_a_lawful_exit_does_not() {
    let r = run("forced_open");
    assert_eq!(
        r.of(EventKind::ForcedOpen).len(),
        1,
        "the exit is not forced"
    );
    let on = r.alarm.iter().find(|e| e.1).unwrap().0;
    let off = r.alarm.iter().find(|e| !e.1).unwrap().0;
    assert!((on.as_secs_f64() - at(&r, EventKind::ForcedOpen)).abs() < 0.06);
    assert!((off.as_secs_f64() - at(&r, EventKind::AlarmCleared)).abs() < 0.06);
    assert_eq!(r.alarm.len(), 2, "{:?}", r.alarm);
}

#[test]
fn a_door_held_open_warns_then_alarms_and_clears_on_close() {
    let r = run("held_open");
    let grant = r.grants()[0].t;
    // Unlocked 2 s, then held open for 6 s with the lock locked: warning at 4 s, alarm at 6 s.
    let warn = at(&r, EventKind::HeldOpenWarning) - grant;
    let held = at(&r, EventKind::HeldOpen) - grant;
    assert!((5.9..6.3).contains(&warn), "{warn}");
    assert!((7.9..8.3).contains(&held), "{held}");
    assert!(at(&r, EventKind::AlarmCleared) > at(&r, EventKind::HeldOpen));
}

#[test]
fn the_unlock_ends_when_the_door_has_opened_and_closed() {
    let r = run("relock_on_close");
    let unlock = r.unlocks()[0];
    let relock = r
        .relay
        .iter()
        .find(|e| e.0 > unlock && e.1 == LockState::Locked)
        .unwrap()
        .0;
    // Closed 1 s after opening, far before unlock_seconds = 20.
    assert!(relock - unlock < Duration::from_secs(3), "{relock:?}");
    let relocks = r.of(EventKind::Relock);
    assert_eq!(
        relocks[0].reason.as_deref(),
        Some("the door opened and closed")
    );
}

#[test]
fn denials_lock_recognition_out_but_not_the_exit_button() {
    let r = run("lockout");
    let lockout = at(&r, EventKind::Lockout);
    // The enrolled person shown during the lockout is not even judged.
    assert!(r.grants().is_empty());
    assert!(at(&r, EventKind::Exit) > lockout);
}

#[test]
fn a_person_outside_their_weekly_window_is_refused_as_outside_schedule() {
    let r = run("schedule");
    let d = r
        .of(EventKind::Deny)
        .into_iter()
        .find(|e| e.reason.as_deref() == Some("outside_schedule"))
        .unwrap();
    assert_eq!(d.identity.as_deref(), Some("obama"));
    assert!(d.t > r.grants()[0].t);
}

#[test]
fn a_disabled_person_is_refused_as_disabled() {
    let r = run("disabled");
    assert!(r.grants().is_empty());
    assert!(r
        .of(EventKind::Deny)
        .iter()
        .all(|e| e.reason.as_deref() != Some("unknown")));
}

#[test]
fn an_expired_person_is_refused_as_expired() {
    let r = run("expired");
    assert_eq!(
        r.of(EventKind::Deny)[0].identity.as_deref(),
        Some("obama"),
        "recognised, then refused by the policy"
    );
}

#[test]
fn office_hours_keep_the_door_unlocked_and_it_locks_at_the_end() {
    let r = run("office_hours");
    assert_eq!(
        r.relay_state_at(Duration::from_secs(2)),
        Some(LockState::Unlocked)
    );
    // 12:00 is 5 s after the start: locked within a second of it.
    assert_eq!(
        r.relay_state_at(Duration::from_secs_f64(6.2)),
        Some(LockState::Locked)
    );
    assert!(at(&r, EventKind::OfficeHoursEnd) >= 5.0);
}

#[test]
fn two_faces_in_the_frame_never_agree_with_max_faces_1() {
    let r = run("tailgating");
    assert!(r.grants()[0].t > 3.0, "only once the person is alone");
}

#[test]
fn a_covered_camera_is_tamper_and_a_camera_gone_for_long_is_camera_lost() {
    let r = run("tamper");
    let tamper = &r.of(EventKind::Tamper)[0];
    assert!(tamper.reason.as_deref().unwrap().contains("covered"));
    assert!((3.0..3.5).contains(&tamper.t), "{}", tamper.t);
    let lost = at(&r, EventKind::CameraLost) - at(&r, EventKind::CameraError);
    assert!((5.0..7.0).contains(&lost), "{lost}");
}
