//! The `facegate-sim` binary: exit statuses, a real SIGTERM sent to it while the door is
//! unlocked, and SIGKILLs while it rotates its audit log.

use facegate_e2e::fixture;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_facegate-sim");

fn scenario(dir: &std::path::Path, body: &str) -> std::path::PathBuf {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/manifest.toml");
    let text = format!(
        "[config.recognition]\nmodels = \"{manifest}\"\nembedder = \"dlib_resnet_v1_f32\"\n\n\
         [[enroll]]\nid = \"obama\"\nname = \"Barack Obama\"\nphotos = [\"{}\"]\n\n{body}",
        fixture("obama.jpg").display()
    );
    let path = dir.join("scenario.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn sigterm_during_an_unlock_leaves_the_relay_locked() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    let path = scenario(
        dir.path(),
        &format!(
            "[config.lock]\nunlock_seconds = 30\n\n[[step]]\nshow = \"{}\"\nseconds = 60\nexpect = \"unlock\"\n",
            fixture("obama2.jpg").display()
        ),
    );
    let mut child = Command::new(BIN)
        .args(["run", "--realtime", "--workdir"])
        .arg(&work)
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the grant in the audit log, then send a real SIGTERM.
    let audit = work.join("audit.jsonl");
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(&audit).unwrap_or_default();
        if text.contains("\"event\":\"grant\"") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no grant within 120 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = child.wait().unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{status:?}\n{out}\n{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let relay: Vec<&serde_json::Value> = lines.iter().filter(|l| l["event"] == "relay").collect();
    let states: Vec<&str> = relay.iter().map(|l| l["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["locked", "unlocked", "locked"], "{out}");
    // Locked at the signal, well before the 30 s unlock time ran out.
    let unlocked_at = relay[1]["t"].as_f64().unwrap();
    let locked_at = relay[2]["t"].as_f64().unwrap();
    assert!(locked_at - unlocked_at < 10.0, "{out}");
    let stop = lines.iter().find(|l| l["event"] == "stop").expect(&out);
    assert!(stop["reason"].as_str().unwrap().contains("door locked"));
    assert!(stop["t"].as_f64().unwrap() >= locked_at);
}

#[test]
fn a_failed_expectation_exits_1_and_a_bad_scenario_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = scenario(
        dir.path(),
        &format!(
            "[[step]]\nshow = \"{}\"\nseconds = 2\nexpect = \"unlock\"\n",
            fixture("biden.jpg").display()
        ),
    );
    let out = Command::new(BIN).arg("run").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("FAIL") && err.contains("expected an unlock"),
        "{err}"
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[step]]\nshow = \"x.jpg\"\n").unwrap();
    let out = Command::new(BIN).arg("run").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("step 1: show needs seconds"),
        "{err}"
    );
}

/// The real daemon (`facegate-sim` runs `daemon::run`) rotating its audit log every few lines is
/// SIGKILLed at random points, 12 times, each run continuing the same log; then a run ends
/// normally. Every event is then in the files exactly once: `seq` runs 1..N with no gap and no
/// repeat, no line is torn, the hash chain verifies across every file, and each run's `start`
/// is there once.
#[test]
fn the_daemon_killed_while_it_rotates_its_audit_log_keeps_every_event_exactly_once() {
    use facegate::records::audit::verify_files;
    use facegate::records::rotation::all_files;
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    let mut body = String::from(
        "fps = 10\n[config.lock]\nunlock_seconds = 0.5\n[config.audit]\nrotate_bytes = 500\n\n",
    );
    // An exit press every 3 frames: `exit` and `relock` lines as fast as the loop runs.
    for _ in 0..400 {
        body.push_str("[[step]]\nexit_button = true\n[[step]]\nshow = \"blank\"\nframes = 3\n");
    }
    let path = dir.path().join("busy.toml");
    std::fs::write(&path, body).unwrap();
    let audit = work.join("audit.jsonl");
    let lines_now = || -> usize {
        all_files(&audit)
            .iter()
            .map(|f| {
                std::fs::read_to_string(f)
                    .unwrap_or_default()
                    .lines()
                    .count()
            })
            .sum()
    };
    let rounds = 12u64;
    for round in 0..=rounds {
        let before = lines_now();
        let mut child = Command::new(BIN)
            .args(["run", "--quiet", "--workdir"])
            .arg(&work)
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        if round == rounds {
            // The last run ends by itself: its `stop` closes the log cleanly.
            assert!(child.wait().unwrap().success());
            break;
        }
        // Once this run is writing, a varying delay lands the kill at different points of
        // the write/rotate cycle.
        let started = Instant::now();
        while lines_now() < before + 3 {
            assert!(started.elapsed() < Duration::from_secs(120), "no events");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(round * 53 % 400));
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let files = all_files(&audit);
    assert!(
        files.len() as u64 > 2 * rounds,
        "rotated only {} times",
        files.len()
    );
    let (mut seqs, mut starts) = (Vec::new(), 0);
    for f in &files {
        for line in std::fs::read_to_string(f).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}: torn line {line:?}: {e}", f.display()));
            seqs.push(v["seq"].as_u64().unwrap());
            starts += usize::from(v["event"] == "start");
        }
    }
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    assert_eq!(starts as u64, rounds + 1);
    let r = verify_files(&files).unwrap();
    assert_eq!(r.broken, None);
    assert_eq!(r.chained, seqs.len() as u64);
}

/// A scenario shipped in `host-sim/scenarios/` runs from the checkout as docs/performance.md says: its
/// photos, not next to it, come from the fixture photos.
#[test]
fn a_shipped_scenario_runs_from_the_checkout_with_the_fixture_photos() {
    for f in ["obama.jpg", "obama2.jpg"] {
        fixture(f);
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/held_open.toml");
    let out = Command::new(BIN)
        .args(["run", "--quiet", path])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("ok    1 unlock(s) in all"), "{err}");
}
