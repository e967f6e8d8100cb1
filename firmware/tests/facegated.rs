//! The `facegated` binary at its edges: config errors, `--check`, and absent hardware (this
//! machine has no GPIO chip and no camera), each with a clear message and a failure exit; and the
//! lock driven first, from the right pin, however broken the config file is.

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
        stdout.contains("config OK") && stdout.contains("sface_2021dec_int8"),
        "{stdout}"
    );
}

/// `facegated --check` on `config`: exit code, stdout, stderr.
fn check(config: &str) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(BIN)
        .args(["--check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Issue #24 finding 4: `tls = false` to a broker on the LAN said `config OK`.
#[test]
fn check_refuses_mqtt_in_clear_to_a_broker_off_this_machine() {
    let mqtt = |host: &str| {
        format!("[mqtt]\nhost = \"{host}\"\ntls = false\nusername = \"door\"\npassword_file = \"/etc/facegate/mqtt.pass\"\n")
    };
    let (code, out, err) = check(&mqtt("broker.example.com"));
    assert_eq!(code, Some(1), "{out}");
    assert!(
        err.contains("mqtt.tls") && err.contains("in clear"),
        "{err}"
    );
    assert!(!out.contains("config OK"), "{out}");
    let (code, out, err) = check(&mqtt("127.0.0.1"));
    assert_eq!(code, Some(0), "{out} {err}");
}

/// Issue #24 finding 10: a threshold far above the model's was only a warning.
#[test]
fn check_refuses_a_threshold_above_the_models_range_without_the_override() {
    let (code, out, err) = check("[recognition]\nthreshold = 1.5\n");
    assert_eq!(code, Some(1), "{out}");
    assert!(
        err.contains("recognition.threshold") && err.contains("calibrated range"),
        "{err}"
    );
    let (code, out, err) = check("[recognition]\nthreshold = 1.5\nthreshold_override = true\n");
    assert_eq!(code, Some(0), "{out} {err}");
    assert!(
        out.contains(
            "threshold 1.500 (calibrated up to 0.550; recognition.threshold_override = true)"
        ) && out.contains("warning (loosens security): recognition.threshold_override = true"),
        "{out}"
    );
}

/// A configured operator key that cannot be used is a config error (the console would be locked
/// out), named without showing the key.
#[test]
fn check_refuses_a_missing_or_short_operator_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("console.key");
    let config = format!("[control]\noperator_key = \"{}\"\n", key.display());
    let (code, out, err) = check(&config);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        err.contains("[control] operator_key") && err.contains("console.key"),
        "{err}"
    );
    std::fs::write(&key, "short-secret\n").unwrap();
    let (code, _, err) = check(&config);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("at least 32") && !err.contains("short-secret"),
        "{err}"
    );
    std::fs::write(&key, format!("{}\n", "k".repeat(40))).unwrap();
    let (code, out, err) = check(&config);
    assert_eq!(code, Some(0), "{out} {err}");
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

/// Whether this machine has a GPIO chip: then the tests that would drive a real pin skip.
fn has_gpio_chip() -> bool {
    std::fs::read_dir("/dev").is_ok_and(|d| {
        d.flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("gpiochip"))
    })
}

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const NO_CHIP: &str = "no GPIO chip (/dev/gpiochip*) is available";

#[test]
fn absent_hardware_fails_cleanly() {
    if has_gpio_chip() {
        eprintln!("skipped: this machine has a GPIO chip, and the test would drive GPIO17");
        return;
    }
    let (code, _, err) = facegated(
        "[camera]\ndevice = \"/dev/video-absent\"\n[gallery]\npath = \"$DIR/g.toml\"\n[audit]\npath = \"$DIR/a.jsonl\"\n",
    );
    assert_eq!(code, Some(1));
    assert!(
        err.contains(&format!("cannot lock GPIO17 (active-high) by default (no [lock] in the config): lock output: GPIO17: {NO_CHIP}")),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

/// A config broken outside `[lock]` (invalid TOML, an unknown key, a bad value).
const BROKEN: &str =
    "[camera]\nfps = \"fast\n[lock]\ngpio = 22\nactive_low = true\n[recognition]\nframes = 1\n";

#[test]
fn lock_with_a_broken_config_drives_the_pin_of_its_lock_section() {
    if has_gpio_chip() {
        eprintln!("skipped: this machine has a GPIO chip, and the test would drive GPIO22");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, BROKEN).unwrap();
    let record = dir.path().join("lock.toml");
    let (c, r) = (config.to_str().unwrap(), record.to_str().unwrap());
    let (code, _, err) = run(&["--lock", "--config", c, "--lock-record", r]);
    // No chip here: the attempt on the right pin, with the reason it failed, and exit 1 so that
    // systemd shows the failed ExecStopPost.
    assert_eq!(code, Some(1));
    assert!(err.contains("not valid TOML"), "{err}");
    assert!(
        err.contains(&format!("cannot lock GPIO22 (active-low) from the config's [lock]: lock output: GPIO22: {NO_CHIP}")),
        "{err}"
    );
    // The record of the daemon that ran last wins: the pin it was driving.
    std::fs::write(&record, "gpio = 5\nactive_low = false\n").unwrap();
    let (code, _, err) = run(&["--lock", "--config", c, "--lock-record", r]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("cannot lock GPIO5 (active-high) as recorded by the daemon that ran last"),
        "{err}"
    );
    // No config file at all: the defaults.
    std::fs::remove_file(&record).unwrap();
    let (code, _, err) = run(&[
        "--lock",
        "--config",
        "/nonexistent/c.toml",
        "--lock-record",
        r,
    ]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("cannot lock GPIO17 (active-high) by default (no config file)"),
        "{err}"
    );
}

#[test]
fn start_drives_the_lock_before_the_strict_config_check() {
    if has_gpio_chip() {
        eprintln!("skipped: this machine has a GPIO chip, and the test would drive GPIO22");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, BROKEN).unwrap();
    let record = dir.path().join("lock.toml");
    let (code, _, err) = run(&[
        "--config",
        config.to_str().unwrap(),
        "--lock-record",
        record.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1));
    let lock = err.find("cannot lock GPIO22 (active-low)").expect(&err);
    let strict = err.find("invalid basic string").expect(&err);
    assert!(lock < strict, "the lock must come first: {err}");
}
