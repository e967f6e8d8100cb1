//! The door's local control API end to end: the real daemon (simulated camera and relay, in
//! real time) serving its Unix socket, asked as `facegate door` asks: status, the event stream,
//! lockdown (a recognised face is then refused), a remote unlock through the gate, each audited
//! with who asked and from which process. The live view and snapshots, with the operator key.

use facegate::control::Control;
use facegate::door::control_api::client::DoorClient;
use facegate::door::control_api::live::Verdict;
use facegate::door::control_api::{ask, follow_events};
use facegate::hal::LockState;
use facegate::records::audit::EventKind;
use facegate_e2e::{fixture, fixtures_dir};
use facegate_sim::{run_scenario, RunOptions, Scenario};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn scenario() -> Scenario {
    for f in ["obama.jpg", "obama2.jpg"] {
        fixture(f);
    }
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/manifest.toml");
    let text = format!(
        "[config]\ncontrol = {{ socket = \"control.sock\" }}\nlock = {{ unlock_seconds = 1 }}\n\
         [config.recognition]\nmodels = \"{manifest}\"\nembedder = \"dlib_resnet_v1_f32\"\n\n\
         [[enroll]]\nid = \"obama\"\nname = \"Barack Obama\"\nphotos = [\"obama.jpg\"]\n\n\
         [[step]]\nshow = \"blank\"\nseconds = 1.5\n\n\
         [[step]]\nshow = \"obama2.jpg\"\nseconds = 3\n\n\
         [[step]]\nshow = \"blank\"\nseconds = 6\n"
    );
    Scenario::parse(&text, Path::new("control.toml"), &fixtures_dir()).unwrap()
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(Instant::now() < deadline, "{what}: not within 20 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn status(socket: &Path) -> serde_json::Value {
    let text = ask(socket, "status").unwrap().unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn the_control_api_reports_streams_locks_down_and_unlocks_through_the_gate() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    let s = scenario();
    let opts = RunOptions {
        realtime: true,
        workdir: Some(dir.path().to_owned()),
    };
    let control = Control::default();
    let door = std::thread::spawn(move || run_scenario(&s, &opts, control).unwrap());
    wait_for("the socket", || {
        socket.exists() && ask(&socket, "help").is_ok()
    });

    // Follow the events from the start.
    let streamed = Arc::new(Mutex::new(Vec::<String>::new()));
    let follower = {
        let (socket, streamed) = (socket.clone(), Arc::clone(&streamed));
        std::thread::spawn(move || {
            let _ = follow_events(&socket, |l| {
                streamed.lock().unwrap().push(l.to_owned());
                true
            });
        })
    };
    let st = status(&socket);
    assert_eq!(st["door"]["lock"], "locked", "{st}");
    assert_eq!(st["door"]["lockdown"], false, "{st}");
    assert_eq!(st["people"], 1, "{st}");

    // Lockdown before the employee comes: recognised, refused, and `status` says so.
    assert_eq!(
        ask(&socket, "lockdown on by guard").unwrap(),
        Ok("lockdown on".into())
    );
    assert_eq!(status(&socket)["door"]["lockdown"], true);
    wait_for("a denial for lockdown", || {
        status(&socket)["recent"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["event"] == "deny" && d["reason"] == "lockdown")
    });
    assert_eq!(status(&socket)["door"]["lock"], "locked");
    assert_eq!(
        ask(&socket, "lockdown off by guard").unwrap(),
        Ok("lockdown off".into())
    );

    // A remote unlock: through the gate, audited with who asked.
    assert_eq!(
        ask(&socket, "unlock by guard").unwrap(),
        Ok("opened".into())
    );
    let st = status(&socket);
    assert_eq!(st["door"]["lock"], "unlocked", "{st}");
    assert_eq!(st["door"]["held_by"], "remote", "{st}");
    wait_for("the unlock in the event stream", || {
        streamed
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("\"remote_unlock\""))
    });
    // Bad requests are answered, and change nothing.
    assert!(ask(&socket, "unlock by guard\u{7}").unwrap().is_err());
    assert!(ask(&socket, "unlock").unwrap().is_err());

    let r = door.join().unwrap();
    follower.join().unwrap();
    assert!(!socket.exists(), "the socket goes with the door");
    let lines = r.json_lines();
    let remote = r.of(EventKind::RemoteUnlock);
    assert_eq!(remote.len(), 1, "{lines:#?}");
    assert_eq!(remote[0].identity.as_deref(), Some("guard"));
    let via = remote[0].reason.as_deref().unwrap();
    assert!(via.starts_with("control API, uid "), "{via}");
    for kind in [EventKind::Lockdown, EventKind::LockdownCleared] {
        let ev = r.of(kind);
        assert_eq!(ev.len(), 1, "{kind:?}: {lines:#?}");
        assert_eq!(ev[0].identity.as_deref(), Some("guard"));
    }
    assert!(
        r.grants().is_empty(),
        "the employee came during the lockdown: {lines:#?}"
    );
    assert!(r.relay.iter().any(|e| e.1 == LockState::Unlocked));
    // What was streamed is what was recorded, in the same order.
    let streamed = streamed.lock().unwrap();
    let kinds: Vec<String> = streamed
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["event"].to_string())
        .collect();
    assert!(kinds.iter().any(|k| k == "\"lockdown\""), "{kinds:?}");
    assert!(
        kinds.iter().any(|k| k == "\"lockdown_cleared\""),
        "{kinds:?}"
    );
}

const KEY: &str = "console-operator-key-for-the-end-to-end-test";

/// The door of the live view's test: 1280 x 720, the operator key in the run's directory; the
/// employee comes after 2 s of an empty scene and stays 8 s, then a stranger stands beside him
/// (anti-tailgating on, so every face is detected: the smaller one is shown `detected`).
fn live_scenario() -> Scenario {
    for f in ["obama.jpg", "obama2.jpg", "biden.jpg"] {
        fixture(f);
    }
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/manifest.toml");
    let text = format!(
        "[config]\ncontrol = {{ socket = \"control.sock\", operator_key = \"console.key\" }}\n\
         lock = {{ unlock_seconds = 1 }}\ncamera = {{ width = 1280, height = 720 }}\n\
         access = {{ max_faces = 2 }}\n\
         [config.recognition]\nmodels = \"{manifest}\"\nembedder = \"dlib_resnet_v1_f32\"\n\n\
         [[enroll]]\nid = \"obama\"\nname = \"Barack Obama\"\nphotos = [\"obama.jpg\"]\n\n\
         [[step]]\nshow = \"blank\"\nseconds = 2\n\n\
         [[step]]\nshow = \"obama2.jpg\"\nseconds = 8\n\n\
         [[step]]\nshow = [\"obama2.jpg\", \"biden.jpg\"]\nseconds = 8\n\n\
         [[step]]\nshow = \"blank\"\nseconds = 1\n"
    );
    Scenario::parse(&text, Path::new("live.toml"), &fixtures_dir()).unwrap()
}

#[test]
fn the_live_view_shows_who_would_be_let_in_and_costs_nothing_unwatched() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    std::fs::write(dir.path().join("console.key"), format!("{KEY}\n")).unwrap();
    let s = live_scenario();
    let opts = RunOptions {
        realtime: true,
        workdir: Some(dir.path().to_owned()),
    };
    let door = std::thread::spawn(move || run_scenario(&s, &opts, Control::default()).unwrap());
    wait_for("the socket", || {
        socket.exists() && ask(&socket, "help").is_ok()
    });

    // Frames go by, nobody watches: nothing is encoded.
    wait_for("a few frames", || {
        status(&socket)["frames"].as_u64() > Some(3)
    });
    let st = status(&socket);
    assert_eq!(st["live"]["viewers"], 0, "{st}");
    assert_eq!(st["live"]["frames_encoded"], 0, "{st}");
    // Without the key (as another user would be without it): a wrong key is refused.
    let e = DoorClient::connect(&socket, Some("a-wrong-key-a-wrong-key-a-wrong-key")).unwrap_err();
    assert!(e.to_string().contains("wrong operator key"), "{e}");

    // A snapshot: the camera's frame, full size; still nothing encoded for a viewer.
    let mut door_client = DoorClient::connect(&socket, Some(KEY)).unwrap();
    let jpeg = door_client.snapshot().unwrap();
    let img = image::load_from_memory(&jpeg).unwrap();
    assert_eq!((img.width(), img.height()), (1280, 720));
    assert_eq!(door_client.status().unwrap()["live"]["frames_encoded"], 0);

    // The live view: frames that parse and decode, until the employee is shown as let in.
    let mut view = DoorClient::connect(&socket, Some(KEY))
        .unwrap()
        .view()
        .unwrap();
    let second = DoorClient::connect(&socket, Some(KEY))
        .unwrap()
        .view()
        .unwrap();
    // The second viewer reads its frames as a browser does (a viewer that stops reading is
    // dropped by the door once its writes block, which is what a slow machine showed).
    let second_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let second = {
        let stop = second_stop.clone();
        std::thread::spawn(move || {
            let mut n = 0u32;
            for frame in second {
                if frame.is_err() || stop.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                n += 1;
            }
            n
        })
    };
    // A third viewer is turned away.
    let third = DoorClient::connect(&socket, Some(KEY))
        .unwrap()
        .view()
        .unwrap_err();
    assert!(third.to_string().contains("busy: 2 viewers"), "{third}");
    let started = Instant::now();
    let (mut frames, mut last_seq) = (0u32, 0);
    let seen = loop {
        let frame = view.next().unwrap().unwrap();
        frames += 1;
        let m = &frame.meta;
        assert!(m.seq > last_seq, "{m:?}");
        last_seq = m.seq;
        let img = image::load_from_memory(&frame.jpeg).unwrap();
        assert_eq!((img.width(), img.height()), (m.width, m.height), "{m:?}");
        assert_eq!((m.width, m.height), (640, 360), "{m:?}");
        for f in &m.faces {
            assert!(f.x + f.w <= m.width && f.y + f.h <= m.height, "{m:?}");
        }
        if let Some(f) = m.faces.iter().find(|f| f.verdict == Verdict::LetIn) {
            break f.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no let_in: {m:?}"
        );
    };
    eprintln!("after {frames} live frames: {seen:?}");
    assert_eq!(seen.name.as_deref(), Some("obama"), "{seen:?}");
    assert!(seen.distance.is_some_and(|d| d > 0.0), "{seen:?}");
    // The face's size is in the camera's pixels, its box in the JPEG's (half).
    assert!(seen.size_px + 2 >= seen.w.min(seen.h) * 2, "{seen:?}");
    // At most 4 frames a second.
    let rate = f64::from(frames) / started.elapsed().as_secs_f64();
    assert!(
        frames < 3 || rate < 4.5,
        "{frames} frames, {rate:.1} a second"
    );
    // Two people: the larger judged, the other only detected.
    let two = loop {
        let frame = view.next().unwrap().unwrap();
        if frame.meta.faces.len() == 2 {
            break frame.meta;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never two faces"
        );
    };
    assert_ne!(two.faces[0].verdict, Verdict::Detected, "{two:?}");
    assert_eq!(two.faces[1].verdict, Verdict::Detected, "{two:?}");
    assert_eq!(two.faces[1].name, None, "{two:?}");
    let st = door_client.status().unwrap();
    assert_eq!(st["live"]["viewers"], 2, "{st}");
    assert!(
        st["live"]["frames_encoded"].as_u64() >= Some(u64::from(frames)),
        "{st}"
    );
    second_stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(
        second.join().unwrap() > 0,
        "the second viewer got frames too"
    );
    drop(view);
    wait_for("the viewers gone", || {
        status(&socket)["live"]["viewers"] == 0
    });

    let r = door.join().unwrap();
    let refused = r.of(EventKind::OperatorRefused);
    assert_eq!(refused.len(), 1, "{:#?}", r.json_lines());
    let why = refused[0].reason.as_deref().unwrap();
    assert!(
        why.starts_with("wrong operator key (1 on this connection); control API, uid "),
        "{why}"
    );
    assert!(
        !why.contains("a-wrong-key"),
        "the key offered is never recorded: {why}"
    );
}

/// `people add`'s payload for the face of `photo`, as the console makes it: the embedding and
/// the crop the library's enrolment makes.
fn add_payload(pipeline: &mut facegate::Pipeline, name: &str, photo: &str) -> Vec<u8> {
    use base64::Engine;
    let new = facegate::access::enrolment::enrol_photo(pipeline, &fixture(photo)).unwrap();
    let crop = base64::engine::general_purpose::STANDARD.encode(new.crop.png());
    serde_json::to_vec(&serde_json::json!({
        "name": name,
        "id": null,
        "faces": [{"embedding": new.enrolment.embedding, "crop_png": crop}],
        "force": false,
        "from_pictures": [],
    }))
    .unwrap()
}

/// `[audit] faces`: a stranger's denial leaves a picture (0600, a PNG) that `picture SEQ` returns
/// and `pictures unknown` lists; `people add` enrols them (the door lets them in at once, and a
/// face already enrolled as someone else is refused); `people remove` takes them and their
/// pictures away. Each change audited with who asked.
#[test]
fn decision_pictures_and_gallery_changes_through_the_control_api() {
    use facegate::door::control_api::ask_with_payload;
    use facegate::door::control_api::client::DoorClient;
    use std::os::unix::fs::PermissionsExt;
    for f in ["obama.jpg", "obama2.jpg", "biden.jpg"] {
        fixture(f);
    }
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/manifest.toml");
    let models = facegate::vision::models::ModelSet::from_manifest(Path::new(manifest)).unwrap();
    let mut pipeline = facegate::Pipeline::new(&models, Some("dlib_resnet_v1_f32"), None).unwrap();
    let biden = add_payload(&mut pipeline, "Joe Biden", "biden.jpg");
    let obama_again = add_payload(&mut pipeline, "Not Obama", "obama2.jpg");

    let text = format!(
        "[config]\ncontrol = {{ socket = \"control.sock\" }}\nlock = {{ unlock_seconds = 1 }}\n\
         audit = {{ faces = true }}\n\
         [config.recognition]\nmodels = \"{manifest}\"\nembedder = \"dlib_resnet_v1_f32\"\n\n\
         [[enroll]]\nid = \"obama\"\nname = \"Barack Obama\"\nphotos = [\"obama.jpg\"]\n\n\
         [[step]]\nshow = \"blank\"\nseconds = 1.5\n\n\
         [[step]]\nshow = \"biden.jpg\"\nseconds = 3\n\n\
         [[step]]\nshow = \"blank\"\nseconds = 10\n\n\
         [[step]]\nshow = \"biden.jpg\"\nseconds = 4\n\n\
         [[step]]\nshow = \"blank\"\nseconds = 6\n"
    );
    let s = Scenario::parse(&text, Path::new("pictures.toml"), &fixtures_dir()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    let faces = dir.path().join("faces");
    let opts = RunOptions {
        realtime: true,
        workdir: Some(dir.path().to_owned()),
    };
    let door = std::thread::spawn(move || run_scenario(&s, &opts, Control::default()).unwrap());
    wait_for("the socket", || {
        socket.exists() && ask(&socket, "help").is_ok()
    });

    // The stranger is refused; their face is kept.
    let mut unknown = Vec::new();
    wait_for("a picture of the unknown face", || {
        unknown = DoorClient::connect(&socket, None)
            .and_then(|mut d| d.unknown_pictures())
            .unwrap();
        !unknown.is_empty()
    });
    let seq = unknown[0];
    let png = DoorClient::connect(&socket, None)
        .and_then(|mut d| d.picture(seq))
        .unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    let img = image::load_from_memory(&png).unwrap();
    assert_eq!(img.width(), facegate::people::crops::CROP_SIZE);
    let file = faces.join(format!("{seq}-unknown.png"));
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{}", file.display());
    assert_eq!(
        ask(&socket, "picture 999999").unwrap(),
        Err("no picture for 999999".into())
    );
    assert!(ask(&socket, "picture ../unknown").unwrap().is_err());

    // Obama's face under another name: refused as the duplicate it is.
    let refused = ask_with_payload(
        &socket,
        &format!("people add {} by admin", obama_again.len()),
        &obama_again,
    )
    .unwrap();
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.starts_with("duplicate: looks like obama (distance ")),
        "{refused:?}"
    );
    // The stranger enrolled: let in when they come back.
    let added = ask_with_payload(
        &socket,
        &format!("people add {} by admin", biden.len()),
        &biden,
    )
    .unwrap();
    assert_eq!(added, Ok("added joe-biden".into()));
    assert_eq!(status(&socket)["people"], 2);
    wait_for("Biden let in", || {
        status(&socket)["recent"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["event"] == "grant" && d["identity"] == "joe-biden")
    });
    let pictures_of = |id: &str| {
        std::fs::read_dir(&faces)
            .unwrap()
            .filter(|e| {
                let e = e.as_ref().unwrap();
                e.file_name()
                    .to_string_lossy()
                    .ends_with(&format!("-{id}.png"))
            })
            .count()
    };
    wait_for("the grant's picture", || pictures_of("joe-biden") > 0);

    // Obama's access policy and card, as the console sets them: saved, reloaded, audited; his
    // card is nobody else's.
    let policy =
        br#"{"enabled":false,"valid_until":"2030-01-01","windows":["mon-fri 07:00-19:00"]}"#;
    assert_eq!(
        ask_with_payload(
            &socket,
            &format!("people policy obama {} by admin", policy.len()),
            policy
        )
        .unwrap(),
        Ok("policy obama".into())
    );
    assert!(ask_with_payload(
        &socket,
        "people policy obama 17 by admin",
        b"{\"enabled\":\"yes\"}"
    )
    .unwrap()
    .is_err_and(|e| e.starts_with("bad request")));
    assert_eq!(
        ask(
            &socket,
            "people credential obama wiegand26 18 4660 by admin"
        )
        .unwrap(),
        Ok("credential obama".into())
    );
    let taken = ask(
        &socket,
        "people credential joe-biden wiegand26 18 4660 by admin",
    )
    .unwrap();
    assert!(
        taken
            .as_ref()
            .is_err_and(|e| e.contains("already belongs to obama")),
        "{taken:?}"
    );
    let gallery =
        facegate::people::gallery::Gallery::load_any_model(&dir.path().join("gallery.toml"))
            .unwrap()
            .unwrap();
    let obama = gallery.get("obama").unwrap();
    assert!(obama.policy.disabled);
    assert_eq!(obama.policy.windows.len(), 1);
    assert!(obama.credential.is_some());
    assert_eq!(gallery.get("joe-biden").unwrap().credential, None);

    // Removed: gone from the gallery with their pictures.
    assert_eq!(
        ask(&socket, "people remove joe-biden by admin").unwrap(),
        Ok("removed joe-biden".into())
    );
    assert_eq!(pictures_of("joe-biden"), 0);
    assert_eq!(status(&socket)["people"], 1);
    assert_eq!(
        ask(&socket, &format!("pictures dismiss {seq} by admin")).unwrap(),
        Ok("dismissed 1".into())
    );
    assert!(!file.exists());

    let r = door.join().unwrap();
    let lines = r.json_lines();
    let denied = r
        .events
        .iter()
        .find(|e| e.event == EventKind::Deny && e.picture == Some(true));
    assert!(denied.is_some(), "{lines:#?}");
    let granted = r.grants();
    assert!(
        granted
            .iter()
            .any(|g| g.identity.as_deref() == Some("joe-biden") && g.picture == Some(true)),
        "{lines:#?}"
    );
    for (kind, id) in [
        (EventKind::PersonAdded, Some("joe-biden")),
        (EventKind::PersonRemoved, Some("joe-biden")),
        (EventKind::PicturesDismissed, None),
        (EventKind::PolicyChanged, Some("obama")),
        (EventKind::CredentialChanged, Some("obama")),
    ] {
        let ev = r.of(kind);
        assert_eq!(ev.len(), 1, "{kind:?}: {lines:#?}");
        assert_eq!(ev[0].identity.as_deref(), id);
        assert!(
            ev[0].reason.as_deref().unwrap().starts_with("by admin;"),
            "{lines:#?}"
        );
    }
    let policy = &r.of(EventKind::PolicyChanged)[0];
    assert!(
        policy.reason.as_deref().unwrap().contains(
            "disabled; from -; until 2030-01-01T00:00:00; windows mon,tue,wed,thu,fri 07:00-19:00"
        ),
        "{policy:?}"
    );
    let card = &r.of(EventKind::CredentialChanged)[0];
    assert!(
        card.reason
            .as_deref()
            .unwrap()
            .contains("card set (wiegand26)")
            && !card.reason.as_deref().unwrap().contains("4660"),
        "never the card's number: {card:?}"
    );
    // The chain holds over the new lines, and the picture's seq is its denial's line.
    let log = dir.path().join("audit.jsonl");
    let verified = facegate::records::audit::verify(&log).unwrap();
    assert_eq!(
        verified.status(),
        facegate::records::audit::Status::Verified,
        "{verified:?}"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let line = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["seq"] == seq)
        .unwrap();
    assert_eq!(line["event"], "deny", "{line}");
    assert_eq!(line["picture"], true, "{line}");
}

/// In simulated time too (one thread, the frame buffer reused): each decision's line says
/// `"picture": true` and its picture is `faces/<seq>-<id>.png`; a picture past `faces_days`
/// left from before is swept at start.
#[test]
fn each_decision_keeps_its_picture_and_old_ones_are_swept_at_start() {
    for f in ["obama.jpg", "obama2.jpg", "biden.jpg"] {
        fixture(f);
    }
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/manifest.toml");
    let text = format!(
        "[config]\nlock = {{ unlock_seconds = 1 }}\naudit = {{ faces = true, faces_days = 30 }}\n\
         [config.recognition]\nmodels = \"{manifest}\"\nembedder = \"dlib_resnet_v1_f32\"\n\n\
         [[enroll]]\nid = \"obama\"\nname = \"Barack Obama\"\nphotos = [\"obama.jpg\"]\n\n\
         [[step]]\nshow = \"biden.jpg\"\nseconds = 3\n\n\
         [[step]]\nshow = \"blank\"\nseconds = 2\n\n\
         [[step]]\nshow = \"obama2.jpg\"\nseconds = 3\n\n\
         [[step]]\nshow = \"blank\"\nseconds = 2\n"
    );
    let s = Scenario::parse(&text, Path::new("sim.toml"), &fixtures_dir()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let faces = dir.path().join("faces");
    std::fs::create_dir(&faces).unwrap();
    let old = faces.join("1-someone.png");
    std::fs::write(&old, b"\x89PNG\r\n\x1a\nold").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(31 * 86_400))
        .unwrap();
    let opts = RunOptions {
        realtime: false,
        workdir: Some(dir.path().to_owned()),
    };
    let r = run_scenario(&s, &opts, Control::default()).unwrap();
    let lines = r.json_lines();
    assert!(!old.exists(), "swept at start");
    let text = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    let pictured: Vec<(u64, String)> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["picture"] == true)
        .map(|v| {
            (
                v["seq"].as_u64().unwrap(),
                v["identity"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(pictured.iter().any(|p| p.1 == "unknown"), "{lines:#?}");
    assert!(pictured.iter().any(|p| p.1 == "obama"), "{lines:#?}");
    for (seq, id) in &pictured {
        let png = std::fs::read(faces.join(format!("{seq}-{id}.png"))).unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    }
    let kept = std::fs::read_dir(&faces).unwrap().count();
    assert_eq!(kept, pictured.len(), "one picture per line that says so");
}
