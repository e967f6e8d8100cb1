//! `facegate console user add|remove|list` and `facegate console fingerprint`: the web console's
//! accounts file the config's `[console] users` names (argon2id, 0600), and its certificate.

use facegate::console::users::{Role, Users};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn facegate(config: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_facegate"));
    c.env_remove("FACEGATE_GALLERY")
        .env_remove("FACEGATE_CONFIG")
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn user_add_list_remove_and_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    // Its folder is made (0700) by the first `user add`.
    let users = dir.path().join("console/users.toml");
    let cfg = dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        format!("[console]\nusers = \"{}\"\n", users.display()),
    )
    .unwrap();

    let o = facegate(
        &cfg,
        &[
            "console",
            "user",
            "add",
            "ada",
            "--role",
            "admin",
            "--password-stdin",
        ],
        Some("a long password\n"),
    );
    assert!(o.status.success(), "{}", text(&o));
    let mode = std::fs::metadata(&users).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let mode = std::fs::metadata(users.parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    let file = Users::load(&users).unwrap();
    assert_eq!(
        file.check("ada", "a long password").map(|u| u.role),
        Some(Role::Admin)
    );

    // Without --password-stdin a password is made and shown once.
    let o = facegate(
        &cfg,
        &["console", "user", "add", "bob", "--role", "viewer"],
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let password = out.split("password (shown once): ").nth(1).unwrap().trim();
    assert_eq!(password.len(), 24);
    let file = Users::load(&users).unwrap();
    assert_eq!(
        file.check("bob", password).map(|u| u.role),
        Some(Role::Viewer)
    );

    // Refused: a short password, a bad name, a bad role; nothing changes.
    for args in [
        &[
            "console",
            "user",
            "add",
            "eve",
            "--role",
            "admin",
            "--password-stdin",
        ][..],
        &[
            "console",
            "user",
            "add",
            "e@ve",
            "--role",
            "admin",
            "--password-stdin",
        ][..],
        &[
            "console",
            "user",
            "add",
            "eve",
            "--role",
            "root",
            "--password-stdin",
        ][..],
    ] {
        let stdin = if args[3] == "eve" && args[5] == "admin" {
            "short\n"
        } else {
            "a long password\n"
        };
        let o = facegate(&cfg, args, Some(stdin));
        assert!(!o.status.success(), "{args:?}: {}", text(&o));
    }

    let o = facegate(&cfg, &["console", "user", "list", "--json"], None);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v,
        serde_json::json!([{"name": "ada", "role": "admin"}, {"name": "bob", "role": "viewer"}])
    );
    let o = facegate(&cfg, &["console", "user", "remove", "bob"], None);
    assert!(o.status.success(), "{}", text(&o));
    let o = facegate(&cfg, &["console", "user", "remove", "bob"], None);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(Users::load(&users).unwrap().users.len(), 1);

    // No certificate until the console made one; then its SHA-256.
    let o = facegate(&cfg, &["console", "fingerprint"], None);
    assert!(!o.status.success());
    assert!(text(&o).contains("no certificate yet"), "{}", text(&o));
    let config = facegate::config::Config::load(&cfg).unwrap();
    facegate::console::tls::server_config(&config.console).unwrap();
    let o = facegate(&cfg, &["console", "fingerprint"], None);
    assert!(o.status.success(), "{}", text(&o));
    let (cert, _) = config.console.tls_files();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        format!(
            "SHA-256 {}",
            facegate::console::tls::fingerprint(&cert).unwrap()
        )
    );
}
