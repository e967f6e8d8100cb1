//! The admin CLI and the door use the same files: the gallery, the audit log and the control
//! socket come from the door's config (`--config`, `FACEGATE_CONFIG`, else
//! /etc/facegate/config.toml) unless given on the command line. (c8d23fe: the CLI never read
//! `[gallery] path`, so a site that moved the gallery enrolled into a file the door never read.)

use facegate_e2e::fixture;
use std::path::Path;
use std::process::{Command, Output};

fn facegate(config: Option<&Path>, env_config: Option<&Path>, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_facegate"));
    c.env_remove("FACEGATE_GALLERY")
        .env_remove("FACEGATE_CONFIG");
    if let Some(cfg) = config {
        c.arg("--config").arg(cfg);
    }
    if let Some(cfg) = env_config {
        c.env("FACEGATE_CONFIG", cfg);
    }
    c.args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A door config in `dir` whose gallery, audit log and control socket are not the defaults.
fn site_config(dir: &Path) -> std::path::PathBuf {
    let cfg = dir.join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[gallery]\npath = \"{0}/site/gallery.toml\"\n\
             [audit]\npath = \"{0}/site/audit.jsonl\"\n\
             [control]\nsocket = \"{0}/site/control.sock\"\n",
            dir.display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("site")).unwrap();
    cfg
}

#[test]
fn the_cli_enrols_into_the_gallery_the_doors_config_names() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = site_config(dir.path());
    let photo = fixture("obama.jpg");
    let out = facegate(
        Some(&cfg),
        None,
        &["enroll", "--name", "Barack Obama", photo.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        dir.path().join("site/gallery.toml").exists(),
        "{}",
        text(&out)
    );
    // Found again through FACEGATE_CONFIG, as the door would find it.
    let out = facegate(None, Some(&cfg), &["list"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("Barack Obama"), "{}", text(&out));
    // --gallery still wins.
    let other = dir.path().join("other.toml");
    let out = facegate(
        Some(&cfg),
        None,
        &["--gallery", other.to_str().unwrap(), "list"],
    );
    assert!(!text(&out).contains("Barack Obama"), "{}", text(&out));
}

#[test]
fn a_broken_door_config_stops_gallery_commands_rather_than_guess_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, "[gallery]\npaht = \"typo\"\n").unwrap();
    let out = facegate(Some(&cfg), None, &["list"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("the gallery it uses is unknown"),
        "{}",
        text(&out)
    );
}

#[test]
fn audit_and_door_commands_use_the_configs_log_and_socket() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = site_config(dir.path());
    let out = facegate(Some(&cfg), None, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let log = dir.path().join("site/audit.jsonl");
    assert!(text(&out).contains(log.to_str().unwrap()), "{}", text(&out));
    // No door is running: the error names the socket the config gives.
    let out = facegate(Some(&cfg), None, &["door", "status"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let socket = dir.path().join("site/control.sock");
    assert!(
        text(&out).contains(socket.to_str().unwrap()),
        "{}",
        text(&out)
    );
}

/// `facegate command unlock` without `--door` is refused before anything is signed or sent: an
/// unlock of every door of the site must be asked for by name (`--door '*'`). (c8d23fe: `--door`
/// defaulted to every door.)
#[test]
fn a_site_unlock_must_name_its_door() {
    let out = facegate(None, None, &["command", "unlock", "--by", "guard"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--door: which door"), "{}", text(&out));
    // With a door named, it goes on to the broker settings (none here: a clear error).
    let out = facegate(
        None,
        None,
        &["command", "unlock", "--door", "*", "--by", "guard"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(!text(&out).contains("which door"), "{}", text(&out));
}

/// The admin CLI's `command` and `publish` read the same `[mqtt]` as the door, with the same
/// rule: no TLS only to a broker on this machine (issue #24 finding 4: the site password, the
/// command and the gallery would cross the LAN in clear).
#[test]
fn the_cli_refuses_mqtt_in_clear_to_a_broker_off_this_machine() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("admin.toml");
    std::fs::write(
        &cfg,
        "[mqtt]\nhost = \"broker.example.com\"\ntls = false\nusername = \"admin\"\n\
         password_file = \"/etc/facegate/mqtt.pass\"\n",
    )
    .unwrap();
    let mqtt = cfg.to_str().unwrap();
    for args in [
        &["command", "lockdown", "--by", "guard", "--mqtt", mqtt][..],
        &["publish", "--mqtt", mqtt][..],
    ] {
        let out = facegate(None, None, args);
        assert_ne!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
        assert!(
            text(&out).contains("mqtt.tls") && text(&out).contains("in clear"),
            "{args:?}: {}",
            text(&out)
        );
    }
}
