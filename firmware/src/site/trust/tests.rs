//! The door's checks of site messages, each refusal with the message that earns it.

use super::*;
use crate::site::signing::SiteKey;

const FP: &str = "model-fp";
const NOW: u64 = 1_800_000_000_000;

struct Door {
    dir: tempfile::TempDir,
    key: SiteKey,
    cfg: MqttConfig,
}

impl Door {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key = SiteKey::generate().unwrap();
        let public = dir.path().join("site.pub");
        key.save(&dir.path().join("site.key"), &public).unwrap();
        Locked::acquire(&dir.path().join("gallery.toml"))
            .unwrap()
            .save(&Gallery::new(FP))
            .unwrap();
        let cfg = MqttConfig {
            site: "hq".into(),
            door: "front".into(),
            site_key: Some(public),
            commands: true,
            max_people: 3,
            ..MqttConfig::default()
        };
        Self { dir, key, cfg }
    }
    fn gallery(&self) -> PathBuf {
        self.dir.path().join("gallery.toml")
    }
    fn trust(&self) -> (SiteTrust, Startup) {
        SiteTrust::open(&self.cfg, &self.gallery(), FP)
            .unwrap()
            .unwrap()
    }
    fn command(&self, action: &str, door: &str, version: u64) -> Vec<u8> {
        self.signed(
            "command",
            door,
            version,
            "",
            format!("{{\"action\":\"{action}\",\"by\":\"ada\"}}"),
        )
    }
    fn signed(&self, kind: &str, door: &str, version: u64, fp: &str, payload: String) -> Vec<u8> {
        Envelope::sign(&self.key, kind, "hq", door, version, fp, payload)
            .to_json()
            .into_bytes()
    }
    fn gallery_msg(&self, people: usize, version: u64) -> Vec<u8> {
        let mut g = Gallery::new(FP);
        for i in 0..people {
            g.people.push(crate::people::gallery::Person {
                id: format!("p{i}"),
                name: format!("P {i}"),
                enrolments: vec![crate::people::gallery::Enrolment {
                    enrolled_at: "2026-12-07T10:00:00Z".into(),
                    source: "p.jpg".into(),
                    sha256: "00".repeat(32),
                    embedding: vec![1.0, 0.0, 0.0],
                    crop: None,
                }],
                policy: Default::default(),
                credential: None,
                pin_hash: None,
                duress_hash: None,
            });
        }
        self.signed("gallery", "*", version, FP, toml::to_string(&g).unwrap())
    }
}

fn why(r: Result<Accepted, Refused>) -> Refusal {
    r.expect_err("refused").why
}

#[test]
fn a_command_signed_by_the_site_key_is_taken_once() {
    let d = Door::new();
    let (mut t, startup) = d.trust();
    assert_eq!(startup, Startup::Normal);
    assert_eq!(
        t.command(&d.command("unlock", "front", NOW), NOW + 500),
        Ok(Accepted::Unlock { by: "ada".into() })
    );
    // The same message again (a replay by whoever holds it) is refused.
    assert_eq!(
        why(t.command(&d.command("unlock", "front", NOW), NOW + 600)),
        Refusal::Replayed
    );
    // For another door: nothing to do here.
    assert_eq!(
        t.command(&d.command("unlock", "back", NOW + 1), NOW + 600),
        Ok(Accepted::Nothing)
    );
}

#[test]
fn forged_torn_foreign_and_unknown_commands_are_refused_in_the_doors_words() {
    let d = Door::new();
    let (mut t, _) = d.trust();
    let forger = SiteKey::generate().unwrap();
    let forged = Envelope::sign(&forger, "command", "hq", "front", NOW, "", "{}".into());
    assert_eq!(
        why(t.command(forged.to_json().as_bytes(), NOW)),
        Refusal::BadSignature
    );
    let good = d.command("unlock", "front", NOW);
    assert_eq!(
        why(t.command(&good[..good.len() / 2], NOW)),
        Refusal::Malformed
    );
    let other_site = Envelope::sign(&d.key, "command", "elsewhere", "*", NOW, "", "{}".into());
    assert_eq!(
        why(t.command(other_site.to_json().as_bytes(), NOW)),
        Refusal::OtherSite
    );
    assert_eq!(
        why(t.command(&d.command("open_sesame", "front", NOW), NOW)),
        Refusal::UnknownCommand
    );
    // A name that could split or colour a log line is not recorded.
    let evil = d.signed(
        "command",
        "front",
        NOW,
        "",
        "{\"action\":\"unlock\",\"by\":\"ada\\nforged line\"}".into(),
    );
    let r = t.command(&evil, NOW).unwrap_err();
    assert_eq!(r.why, Refusal::UnknownCommand);
    assert!(!r.to_string().contains("forged"), "{r}");
    // Oversized: refused before any parsing.
    let big = vec![b' '; MAX_COMMAND_BYTES + 1];
    assert_eq!(why(t.command(&big, NOW)), Refusal::TooLarge);
}

/// Finding 2 of #24: serde's error text repeated attacker text (an unknown field name, of any
/// size) into the refusal's reason and so into the audit log.
#[test]
fn no_text_of_a_refused_message_reaches_the_refusal() {
    let d = Door::new();
    let (mut t, _) = d.trust();
    let marker = "ATTACKER".repeat(100);
    let junk = format!("{{\"{marker}\":1}}");
    let r = t.command(junk.as_bytes(), NOW).unwrap_err();
    assert!(!r.to_string().contains("ATTACKER"), "{r}");
    let payload = format!("{{\"action\":\"unlock\",\"by\":\"ada\",\"{marker}\":1}}");
    let r = t
        .command(&d.signed("command", "front", NOW, "", payload), NOW)
        .unwrap_err();
    assert!(!r.to_string().contains("ATTACKER"), "{r}");
}

/// Finding 3 of #24: one message signed on a clock running ahead locked out every correctly
/// dated later one until a state file was deleted by hand.
#[test]
fn a_version_far_ahead_of_the_doors_clock_is_refused_and_locks_out_nothing() {
    let d = Door::new();
    let (mut t, _) = d.trust();
    let year = 365 * 24 * 3600 * 1000;
    assert_eq!(
        why(t.command(&d.command("lockdown", "front", NOW + year), NOW)),
        Refusal::FromTheFuture
    );
    assert_eq!(
        why(t.gallery(&d.gallery_msg(1, NOW + year), NOW)),
        Refusal::FromTheFuture
    );
    // Correctly dated messages still count.
    assert!(matches!(
        t.command(&d.command("lockdown", "front", NOW), NOW),
        Ok(Accepted::Lockdown { on: true, .. })
    ));
    assert!(matches!(
        t.gallery(&d.gallery_msg(1, NOW), NOW),
        Ok(Accepted::Gallery { people: 1, .. })
    ));
    // A little ahead (clocks differ by seconds) is fine.
    assert!(t
        .command(&d.command("clear_lockdown", "*", NOW + 60_000), NOW)
        .is_ok());
}

#[test]
fn an_unlock_is_bounded_in_age_both_ways() {
    let d = Door::new();
    let (mut t, _) = d.trust();
    let window = UNLOCK_WINDOW.as_millis() as u64;
    assert_eq!(
        why(t.command(&d.command("unlock", "front", NOW - window - 1), NOW)),
        Refusal::Expired
    );
    assert_eq!(
        why(t.command(&d.command("unlock", "front", NOW + window + 1), NOW)),
        Refusal::Expired
    );
    assert!(t
        .command(&d.command("unlock", "front", NOW + window - 1), NOW)
        .is_ok());
}

#[test]
fn the_newest_lockdown_state_wins_and_survives_a_restart() {
    let d = Door::new();
    let (mut t, _) = d.trust();
    assert!(matches!(
        t.command(&d.command("lockdown", "*", NOW), NOW),
        Ok(Accepted::Lockdown { on: true, .. })
    ));
    // The retained state again after a reconnect, or an older clear: nothing changes.
    assert_eq!(
        t.command(&d.command("lockdown", "*", NOW), NOW),
        Ok(Accepted::Nothing)
    );
    assert_eq!(
        t.command(&d.command("clear_lockdown", "front", NOW - 1), NOW),
        Ok(Accepted::Nothing)
    );
    drop(t);
    let (mut t, startup) = d.trust();
    assert_eq!(startup, Startup::Lockdown { by: "ada".into() });
    assert!(matches!(
        t.command(&d.command("clear_lockdown", "front", NOW + 1), NOW),
        Ok(Accepted::Lockdown { on: false, .. })
    ));
    drop(t);
    assert_eq!(d.trust().1, Startup::Normal);
}

/// Finding 9 of #24: a corrupt state file was dropped silently at restart, a lockdown with it.
#[test]
fn a_state_file_that_cannot_be_read_starts_the_door_in_lockdown() {
    let d = Door::new();
    std::fs::write(state_path(&d.gallery()), b"{\"lockdown_by\": tor").unwrap();
    let (mut t, startup) = d.trust();
    assert!(
        matches!(&startup, Startup::Unreadable { problem } if problem.contains("site.json")),
        "{startup:?}"
    );
    // A signed clear lifts it, and the file is good again.
    assert!(t
        .command(&d.command("clear_lockdown", "*", NOW), NOW)
        .is_ok());
    assert_eq!(d.trust().1, Startup::Normal);
}

#[test]
fn a_lockdown_that_cannot_be_saved_still_holds_and_a_clear_that_cannot_is_refused() {
    let d = Door::new();
    let (mut t, _) = d.trust();
    // The state file's place taken by a directory: every save fails.
    std::fs::create_dir(state_path(&d.gallery())).unwrap();
    assert!(matches!(
        t.command(&d.command("lockdown", "*", NOW), NOW),
        Ok(Accepted::Lockdown { on: true, .. })
    ));
    assert_eq!(
        why(t.command(&d.command("clear_lockdown", "*", NOW + 1), NOW)),
        Refusal::NotSaved
    );
    assert_eq!(t.state().lockdown_by.as_deref(), Some("ada"));
}

#[test]
fn a_gallery_is_checked_bounded_saved_and_its_replays_refused() {
    let d = Door::new();
    let (mut t, _) = d.trust();
    assert_eq!(
        t.gallery(&d.gallery_msg(2, NOW), NOW),
        Ok(Accepted::Gallery {
            version: NOW,
            people: 2
        })
    );
    let saved = Gallery::load(&d.gallery(), FP).unwrap();
    assert_eq!(saved.people.len(), 2);
    // Again (retained, after a reconnect): nothing; older: refused.
    assert_eq!(
        t.gallery(&d.gallery_msg(2, NOW), NOW),
        Ok(Accepted::Nothing)
    );
    assert_eq!(
        why(t.gallery(&d.gallery_msg(1, NOW - 1), NOW)),
        Refusal::Replayed
    );
    // More people than mqtt.max_people, or more bytes than they may take.
    assert_eq!(
        why(t.gallery(&d.gallery_msg(4, NOW + 1), NOW)),
        Refusal::TooManyPeople
    );
    let huge = vec![b' '; max_gallery_bytes(3) + 1];
    assert_eq!(why(t.gallery(&huge, NOW)), Refusal::TooLarge);
    // Another model's gallery.
    let other = d.signed("gallery", "*", NOW + 2, "other-fp", String::new());
    assert_eq!(why(t.gallery(&other, NOW)), Refusal::OtherModel);
    // A command where a gallery is expected.
    assert_eq!(
        why(t.gallery(&d.command("unlock", "*", NOW + 3), NOW)),
        Refusal::WrongKind
    );
    assert_eq!(Gallery::load(&d.gallery(), FP).unwrap().people.len(), 2);
}

#[test]
fn resetting_the_versions_takes_correctly_dated_messages_again() {
    let d = Door::new();
    // A state written by an older door that took a message from a clock a year ahead.
    let year = 365 * 24 * 3600 * 1000;
    let ahead = SiteState {
        gallery_version: NOW + year,
        command_version: NOW + year,
        ..SiteState::default()
    };
    std::fs::write(
        state_path(&d.gallery()),
        serde_json::to_vec(&ahead).unwrap(),
    )
    .unwrap();
    let (mut t, _) = d.trust();
    assert_eq!(
        why(t.command(&d.command("unlock", "front", NOW), NOW)),
        Refusal::Replayed
    );
    let before = t.reset_versions(NOW - 10).unwrap();
    assert_eq!(before.command_version, NOW + year);
    assert!(t.command(&d.command("unlock", "front", NOW), NOW).is_ok());
    assert!(t.gallery(&d.gallery_msg(1, NOW), NOW).is_ok());
}

#[test]
fn every_refusal_has_a_word_that_reads_back() {
    for r in Refusal::ALL {
        assert_eq!(Refusal::parse(r.as_str()), Some(r));
        assert!(r
            .as_str()
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '_'));
    }
    assert_eq!(Refusal::parse("anything else"), None);
}

#[test]
fn a_flood_of_refusals_is_recorded_ten_a_minute_then_as_one_count() {
    let mut b = RefusalBudget::default();
    let t0 = Duration::from_secs(100);
    let admitted = (0..1000).filter(|_| b.admit(t0)).count();
    assert_eq!(admitted, REFUSALS_PER_MINUTE as usize);
    assert_eq!(b.summary_due(t0 + Duration::from_secs(59)), None);
    assert_eq!(b.summary_due(t0 + Duration::from_secs(60)), Some(990));
    // A new minute: its own ten.
    assert!(b.admit(t0 + Duration::from_secs(61)));
    assert_eq!(b.summary_due(t0 + Duration::from_secs(200)), None);
}
