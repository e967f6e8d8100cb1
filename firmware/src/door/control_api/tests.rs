//! The control API's protocol and its bounds: what a client can ask, and what it cannot do to
//! the door's process (long lines, junk, names that would forge a log line, too many clients).

use super::*;

#[test]
fn the_requests_parse_and_who_asks_is_required() {
    assert_eq!(parse(b"status"), Ok(Command::Status));
    assert_eq!(parse(b"  events "), Ok(Command::Events));
    assert_eq!(
        parse(b"unlock by alice.smith@hq"),
        Ok(Command::Unlock {
            by: "alice.smith@hq".into()
        })
    );
    assert_eq!(
        parse(b"lockdown off by guard-2"),
        Ok(Command::Lockdown {
            on: false,
            by: "guard-2".into()
        })
    );
    assert_eq!(
        parse(b"reload by root"),
        Ok(Command::Reload { by: "root".into() })
    );
    assert!(parse(b"unlock").unwrap_err().contains("by NAME"));
    assert!(parse(b"lockdown maybe by x").is_err());
    assert!(parse(b"").unwrap_err().contains("empty"));
}

/// What goes into the audit log or back to the client is bounded and escaped.
#[test]
fn names_that_could_forge_a_log_line_and_junk_are_refused_without_echoing_them() {
    for bad in [
        &b"unlock by a\x1b[31mred"[..],
        b"unlock by \"quoted\"",
        b"unlock by name with spaces",
        b"unlock by a/b",
        b"unlock by x{\"event\":\"grant\"}",
    ] {
        assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
    }
    let long_name = format!("unlock by {}", "a".repeat(65));
    assert!(parse(long_name.as_bytes()).is_err());
    assert_eq!(parse(&[0xff, 0xfe]), Err("not UTF-8".into()));
    let e = parse("\u{1b}[2Jwipe the screen and more and more and more".as_bytes()).unwrap_err();
    assert!(!e.contains('\u{1b}'), "{e}");
    assert!(e.len() < 200, "{e}");
    let too_long = vec![b'x'; MAX_LINE + 1];
    assert!(parse(&too_long).unwrap_err().contains("too long"));
}

/// A stand-in for the door's loop: answers every request, names who asked.
fn door_loop(rx: Receiver<ApiRequest>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u32> {
    std::thread::spawn(move || {
        let mut served = 0;
        while !stop.load(Ordering::SeqCst) {
            let Ok(req) = rx.recv_timeout(STEP) else {
                continue;
            };
            served += 1;
            let answer = match req.command {
                Command::Events => {
                    let (tx, events) = mpsc::sync_channel(EVENT_BACKLOG);
                    tx.send("{\"event\":\"relock\"}".into()).unwrap();
                    Answer::Events(events)
                }
                Command::Unlock { by } => {
                    Answer::Ok(format!("opened for {by} ({})", req.peer.describe()))
                }
                Command::View => {
                    let slot = Arc::new(ViewerSlot::new(Arc::default()));
                    slot.shots.put(test_shot());
                    Answer::View(slot)
                }
                Command::Snapshot => Answer::Snapshot(Picture(Arc::clone(&test_shot().image))),
                c => Answer::Err(format!("{c:?}")),
            };
            let _ = req.reply.send(answer);
        }
        served
    })
}

/// A live frame as the loop would hand it: 320 x 240 with one face.
fn test_shot() -> live::LiveShot {
    live::LiveShot {
        seq: 1,
        at_ms: 1_700_000_000_000,
        image: Arc::new(image::RgbImage::from_pixel(
            320,
            240,
            image::Rgb([90, 120, 150]),
        )),
        faces: vec![live::LiveFace {
            bbox: crate::vision::detect::BBox {
                x: 100.0,
                y: 60.0,
                w: 80.0,
                h: 96.0,
            },
            verdict: live::Verdict::LetIn,
            name: Some("ada".into()),
            distance: Some(0.3),
        }],
        encoded: Arc::default(),
    }
}

type TestServer = (
    tempfile::TempDir,
    PathBuf,
    Arc<AtomicBool>,
    Server,
    std::thread::JoinHandle<u32>,
);

fn server() -> TestServer {
    server_keyed(None)
}

/// A server whose operator key is `key`.
fn server_keyed(key: Option<&str>) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control.sock");
    let key = key.map(|k| OperatorKey::parse(k).unwrap());
    let api = ControlApi::bind(&path).unwrap().with_operator_key(key);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660, "only the daemon's user and group may connect");
    let stop = Arc::new(AtomicBool::new(false));
    let (srv, rx) = api.serve(Arc::clone(&stop));
    let looped = door_loop(rx, Arc::clone(&stop));
    (dir, path, stop, srv, looped)
}

#[test]
fn a_client_asks_and_the_loop_answers_with_who_connected() {
    let (_dir, path, stop, srv, looped) = server();
    let answer = ask(&path, "unlock by alice").unwrap().unwrap();
    assert!(
        answer.starts_with("opened for alice (control API, uid "),
        "{answer}"
    );
    let mut got = Vec::new();
    follow_events(&path, |l| {
        got.push(l.to_owned());
        false
    })
    .unwrap();
    assert_eq!(got, vec!["{\"event\":\"relock\"}".to_owned()]);
    // A bad request is answered; the connection stays usable.
    assert!(ask(&path, "open sesame")
        .unwrap()
        .unwrap_err()
        .contains("unknown command"));
    stop.store(true, Ordering::SeqCst);
    drop(srv);
    assert_eq!(
        looped.join().unwrap(),
        2,
        "the bad request never reached the loop"
    );
    assert!(!path.exists(), "the socket is removed when the API goes");
}

#[test]
fn a_line_longer_than_the_bound_is_answered_and_the_connection_closed() {
    let (_dir, path, stop, srv, looped) = server();
    let mut s = UnixStream::connect(&path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // 64 KiB without a newline: the server stops reading at MAX_LINE.
    let _ = s.write_all(&vec![b'a'; 64 * 1024]);
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("ERR line too long"), "{answer}");
    stop.store(true, Ordering::SeqCst);
    drop(srv);
    assert_eq!(looped.join().unwrap(), 0);
}

#[test]
fn more_clients_than_the_bound_are_turned_away() {
    let (_dir, path, stop, srv, looped) = server();
    let held: Vec<UnixStream> = (0..MAX_CLIENTS)
        .map(|_| UnixStream::connect(&path).unwrap())
        .collect();
    // Let the server accept them all.
    let deadline = Instant::now() + Duration::from_secs(10);
    let answer = loop {
        let mut extra = UnixStream::connect(&path).unwrap();
        extra
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        extra.write_all(b"status\n").unwrap();
        let mut answer = String::new();
        let _ = io::BufReader::new(extra).read_line(&mut answer);
        if answer.starts_with("ERR busy") || Instant::now() > deadline {
            break answer;
        }
    };
    assert!(answer.starts_with("ERR busy"), "{answer}");
    drop(held);
    stop.store(true, Ordering::SeqCst);
    drop(srv);
    looped.join().unwrap();
}

#[test]
fn binding_over_a_file_that_is_not_a_socket_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control.sock");
    std::fs::write(&path, "not a socket").unwrap();
    let e = ControlApi::bind(&path).unwrap_err();
    assert!(e.to_string().contains("not a socket"), "{e}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a socket");
}

#[test]
fn site_requests_parse_and_the_server_made_ones_never_do() {
    let env = format!(
        "site command {{\"kind\":\"command\",\"x\":\"{}\"}}",
        "a".repeat(1000)
    );
    assert!(matches!(parse(env.as_bytes()), Ok(Command::SiteCommand(b)) if b.len() > 1000));
    let huge = format!("site command {}", "a".repeat(MAX_SITE_LINE));
    assert!(parse(huge.as_bytes()).unwrap_err().contains("too long"));
    assert_eq!(parse(b"site gallery 1234"), Ok(Command::SiteGallery(1234)));
    assert!(parse(b"site gallery lots").is_err());
    assert_eq!(
        parse(b"site refused gallery bad_signature 7"),
        Ok(Command::SiteRefused {
            gallery: true,
            why: Refusal::BadSignature,
            count: 7
        })
    );
    // A refusal is a word of the vocabulary: free text never reaches the audit log this way.
    let e = parse(b"site refused command \x1b[31mforged 1").unwrap_err();
    assert!(!e.contains('\u{1b}'), "{e}");
    assert!(parse(b"site refused command made_up 1").is_err());
    assert_eq!(
        parse(b"site reset by ada"),
        Ok(Command::SiteReset { by: "ada".into() })
    );
    assert_eq!(parse(b"site picture 42"), Ok(Command::SitePicture(42)));
    for bad in [
        &b"site picture"[..],
        b"site picture ../faces/1-obama",
        b"site picture 1 2",
        b"site picture -1",
    ] {
        assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
    }
    for word in ["checked", "site_startup", "site startup", "site was_reset"] {
        let c = parse(word.as_bytes());
        assert!(
            !matches!(
                c,
                Ok(Command::Checked { .. }
                    | Command::SiteStartup(_)
                    | Command::SiteWasReset { .. })
            ),
            "{c:?}"
        );
    }
}

#[test]
fn only_root_and_the_doors_user_may_unlock_lock_down_reload_or_reset() {
    let (own, other) = (995, 65534);
    assert_eq!(Role::of(0, own), Role::Admin);
    assert_eq!(Role::of(own, own), Role::Admin);
    assert_eq!(Role::of(other, own), Role::Reader);
    let admin_only = [
        Command::Unlock { by: "x".into() },
        Command::Lockdown {
            on: false,
            by: "x".into(),
        },
        Command::Reload { by: "x".into() },
        Command::SiteReset { by: "x".into() },
    ];
    for c in &admin_only {
        assert!(!c.allowed(Role::Reader), "{c:?}");
        assert!(c.allowed(Role::Admin), "{c:?}");
    }
    for c in [
        Command::Status,
        Command::Events,
        Command::Help,
        Command::SiteCommand(Vec::new()),
        Command::SiteGallery(10),
        Command::SitePicture(1),
        Command::Operator(Offered(b"anything".to_vec())),
    ] {
        assert!(c.allowed(Role::Reader), "{c:?}");
    }
    // The site link's one picture request is judged by the loop; any picture by SEQ and the
    // list of unknown faces stay the admin's.
    for c in [
        Command::View,
        Command::Snapshot,
        Command::Picture(1),
        Command::PicturesUnknown,
    ] {
        assert!(!c.allowed(Role::Reader), "{c:?}");
        assert!(c.allowed(Role::Admin), "{c:?}");
    }
}

/// The child of the next test: run as another user, it asks what only the door's user may.
#[test]
#[ignore = "run by another_users_unlock_is_refused_and_never_reaches_the_loop"]
fn reader_child() {
    let socket = PathBuf::from(std::env::var_os("FACEGATE_TEST_SOCKET").unwrap());
    for line in [
        "unlock by mallory",
        "lockdown off by mallory",
        "people credential ada wiegand26 1 2 by mallory",
        "people credential ada clear by mallory",
        "status",
        "picture 1",
        "site picture 1",
    ] {
        let answer = ask(&socket, line).unwrap();
        println!("ANSWER {line} -> {answer:?}");
    }
    // A refused payload request: the connection ends (its bytes are never read as requests).
    let answer = ask_with_payload(&socket, "people policy ada 2 by mallory", b"{}").unwrap();
    println!("ANSWER people policy -> {answer:?}");
}

#[test]
fn another_users_unlock_is_refused_and_never_reaches_the_loop() {
    let setpriv = Path::new("/usr/bin/setpriv");
    if !rustix::process::geteuid().is_root() || !setpriv.exists() {
        eprintln!("SKIPPED: needs root and setpriv to connect as another user");
        return;
    }
    let (dir, path, stop, srv, looped) = server();
    // Let the other user reach the socket (the unit's group does this in service).
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = std::process::Command::new(setpriv)
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "door::control_api::tests::reader_child",
            "--ignored",
            "--nocapture",
        ])
        .env("FACEGATE_TEST_SOCKET", &path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answers: Vec<&str> = text.lines().filter(|l| l.starts_with("ANSWER")).collect();
    assert_eq!(answers.len(), 8, "{text}");
    for i in [0, 1, 2, 3, 7] {
        assert!(answers[i].contains("Err(\"not allowed"), "{}", answers[i]);
    }
    // `status` reaches the stand-in loop (which answers everything but unlock/events with Err).
    assert!(answers[4].contains("Status"), "{}", answers[4]);
    // Any decision picture by SEQ is the admin's; the site link's `site picture` goes to the
    // loop, which judges it (`site_picture`).
    assert!(answers[5].contains("Err(\"not allowed"), "{}", answers[5]);
    assert!(answers[6].contains("SitePicture(1)"), "{}", answers[6]);
    stop.store(true, Ordering::SeqCst);
    drop(srv);
    assert_eq!(
        looped.join().unwrap(),
        2,
        "only the status and the site picture reached the loop"
    );
}

const KEY: &str = "k3y-0f-the-operator-who-runs-the-console";

#[test]
fn the_operator_key_parses_is_checked_and_never_shown() {
    assert_eq!(
        parse(format!("operator {KEY}").as_bytes()),
        Ok(Command::Operator(Offered(KEY.as_bytes().to_vec())))
    );
    let shown = format!("{:?}", parse(format!("operator {KEY}").as_bytes()));
    assert!(!shown.contains(KEY), "{shown}");
    // Two words (a key with a space typed into it): refused without echoing either.
    let e = parse(b"operator secret-half other-half").unwrap_err();
    assert!(!e.contains("secret"), "{e}");
    assert!(parse(b"operator").is_err());
    assert_eq!(parse(b"view"), Ok(Command::View));
    assert_eq!(parse(b"snapshot"), Ok(Command::Snapshot));
    assert!(parse(b"operator_refused 1").is_err());

    let key = OperatorKey::parse(&format!("  {KEY}\n")).unwrap();
    assert!(key.matches(KEY.as_bytes()));
    assert!(!key.matches(&KEY.as_bytes()[..KEY.len() - 1]));
    assert!(!key.matches(format!("{KEY}x").as_bytes()));
    assert!(!key.matches(b""));
    assert!(!format!("{key:?}").contains(KEY));
    assert!(OperatorKey::parse("short")
        .unwrap_err()
        .contains("at least 32"));
    assert!(OperatorKey::parse(&format!("{KEY} {KEY}")).is_err());
    assert!(OperatorKey::parse(&format!("{KEY}\u{7}")).is_err());
    assert!(OperatorKey::parse(&"a".repeat(operator::MAX_KEY + 1)).is_err());

    // The config's file: none configured, missing, too short, good.
    let dir = tempfile::tempdir().unwrap();
    let mut config = ControlConfig::default();
    assert!(config.operator_key().unwrap().is_none());
    config.operator_key = dir.path().join("console.key");
    let e = config.operator_key().unwrap_err().to_string();
    assert!(e.contains("console.key"), "{e}");
    std::fs::write(&config.operator_key, "tooshort\n").unwrap();
    let e = config.operator_key().unwrap_err().to_string();
    assert!(e.contains("at least 32") && !e.contains("tooshort"), "{e}");
    std::fs::write(&config.operator_key, format!("{KEY}\n")).unwrap();
    assert_eq!(config.operator_key().unwrap(), Some(key));
}

#[test]
fn a_wrong_operator_key_is_refused_and_the_third_closes_the_connection() {
    let (_dir, path, stop, srv, looped) = server_keyed(Some(KEY));
    let mut s = UnixStream::connect(&path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = io::BufReader::new(s.try_clone().unwrap());
    for n in 1..=operator::WRONG_KEYS {
        s.write_all(format!("operator {KEY}{n}\n").as_bytes())
            .unwrap();
        let mut answer = String::new();
        reader.read_line(&mut answer).unwrap();
        assert_eq!(answer, "ERR not allowed: wrong operator key\n", "key {n}");
    }
    // Closed: nothing more is read, nothing more answered.
    let _ = s.write_all(b"status\n");
    let mut rest = String::new();
    let _ = reader.read_to_string(&mut rest);
    assert_eq!(rest, "");
    // A wrong key does not make a new connection an admin either; the right one does.
    let e = client::DoorClient::connect(&path, Some("not-the-key-not-the-key-not-the-key"))
        .unwrap_err();
    assert!(e.to_string().contains("wrong operator key"), "{e}");
    let mut door = client::DoorClient::connect(&path, Some(KEY)).unwrap();
    let answer = door.request("unlock by console-admin").unwrap();
    assert!(
        answer.starts_with("opened for console-admin (control API, operator key, uid "),
        "{answer}"
    );
    stop.store(true, Ordering::SeqCst);
    drop(srv);
    // Each wrong key was handed to the loop to be recorded, and the unlock.
    assert_eq!(looped.join().unwrap(), 4 + 1);
}

#[test]
fn a_door_without_an_operator_key_takes_none() {
    let (_dir, path, stop, srv, looped) = server();
    let e = client::DoorClient::connect(&path, Some(KEY)).unwrap_err();
    assert!(e.to_string().contains("wrong operator key"), "{e}");
    stop.store(true, Ordering::SeqCst);
    drop(srv);
    looped.join().unwrap();
}

#[test]
fn the_client_gets_live_frames_and_snapshots_that_decode() {
    let (_dir, path, stop, srv, looped) = server_keyed(Some(KEY));
    let mut door = client::DoorClient::connect(&path, Some(KEY)).unwrap();
    let jpeg = door.snapshot().unwrap();
    let img = image::load_from_memory(&jpeg).unwrap();
    assert_eq!((img.width(), img.height()), (320, 240));
    let mut frames = door.view().unwrap();
    let frame = frames.next().unwrap().unwrap();
    assert_eq!(frame.meta.jpeg, frame.jpeg.len());
    let img = image::load_from_memory(&frame.jpeg).unwrap();
    assert_eq!(
        (img.width(), img.height()),
        (frame.meta.width, frame.meta.height)
    );
    assert_eq!(frame.meta.faces[0].verdict, live::Verdict::LetIn);
    assert_eq!(frame.meta.faces[0].name.as_deref(), Some("ada"));
    drop(frames);
    stop.store(true, Ordering::SeqCst);
    drop(srv);
    looped.join().unwrap();
}

/// A door that announces more than the client takes: refused before reading.
#[test]
fn the_client_refuses_lengths_over_its_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("liar.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let liar = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut r = io::BufReader::new(s.try_clone().unwrap());
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        s.write_all(format!("OK snapshot {}\n", client::MAX_PAYLOAD + 1).as_bytes())
            .unwrap();
        line.clear();
        r.read_line(&mut line).unwrap();
        s.write_all(b"OK view\nframe {\"seq\":1,\"at_ms\":0,\"width\":1,\"height\":1,\"jpeg\":999999999,\"faces\":[]}\n")
            .unwrap();
    });
    let mut door = client::DoorClient::connect(&path, None).unwrap();
    let e = door.snapshot().unwrap_err();
    assert!(matches!(e, client::ClientError::Protocol(_)), "{e}");
    let mut frames = door.view().unwrap();
    let e = frames.next().unwrap().unwrap_err();
    assert!(e.to_string().contains("more than"), "{e}");
    assert!(frames.next().is_none(), "the view ends after an error");
    liar.join().unwrap();
}

/// The child of the next test: run as another user, it asks for what needs an admin, then
/// sends the operator key and asks again.
#[test]
#[ignore = "run by a_reader_needs_the_operator_key_for_the_live_view_and_snapshots"]
fn viewer_child() {
    let socket = PathBuf::from(std::env::var_os("FACEGATE_TEST_SOCKET").unwrap());
    for line in ["view", "snapshot"] {
        let answer = ask(&socket, line).unwrap();
        println!("ANSWER {line} -> {answer:?}");
    }
    let mut door = client::DoorClient::connect(&socket, Some(KEY)).unwrap();
    let jpeg = door.snapshot().unwrap();
    println!("SNAPSHOT {}", jpeg.len());
}

#[test]
fn a_reader_needs_the_operator_key_for_the_live_view_and_snapshots() {
    let setpriv = Path::new("/usr/bin/setpriv");
    if !rustix::process::geteuid().is_root() || !setpriv.exists() {
        eprintln!("SKIPPED: needs root and setpriv to connect as another user");
        return;
    }
    let (dir, path, stop, srv, looped) = server_keyed(Some(KEY));
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = std::process::Command::new(setpriv)
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "door::control_api::tests::viewer_child",
            "--ignored",
            "--nocapture",
        ])
        .env("FACEGATE_TEST_SOCKET", &path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answers: Vec<&str> = text.lines().filter(|l| l.starts_with("ANSWER")).collect();
    assert_eq!(answers.len(), 2, "{text}");
    for a in answers {
        assert!(a.contains("Err(\"not allowed"), "{a}");
    }
    assert!(text.contains("SNAPSHOT "), "{text}");
    stop.store(true, Ordering::SeqCst);
    drop(srv);
    assert_eq!(
        looped.join().unwrap(),
        1,
        "only the keyed snapshot reached the loop"
    );
}
