//! The gate's table, cell by cell: every source in every situation, against the gate alone
//! (a recording relay, a recorder that can fail, a panel output that counts reads). The same
//! table is in `docs/architecture.md`.

use super::*;
use crate::panel::reader::OutputError;
use std::sync::{Arc, Mutex};

/// What happened, in order: relay edges and records, so "recorded first" can be checked.
type Timeline = Arc<Mutex<Vec<String>>>;

struct Relay(Timeline);
impl LockOutput for Relay {
    fn set(&mut self, state: LockState) -> Result<(), LockError> {
        self.0.lock().unwrap().push(format!("relay {state:?}"));
        Ok(())
    }
}

struct Log {
    line: Timeline,
    works: bool,
    events: Vec<Event>,
}
impl Recorder for Log {
    fn record(&mut self, event: &Event) -> bool {
        let kind = serde_json::to_value(event.event).unwrap();
        let what = if self.works { "record" } else { "lost" };
        self.line
            .lock()
            .unwrap()
            .push(format!("{what} {}", kind.as_str().unwrap()));
        if self.works {
            self.events.push(event.clone());
        }
        self.works
    }
}

struct Panel(u32);
impl CredentialOutput for Panel {
    fn send(&mut self, c: &Credential) -> Result<String, OutputError> {
        self.0 += 1;
        Ok(c.to_string())
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Situation {
    Normal,
    Lockdown,
    ReaderMode,
    DuringOfficeHours,
    AuditFailingDeny,
    AuditFailingGrantAndAlarm,
}

fn at(secs: u64) -> At {
    At {
        now: Duration::from_secs(secs),
        wall: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs),
    }
}

fn request(source: Source) -> Request {
    match source {
        Source::Face => {
            let mut grant = Event::new(EventKind::Grant, at(10).wall, at(10).now);
            grant.identity = Some("alice".into());
            Request::Face {
                grant: Box::new(grant),
                credential: Some(Credential::Wiegand26 {
                    facility: 1,
                    card: 2,
                }),
                factors: Factors::default(),
            }
        }
        Source::ExitButton => Request::ExitButton,
        Source::Remote => Request::Remote {
            by: "admin".into(),
            via: "test".into(),
        },
        Source::OfficeHours => Request::OfficeHours {
            open: true,
            site_time: jiff::civil::date(2026, 11, 30).at(9, 0, 0, 0),
        },
    }
}

/// What one cell must show.
struct Cell {
    outcome: Outcome,
    /// The relay's state after the request.
    lock: LockState,
    /// What was written or attempted, relay edges included, in order (after the setup's).
    timeline: &'static [&'static str],
    /// Card reads the panel got.
    reads: u32,
}

/// Runs one request in one situation; returns the outcome, the relay state, the timeline
/// after the situation was set up, and the panel's reads.
fn run(situation: Situation, source: Source) -> (Outcome, LockState, Vec<String>, u32) {
    let line = Timeline::default();
    let mut panel = Panel(0);
    let reader = situation == Situation::ReaderMode;
    let on_failure = match situation {
        Situation::AuditFailingGrantAndAlarm => AuditFailure::GrantAndAlarm,
        _ => AuditFailure::Deny,
    };
    let settings = GateSettings {
        on_failure,
        hold: Duration::from_secs(5),
    };
    let output: Option<&mut (dyn CredentialOutput + 'static)> =
        if reader { Some(&mut panel) } else { None };
    let mut gate = Gate::new(Relay(line.clone()), output, settings).unwrap();
    let mut log = Log {
        line: line.clone(),
        works: true,
        events: Vec::new(),
    };
    match situation {
        Situation::Lockdown => gate.set_lockdown(true, at(1), &mut log).unwrap(),
        Situation::DuringOfficeHours => {
            let r = request(Source::OfficeHours);
            assert_eq!(gate.request(r, at(1), &mut log).unwrap(), Outcome::Opened);
        }
        Situation::AuditFailingDeny | Situation::AuditFailingGrantAndAlarm => log.works = false,
        Situation::Normal | Situation::ReaderMode => {}
    }
    let setup = line.lock().unwrap().len();
    let outcome = gate.request(request(source), at(2), &mut log).unwrap();
    let after = line.lock().unwrap()[setup..].to_vec();
    let lock = gate.lock_state();
    // Every line the gate wrote says what the relay does.
    for ev in &log.events {
        assert!(ev.lock.is_some(), "{ev:?}");
    }
    if let Some(last) = log
        .events
        .last()
        .filter(|_| after.iter().any(|l| l.starts_with("record")))
    {
        assert_eq!(last.lock, Some(lock), "{situation:?} {source:?}: {last:?}");
    }
    drop(gate);
    (outcome, lock, after, panel.0)
}

#[test]
fn every_source_in_every_situation_does_what_the_table_says() {
    use LockState::{Locked, Unlocked};
    use Outcome::*;
    use Situation::*;
    use Source::*;
    let cell = |outcome, lock, timeline, reads| Cell {
        outcome,
        lock,
        timeline,
        reads,
    };
    #[rustfmt::skip]
    let table: &[(Situation, Source, Cell)] = &[
        // Normal: every source opens; recorded first, except the exit button (egress first).
        (Normal, Face, cell(Opened, Unlocked, &["record grant", "relay Unlocked"], 0)),
        (Normal, ExitButton, cell(Opened, Unlocked, &["relay Unlocked", "record exit"], 0)),
        (Normal, Remote, cell(Opened, Unlocked, &["record remote_unlock", "relay Unlocked"], 0)),
        (Normal, OfficeHours, cell(Opened, Unlocked, &["record office_hours_start", "relay Unlocked"], 0)),
        // Lockdown: faces and office hours refused (recorded); egress and remote unlocks work.
        (Lockdown, Face, cell(Refused(Refusal::Lockdown), Locked, &["record deny"], 0)),
        (Lockdown, ExitButton, cell(Opened, Unlocked, &["relay Unlocked", "record exit"], 0)),
        (Lockdown, Remote, cell(Opened, Unlocked, &["record remote_unlock", "relay Unlocked"], 0)),
        (Lockdown, OfficeHours, cell(Refused(Refusal::Lockdown), Locked, &["record office_hours_start"], 0)),
        // Reader mode: the relay is never driven; a face is a card read for the panel.
        (ReaderMode, Face, cell(CredentialSent, Locked, &["record grant", "record credential_sent"], 1)),
        (ReaderMode, ExitButton, cell(Nothing, Locked, &[], 0)),
        (ReaderMode, Remote, cell(Refused(Refusal::ReaderMode), Locked, &["record command_refused"], 0)),
        (ReaderMode, OfficeHours, cell(Nothing, Locked, &[], 0)),
        // Office hours hold the door: every source still opens (and is recorded); office hours
        // only renew their hold.
        (DuringOfficeHours, Face, cell(Opened, Unlocked, &["record grant"], 0)),
        (DuringOfficeHours, ExitButton, cell(Opened, Unlocked, &["record exit"], 0)),
        (DuringOfficeHours, Remote, cell(Opened, Unlocked, &["record remote_unlock"], 0)),
        (DuringOfficeHours, OfficeHours, cell(Opened, Unlocked, &[], 0)),
        // The audit log cannot be written, on_failure = "deny": nothing opens that cannot be
        // recorded, except the exit button.
        (AuditFailingDeny, Face, cell(Refused(Refusal::NotRecorded), Locked, &["lost grant"], 0)),
        (AuditFailingDeny, ExitButton, cell(Opened, Unlocked, &["relay Unlocked", "lost exit"], 0)),
        (AuditFailingDeny, Remote, cell(Refused(Refusal::NotRecorded), Locked, &["lost remote_unlock"], 0)),
        (AuditFailingDeny, OfficeHours, cell(Refused(Refusal::NotRecorded), Locked, &["lost office_hours_start"], 0)),
        // on_failure = "grant_and_alarm": the door first, then the (failing) record.
        (AuditFailingGrantAndAlarm, Face, cell(Opened, Unlocked, &["relay Unlocked", "lost grant"], 0)),
        (AuditFailingGrantAndAlarm, ExitButton, cell(Opened, Unlocked, &["relay Unlocked", "lost exit"], 0)),
        (AuditFailingGrantAndAlarm, Remote, cell(Opened, Unlocked, &["relay Unlocked", "lost remote_unlock"], 0)),
        (AuditFailingGrantAndAlarm, OfficeHours, cell(Opened, Unlocked, &["relay Unlocked", "lost office_hours_start"], 0)),
    ];
    let situations = [
        Normal,
        Lockdown,
        ReaderMode,
        Situation::DuringOfficeHours,
        AuditFailingDeny,
        AuditFailingGrantAndAlarm,
    ];
    for s in situations {
        for src in [Face, ExitButton, Remote, OfficeHours] {
            assert!(
                table.iter().any(|(ts, tsrc, _)| *ts == s && *tsrc == src),
                "no cell for {s:?} x {src:?}"
            );
        }
    }
    for (situation, source, want) in table {
        let (outcome, lock, timeline, reads) = run(*situation, *source);
        let what = format!("{situation:?} x {source:?}");
        assert_eq!(outcome, want.outcome, "{what}");
        assert_eq!(lock, want.lock, "{what}");
        assert_eq!(timeline, want.timeline, "{what}");
        assert_eq!(reads, want.reads, "{what}");
    }
}

fn gate_with(line: &Timeline) -> (Gate<'static, Relay>, Log) {
    let settings = GateSettings {
        on_failure: AuditFailure::Deny,
        hold: Duration::from_secs(5),
    };
    let log = Log {
        line: line.clone(),
        works: true,
        events: Vec::new(),
    };
    (Gate::new(Relay(line.clone()), None, settings).unwrap(), log)
}

/// Defect of c8d23fe: office hours held the door open through a lockdown.
#[test]
fn a_lockdown_locks_a_door_that_office_hours_hold_and_lifting_it_holds_it_again() {
    let line = Timeline::default();
    let (mut gate, mut log) = gate_with(&line);
    let open = || request(Source::OfficeHours);
    gate.request(open(), at(1), &mut log).unwrap();
    assert_eq!(gate.lock_state(), LockState::Unlocked);
    assert_eq!(gate.state().held_by, Some(Source::OfficeHours));
    gate.set_lockdown(true, at(2), &mut log).unwrap();
    assert_eq!(gate.lock_state(), LockState::Locked);
    // Office hours, asked on every tick, keep it locked while the lockdown lasts.
    for t in 3..10 {
        let o = gate.request(open(), at(t), &mut log).unwrap();
        assert_eq!(o, Outcome::Refused(Refusal::Lockdown));
        assert_eq!(gate.tick(at(t), &mut log).unwrap(), None);
        assert_eq!(gate.lock_state(), LockState::Locked);
    }
    let relock = log.events.last().unwrap();
    assert_eq!(relock.event, EventKind::Relock);
    assert_eq!(relock.lock, Some(LockState::Locked));
    gate.set_lockdown(false, at(10), &mut log).unwrap();
    assert_eq!(gate.lock_state(), LockState::Unlocked);
    assert_eq!(
        log.events.last().unwrap().event,
        EventKind::OfficeHoursStart
    );
}

/// A lockdown leaves an exit-button or remote unlock running (those sources it does not block),
/// and locks at once a face's.
#[test]
fn a_lockdown_cuts_a_faces_unlock_short_but_not_egress() {
    for (source, stays) in [
        (Source::Face, false),
        (Source::ExitButton, true),
        (Source::Remote, true),
    ] {
        let line = Timeline::default();
        let (mut gate, mut log) = gate_with(&line);
        gate.request(request(source), at(1), &mut log).unwrap();
        gate.set_lockdown(true, at(2), &mut log).unwrap();
        let want = if stays {
            LockState::Unlocked
        } else {
            LockState::Locked
        };
        assert_eq!(gate.lock_state(), want, "{source:?}");
    }
}

/// The office-hours window's end is recorded, and the door locks within a step of it.
#[test]
fn office_hours_end_and_the_door_locks_within_a_step() {
    let line = Timeline::default();
    let (mut gate, mut log) = gate_with(&line);
    gate.request(request(Source::OfficeHours), at(1), &mut log)
        .unwrap();
    // Renewed on the next tick: now held until 3 s.
    gate.request(request(Source::OfficeHours), at(2), &mut log)
        .unwrap();
    let close = Request::OfficeHours {
        open: false,
        site_time: jiff::civil::date(2026, 11, 30).at(17, 0, 0, 0),
    };
    gate.request(close, at(2), &mut log).unwrap();
    assert_eq!(log.events.last().unwrap().event, EventKind::OfficeHoursEnd);
    assert_eq!(gate.tick(at(2), &mut log).unwrap(), None);
    let late = gate.tick(at(3), &mut log).unwrap();
    assert_eq!(late, Some(Duration::ZERO), "due at 2 + 1 s, ticked at 3");
    assert_eq!(gate.lock_state(), LockState::Locked);
    assert_eq!(gate.state().held_by, None);
}

/// Office hours that could not be recorded (deny) are tried again a minute later, not on every
/// tick (which would flood a failing log).
#[test]
fn office_hours_not_recorded_are_retried_after_a_minute() {
    let line = Timeline::default();
    let (mut gate, mut log) = gate_with(&line);
    log.works = false;
    let open = || request(Source::OfficeHours);
    gate.request(open(), at(1), &mut log).unwrap();
    for t in 2..61 {
        let o = gate.request(open(), at(t), &mut log).unwrap();
        assert_eq!(o, Outcome::Refused(Refusal::NotRecorded));
    }
    let attempts = |l: &Timeline| {
        l.lock()
            .unwrap()
            .iter()
            .filter(|s| s.starts_with("lost"))
            .count()
    };
    assert_eq!(attempts(&line), 1);
    log.works = true;
    assert_eq!(
        gate.request(open(), at(61), &mut log).unwrap(),
        Outcome::Opened
    );
    assert_eq!(gate.lock_state(), LockState::Unlocked);
}

/// A second factor is a condition of the gate: under `card_and_face` a face alone is refused
/// and recorded (`second_factor`), the same face with its card opens; a person who must always
/// use a PIN is refused at a face-only site without it; a PIN does not stand in for a card.
#[test]
fn a_face_without_the_factor_its_mode_requires_is_refused_and_recorded() {
    use crate::access::factors::{FactorMode, FactorRule, Presented};
    use crate::people::policy::AccessConfig;
    let face = |presented: Presented, person: Option<FactorMode>| {
        let mut grant = Event::new(EventKind::Grant, at(2).wall, at(2).now);
        grant.identity = Some("alice".into());
        Request::Face {
            grant: Box::new(grant),
            credential: None,
            factors: Factors { presented, person },
        }
    };
    let card = Presented {
        card: true,
        pin: false,
    };
    let pin = Presented {
        card: false,
        pin: true,
    };
    let settings = GateSettings {
        on_failure: AuditFailure::Deny,
        hold: Duration::from_secs(5),
    };
    for (site, presented, person, opens) in [
        (FactorMode::CardAndFace, Presented::default(), None, false),
        (FactorMode::CardAndFace, pin, None, false),
        (FactorMode::CardAndFace, card, None, true),
        (FactorMode::FaceAndPin, card, None, false),
        (FactorMode::FaceAndPin, pin, None, true),
        (FactorMode::Face, Presented::default(), None, true),
        (FactorMode::FaceOrCard, Presented::default(), None, true),
        (
            FactorMode::Face,
            Presented::default(),
            Some(FactorMode::FaceAndPin),
            false,
        ),
        (FactorMode::Face, pin, Some(FactorMode::FaceAndPin), true),
        // A person's `face` does not loosen the site's mode.
        (
            FactorMode::CardAndFace,
            Presented::default(),
            Some(FactorMode::Face),
            false,
        ),
    ] {
        let line = Timeline::default();
        let rule = FactorRule::of(&AccessConfig {
            timezone: "UTC".into(),
            factors: site,
            ..AccessConfig::default()
        });
        let mut gate = Gate::new(Relay(line.clone()), None, settings)
            .unwrap()
            .with_factors(rule);
        let mut log = Log {
            line,
            works: true,
            events: Vec::new(),
        };
        let what = format!("{site:?} {presented:?} {person:?}");
        let outcome = gate
            .request(face(presented, person), at(2), &mut log)
            .unwrap();
        let ev = log.events.last().unwrap();
        if opens {
            assert_eq!(outcome, Outcome::Opened, "{what}");
            assert_eq!(gate.lock_state(), LockState::Unlocked, "{what}");
            assert_eq!(ev.event, EventKind::Grant, "{what}");
        } else {
            assert_eq!(outcome, Outcome::Refused(Refusal::SecondFactor), "{what}");
            assert_eq!(gate.lock_state(), LockState::Locked, "{what}");
            assert_eq!(ev.event, EventKind::Deny, "{what}");
            assert_eq!(ev.reason.as_deref(), Some("second_factor"), "{what}");
            assert_eq!(ev.identity.as_deref(), Some("alice"), "{what}");
        }
    }
}
