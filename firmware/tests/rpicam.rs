//! The CSI camera source against a stand-in for `rpicam-vid`: a shell script that writes real
//! JPEGs (made here) to stdout, dies, hangs, or starts children of its own.

use facegate::config::{CameraConfig, CameraSource};
use facegate::drivers::rpicam::RpicamCamera;
use facegate::hal::{CameraErrorKind, FrameSource};
use image::{DynamicImage, ImageFormat, RgbImage};
use std::path::Path;
use std::time::{Duration, Instant};

/// A directory with two JPEG frames (`a.jpg`, `b.jpg`, 64x48) and `cam.sh` running `body`.
fn stand_in(body: &str) -> (tempfile::TempDir, CameraConfig) {
    let dir = tempfile::tempdir().unwrap();
    for (name, shade) in [("a.jpg", 40u8), ("b.jpg", 200u8)] {
        let img = RgbImage::from_fn(64, 48, |x, y| {
            image::Rgb([shade, (x * 4) as u8, (y * 5) as u8])
        });
        let mut bytes = std::io::Cursor::new(Vec::new());
        DynamicImage::ImageRgb8(img)
            .write_to(&mut bytes, ImageFormat::Jpeg)
            .unwrap();
        std::fs::write(dir.path().join(name), bytes.into_inner()).unwrap();
    }
    let script = dir.path().join("cam.sh");
    std::fs::write(
        &script,
        format!(
            "cd '{}'\necho \"$@\" > args\n{body}\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let config = CameraConfig {
        source: CameraSource::Rpicam,
        rpicam_command: vec!["sh".into(), script.display().to_string()],
        width: 64,
        height: 48,
        timeout_seconds: 0.5,
        ..CameraConfig::default()
    };
    (dir, config)
}

fn gone(pid: &str) -> bool {
    !Path::new("/proc").join(pid.trim()).exists()
}

/// Gone, or a zombie waiting for its parent (init, for an orphan) to reap it.
fn dead(pid: &str) -> bool {
    let stat = std::fs::read_to_string(Path::new("/proc").join(pid.trim()).join("stat"));
    stat.map_or(true, |s| {
        s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

#[test]
fn frames_arrive_decoded_and_garbage_between_them_is_skipped() {
    // Garbage with stray markers (EOI, a bare SOI) between the frames.
    let (dir, config) = stand_in(
        "while true; do cat a.jpg; printf 'xx\\377\\331yy\\377\\330zz'; cat b.jpg; sleep 0.02; done",
    );
    let mut cam = RpicamCamera::open(&config).unwrap();
    let mut frame = RgbImage::new(1, 1);
    let mut shades = Vec::new();
    let mut last_seq = 0;
    for _ in 0..12 {
        cam.next_frame(&mut frame).unwrap();
        assert_eq!(frame.dimensions(), (64, 48));
        shades.push(frame.get_pixel(0, 0)[0]);
        let seq = cam.sequence().unwrap();
        assert!(
            seq > last_seq,
            "the sequence advances: {seq} after {last_seq}"
        );
        last_seq = seq;
    }
    // Both frames come through, each decoded to its own colour.
    assert!(shades.iter().any(|&s| s.abs_diff(40) < 8), "{shades:?}");
    assert!(shades.iter().any(|&s| s.abs_diff(200) < 8), "{shades:?}");
    let args = std::fs::read_to_string(dir.path().join("args")).unwrap();
    assert_eq!(
        args.trim(),
        "-t 0 -n --codec mjpeg --width 64 --height 48 --framerate 15 -o -"
    );
}

#[test]
fn only_the_newest_frame_is_kept() {
    // Two frames at once, then nothing: a slow reader gets the second, never a stale queue.
    let (_dir, config) = stand_in("cat a.jpg b.jpg\nexec sleep 60");
    let mut cam = RpicamCamera::open(&config).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut frame = RgbImage::new(1, 1);
    cam.next_frame(&mut frame).unwrap();
    assert!(
        frame.get_pixel(0, 0)[0].abs_diff(200) < 8,
        "{:?}",
        frame.get_pixel(0, 0)
    );
    assert_eq!(cam.sequence(), Some(2));
    let e = cam.next_frame(&mut frame).unwrap_err();
    assert_eq!(e.kind, CameraErrorKind::Timeout, "{e}");
}

#[test]
fn a_dying_process_is_disconnected_with_its_status_and_reopen_restarts_it() {
    let (_dir, config) = stand_in("cat a.jpg\necho 'sensor lost' >&2\nexit 3");
    let mut cam = RpicamCamera::open(&config).unwrap();
    let mut frame = RgbImage::new(1, 1);
    cam.next_frame(&mut frame).unwrap();
    let e = cam.next_frame(&mut frame).unwrap_err();
    assert_eq!(e.kind, CameraErrorKind::Disconnected, "{e}");
    assert!(e.message.contains("exit status: 3"), "{e}");
    assert!(e.message.contains("sensor lost"), "{e}");
    cam.reopen().unwrap();
    cam.next_frame(&mut frame).unwrap();
    assert_eq!(frame.dimensions(), (64, 48));
}

#[test]
fn a_hanging_process_times_out_and_is_killed() {
    let (dir, config) = stand_in("echo $$ > pid\nexec sleep 60");
    let mut cam = RpicamCamera::open(&config).unwrap();
    let mut frame = RgbImage::new(1, 1);
    let start = Instant::now();
    let e = cam.next_frame(&mut frame).unwrap_err();
    let waited = start.elapsed();
    assert_eq!(e.kind, CameraErrorKind::Timeout, "{e}");
    assert!(waited >= Duration::from_millis(450), "{waited:?}");
    assert!(waited < Duration::from_millis(1500), "{waited:?}");
    let pid = std::fs::read_to_string(dir.path().join("pid")).unwrap();
    // The re-open kills the hung child (it ignores nothing, but sleeps) and reaps it.
    cam.reopen().unwrap();
    assert!(gone(&pid), "the hung child {pid} is still there");
}

#[test]
fn a_missing_program_is_disconnected() {
    let config = CameraConfig {
        source: CameraSource::Rpicam,
        rpicam_command: vec!["/nonexistent/rpicam-vid".into()],
        ..CameraConfig::default()
    };
    let e = RpicamCamera::open(&config).unwrap_err();
    assert_eq!(e.kind, CameraErrorKind::Disconnected, "{e}");
    assert!(e.message.contains("/nonexistent/rpicam-vid"), "{e}");
    // The daemon's form: starts later, reports Disconnected until a re-open works.
    let mut cam = RpicamCamera::open_or_later(&config);
    let e = cam.next_frame(&mut RgbImage::new(1, 1)).unwrap_err();
    assert_eq!(e.kind, CameraErrorKind::Disconnected, "{e}");
}

#[test]
fn drop_leaves_no_process_behind() {
    // A wrapper that ignores SIGTERM and has a child of its own: both must go.
    let (dir, config) = stand_in(
        "trap '' TERM\necho $$ > pid\nsleep 60 &\necho $! > child\nwhile true; do cat a.jpg; sleep 0.05; done",
    );
    let mut cam = RpicamCamera::open(&config).unwrap();
    let mut frame = RgbImage::new(1, 1);
    cam.next_frame(&mut frame).unwrap();
    let pid = std::fs::read_to_string(dir.path().join("pid")).unwrap();
    let child = std::fs::read_to_string(dir.path().join("child")).unwrap();
    assert!(!gone(&pid) && !gone(&child));
    let start = Instant::now();
    drop(cam);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    // Our child is reaped by us at once (no zombie); its orphan is reaped by init soon.
    assert!(gone(&pid), "the child {pid} is still there (a zombie?)");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !dead(&child) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(dead(&child), "the grandchild {child} survived");
}
