//! The `facegated` binary at its edges: config errors, `--check`, and absent hardware (this
//! machine has no GPIO controller and no camera), each with a clear message and a failure exit.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_facegated");

fn facegated(config: &str) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let config = config.replace("$DIR", &dir.path().display().to_string());
    std::fs::write(&path, config).unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn config_errors_name_the_file_and_the_key() {
    let (code, _, err) = facegated("[lock]\ngpio = 17\nunlock_secs = 3\n");
    assert_eq!(code, Some(1));
    assert!(
        err.contains("config.toml") && err.contains("unlock_secs"),
        "{err}"
    );
    let (code, _, err) = facegated("[recognition]\nframes = 1\n");
    assert_eq!(code, Some(1));
    assert!(
        err.contains("recognition.frames") && err.contains("never unlock"),
        "{err}"
    );
}

#[test]
fn check_validates_the_config_and_loads_the_models() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, include_str!("../../systemd/config.toml")).unwrap();
    let out = Command::new(BIN)
        .args(["--check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("config OK") && stdout.contains("dlib_resnet_v1_int8"),
        "{stdout}"
    );
}

#[test]
fn a_missing_config_file_is_named() {
    let out = Command::new(BIN)
        .args(["--config", "/nonexistent/facegate.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/facegate.toml"));
}

#[test]
fn absent_hardware_fails_cleanly() {
    if std::path::Path::new("/dev/gpiomem").exists()
        || std::path::Path::new("/dev/gpiomem0").exists()
    {
        return; // On a Pi this test would drive a real pin.
    }
    let (code, _, err) = facegated(
        "[camera]\ndevice = \"/dev/video-absent\"\n[gallery]\npath = \"$DIR/g.toml\"\n[audit]\npath = \"$DIR/a.jsonl\"\n",
    );
    assert_eq!(code, Some(1));
    // The lock is opened first (so the pin drives "locked" as early as possible).
    assert!(err.contains("GPIO controller"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
