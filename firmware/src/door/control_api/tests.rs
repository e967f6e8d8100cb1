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
                c => Answer::Err(format!("{c:?}")),
            };
            let _ = req.reply.send(answer);
        }
        served
    })
}

fn server() -> (
    tempfile::TempDir,
    PathBuf,
    Arc<AtomicBool>,
    Server,
    std::thread::JoinHandle<u32>,
) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control.sock");
    let api = ControlApi::bind(&path).unwrap();
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
    ] {
        assert!(c.allowed(Role::Reader), "{c:?}");
    }
}

/// The child of the next test: run as another user, it asks what only the door's user may.
#[test]
#[ignore = "run by another_users_unlock_is_refused_and_never_reaches_the_loop"]
fn reader_child() {
    let socket = PathBuf::from(std::env::var_os("FACEGATE_TEST_SOCKET").unwrap());
    for line in ["unlock by mallory", "lockdown off by mallory", "status"] {
        let answer = ask(&socket, line).unwrap();
        println!("ANSWER {line} -> {answer:?}");
    }
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
    assert_eq!(answers.len(), 3, "{text}");
    assert!(answers[0].contains("Err(\"not allowed"), "{}", answers[0]);
    assert!(answers[1].contains("Err(\"not allowed"), "{}", answers[1]);
    // `status` reaches the stand-in loop (which answers everything but unlock/events with Err).
    assert!(answers[2].contains("Status"), "{}", answers[2]);
    stop.store(true, Ordering::SeqCst);
    drop(srv);
    assert_eq!(
        looped.join().unwrap(),
        1,
        "only the status reached the loop"
    );
}
