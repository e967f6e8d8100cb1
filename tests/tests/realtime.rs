//! The door in real time: the real daemon with its capture and recognition threads against a
//! simulated camera that delivers frames at its own pace while recognition works. The relock
//! must not wait for a slow frame, and no frame older than one frame period may be judged.
//! Also the frozen-stream check (a camera repeating one frame), in simulated time.

use facegate::hal::LockState;
use facegate::records::audit::EventKind;
use facegate_e2e::{fixture, fixtures_dir};
use facegate_sim::{Report, Scenario};
use std::path::Path;
use std::time::Duration;

mod common;

/// Obama enrolled from one photo, with the f32 embedder (as in `door.rs`).
fn head() -> String {
    fixture("obama.jpg");
    head_with("")
}

/// `head()` with more `[config.recognition]` lines.
fn head_with(recognition: &str) -> String {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/manifest.toml");
    format!(
        "[config.recognition]\nmodels = \"{manifest}\"\nembedder = \"dlib_resnet_v1_f32\"\n{recognition}\n\
         [[enroll]]\nid = \"obama\"\nname = \"Barack Obama\"\nphotos = [\"obama.jpg\"]\n\n"
    )
}

fn run(body: &str, realtime: bool) -> Report {
    run_text(&format!("{}{body}", head()), realtime)
}

fn run_text(text: &str, realtime: bool) -> Report {
    let s = Scenario::parse(text, Path::new("test.toml"), &fixtures_dir()).unwrap();
    common::run_checked(&s, realtime)
}

/// Margin for what only wall time can measure (a hand-over between threads, a relock's wake-up):
/// a CI machine with every core busy (`scripts/timing_check` runs these tests under `stress-ng`)
/// may leave a runnable thread waiting for a few scheduler slices. The relock's own target is
/// 20 ms; it measures well under 5 ms on an idle or loaded machine.
const LOADED_MACHINE: Duration = Duration::from_millis(50);

/// Recognition (one worker) on a machine that takes 100 ms a frame, against a 30 fps camera: it
/// is busy the whole time the person stands there, whatever the speed of the machine running
/// the test (`recognition_ms`: the host's own work counts towards it, the rest is waited).
#[test]
fn relock_is_on_time_and_stale_frames_are_dropped_while_recognition_is_busy() {
    fixture("obama.jpg");
    let r = run_text(
        &format!(
            "recognition_ms = 100\n{}{}",
            head(),
            "[config.camera]\nfps = 30\n[config.lock]\nunlock_seconds = 1\n\
             [config.performance]\nworkers = 1\n\n\
         [[step]]\nshow = \"blank\"\nfps = 30\nseconds = 0.5\n\n\
         [[step]]\nshow = \"obama2.jpg\"\nfps = 30\nseconds = 4\nexpect = \"unlock\"\nperson = \"obama\"\n",
        ),
        true,
    );
    let s = &r.summary;
    report_modelled(&r);
    // Relock: the door locked again on time although frames were being recognised then.
    assert!(!r.of(EventKind::Relock).is_empty(), "{s:?}");
    assert!(
        s.relock_late.max < LOADED_MACHINE,
        "relock {:?} late; {s:?}",
        s.relock_late.max
    );
    let edges = &r.relay;
    let unlock = edges
        .iter()
        .position(|e| e.1 == LockState::Unlocked)
        .unwrap();
    let held = edges[unlock + 1].0 - edges[unlock].0;
    assert!(
        (held.as_secs_f64() - 1.0).abs() < LOADED_MACHINE.as_secs_f64(),
        "held {held:?}: {edges:?}"
    );
    // Freshest frame: frames that came while recognition was busy were dropped, never queued,
    // and none older than one frame period was recognised. At 100 ms a frame and 30 fps, at
    // most one frame in three can be judged.
    assert!(s.stale_dropped > 0, "{s:?}");
    assert!(3 * s.frames <= s.delivered + 3, "{s:?}");
    assert!(
        s.frame_age.max <= Duration::from_secs_f64(1.0 / 30.0),
        "a frame {:?} old was used; {s:?}",
        s.frame_age.max
    );
}

/// Recognition of one frame on one core of a Raspberry Pi 4: 150 ms, the middle of the
/// estimate for its f32 embedder (87-174 ms; int8 127-254 ms; see docs/performance.md).
const PI4_FRAME_MS: u32 = 150;

/// The employee in front of a 15 fps camera on a machine whose workers each take
/// [`PI4_FRAME_MS`] a frame, with `workers` recognition workers. What is modelled does not
/// depend on the machine running the test.
fn at_a_pi4s_cost(workers: u32) -> Report {
    fixture("obama.jpg");
    run_text(
        &format!(
            "fps = 15\nrecognition_ms = {PI4_FRAME_MS}\n{}[config.performance]\nworkers = {workers}\n{}",
            head(),
            "[config.camera]\nfps = 15\n[config.lock]\nunlock_seconds = 1\n\n\
             [[step]]\nshow = \"blank\"\nseconds = 0.5\n\n\
             [[step]]\nshow = \"obama2.jpg\"\nseconds = 5\nexpect = \"unlock\"\nperson = \"obama\"\n",
        ),
        true,
    )
}

/// Says whether the run modelled the machine it was asked to: on a loaded or slow host, this
/// host's own work can exceed the modelled cost on some frames. Recognition is then slower
/// still, which the assertions must (and do) survive: they are about a slow machine.
fn report_modelled(r: &Report) {
    if r.over_cost > 0 {
        eprintln!(
            "note: this machine's own work exceeded the modelled recognition time on {} of {} frames (loaded or slow host)",
            r.over_cost, r.summary.frames
        );
    }
}

/// At a Pi 4 core's speed with one worker, recognition cannot keep up with the camera, yet
/// the door still lets the employee in, decides only on fresh frames, and relocks on time.
#[test]
fn at_a_slow_machines_speed_the_door_unlocks_on_fresh_frames_and_relocks_on_time() {
    let r = at_a_pi4s_cost(1);
    let s = &r.summary;
    let period = Duration::from_secs_f64(1.0 / 15.0);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    eprintln!(
        "{PI4_FRAME_MS} ms a frame, 15 fps: recognition {}; frame age at start {}; at decision {}; relock late {}; first frame to unlock {:?}",
        s.recognition.describe(),
        s.frame_age.describe(),
        s.decision_lag.describe(),
        s.relock_late.describe(),
        r.unlock_latencies()
    );
    report_modelled(&r);
    // The slow machine really was slower than the camera: frames were dropped, not queued.
    assert!(s.recognition.percentile(50.0) > period, "{s:?}");
    assert!(s.stale_dropped > 0 && s.frames < s.delivered, "{s:?}");
    // No frame older than one period was started on, and none was decided on later than that
    // plus its recognition (plus the hand-over to the control loop on a loaded machine).
    assert!(s.frame_age.max <= period, "{s:?}");
    assert!(
        s.decision_lag.max <= period + s.recognition.max + LOADED_MACHINE,
        "a frame {:.1} ms old was decided on; {s:?}",
        ms(s.decision_lag.max)
    );
    // Relocked on time although recognition was busy.
    assert!(s.relock_late.count > 0, "{s:?}");
    assert!(
        s.relock_late.max < LOADED_MACHINE,
        "relock {:.1} ms late",
        ms(s.relock_late.max)
    );
}

/// Four workers (a Raspberry Pi's four cores, each at a Pi 4 core's cost): frames are
/// recognised side by side, so more of them are judged and the person is let in sooner than
/// with one worker, on frames no older than one period, decided in the order they were taken.
#[test]
fn four_workers_at_a_slow_machines_speed_judge_more_frames_and_let_in_sooner() {
    let one = at_a_pi4s_cost(1);
    let four = at_a_pi4s_cost(4);
    let (s1, s4) = (&one.summary, &four.summary);
    let period = Duration::from_secs_f64(1.0 / 15.0);
    let first = |r: &Report| r.unlock_latencies().first().copied().unwrap();
    eprintln!(
        "{PI4_FRAME_MS} ms a frame, 15 fps: 1 worker {} of {} frames, unlock after {:?}; 4 workers {} of {} frames, unlock after {:?}; decision lag {}",
        s1.frames,
        s1.delivered,
        first(&one),
        s4.frames,
        s4.delivered,
        first(&four),
        s4.decision_lag.describe()
    );
    assert_eq!((s1.workers, s4.workers), (1, 4));
    report_modelled(&one);
    report_modelled(&four);
    // One worker at 150 ms a frame judges at most one 15 fps frame in two (about 6.7 a second
    // of 15); four could judge 26 a second, so they judge most frames.
    assert!(2 * s1.frames <= s1.delivered + 2, "{s1:?}");
    assert!(
        s4.frames as f64 >= 1.5 * s1.frames as f64,
        "4 workers judged {} frames, 1 worker {}",
        s4.frames,
        s1.frames
    );
    assert!(
        first(&four) < first(&one),
        "{:?}",
        (first(&four), first(&one))
    );
    // Freshness holds per worker; putting answers back in order adds no wait beyond the
    // frame's own age and recognition (an earlier frame was started before this one came).
    assert!(s4.frame_age.max <= period, "{s4:?}");
    assert!(
        s4.decision_lag.max <= period + s4.recognition.max + LOADED_MACHINE,
        "{s4:?}"
    );
    assert!(s4.relock_late.max < LOADED_MACHINE, "{s4:?}");
}

/// The shipped arrivals scenario (docs/performance.md's table of workers at a Pi's speed) stays
/// valid:
/// in simulated time, every frame judged, the employee is let in on each of four arrivals at
/// three face sizes, within a second, and the stranger never.
#[test]
fn the_arrivals_scenario_lets_the_employee_in_four_times_and_never_the_stranger() {
    let r = common::run_shipped(
        "arrivals",
        &["obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg"],
    );
    assert_eq!(r.unlocks().len(), 4, "{:#?}", r.json_lines());
    assert!(r
        .grants()
        .iter()
        .all(|g| g.identity.as_deref() == Some("obama")));
    for d in r.unlock_latencies() {
        assert!(d < Duration::from_secs(1), "{d:?}");
    }
}

#[test]
fn a_frozen_stream_is_reported_and_recovered_from() {
    let r = run(
        "[[step]]\nshow = \"blank\"\nseconds = 1\n\n[[step]]\nfreeze = 6\n\n\
         [[step]]\nshow = \"obama2.jpg\"\nseconds = 2\nexpect = \"unlock\"\nperson = \"obama\"\n",
        false,
    );
    let errors = r.of(EventKind::CameraError);
    assert_eq!(errors.len(), 1, "{:#?}", r.json_lines());
    let reason = errors[0].reason.as_deref().unwrap();
    assert!(reason.contains("frozen"), "{reason}");
    // Noticed about 3 s into the freeze (1 s of frames before it).
    assert!((errors[0].t - 4.0).abs() < 0.3, "{}", errors[0].t);
    assert_eq!(r.of(EventKind::CameraRecovered).len(), 1);
}
