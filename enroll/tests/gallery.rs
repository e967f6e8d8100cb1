//! The gallery commands as an admin runs them: enrol from one photo, identify, refuse bad
//! enrolments without touching what is stored, list/show/rename/remove.

use facegate_e2e::{fixture, side_by_side};
use std::path::Path;
use std::process::{Command, Output};

fn facegate(gallery: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_facegate"))
        .arg("--gallery")
        .arg(gallery)
        .args(args)
        .output()
        .unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn one_photo_enrols_and_other_photos_are_recognised_strangers_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let g = dir.path().join("gallery.toml");
    let out = facegate(
        &g,
        &["enroll", "--name", "Barack Obama", s(&fixture("obama.jpg"))],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for other in ["obama2.jpg", "obama3.jpg", "32bit.png"] {
        let out = facegate(&g, &["identify", s(&fixture(other))]);
        assert_eq!(out.status.code(), Some(0), "{other}: {}", text(&out));
        assert!(
            text(&out).contains("Barack Obama (id barack-obama)"),
            "{other}: {}",
            text(&out)
        );
    }
    for stranger in ["biden.jpg", "astronaut.png"] {
        let out = facegate(&g, &["identify", "--json", s(&fixture(stranger))]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{stranger} must be unknown: {}",
            text(&out)
        );
        let v: serde_json::Value =
            serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap())
                .unwrap();
        assert!(
            v["id"].is_null() && v["distance"].as_f64().unwrap() > 0.6,
            "{v}"
        );
    }
}

#[test]
fn bad_enrolments_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let g = dir.path().join("gallery.toml");
    assert_eq!(
        facegate(
            &g,
            &["enroll", "--name", "Joe Biden", s(&fixture("biden.jpg"))]
        )
        .status
        .code(),
        Some(0)
    );
    let before = std::fs::read(&g).unwrap();

    // Two people of similar size in one photo.
    let both = side_by_side(
        &facegate::decode_file(&fixture("obama.jpg")).unwrap(),
        &facegate::decode_file(&fixture("obama2.jpg")).unwrap(),
        600,
    );
    let two = dir.path().join("two.png");
    both.save(&two).unwrap();
    // A face too small to recognise reliably.
    let small_img = image::imageops::resize(
        &facegate::decode_file(&fixture("obama.jpg")).unwrap(),
        182,
        227,
        image::imageops::FilterType::Triangle,
    );
    let small = dir.path().join("small.png");
    small_img.save(&small).unwrap();
    let garbage = dir.path().join("garbage.jpg");
    std::fs::write(&garbage, "not a photo").unwrap();

    let cases: [(&Path, &str); 4] = [
        (&fixture("coffee.png"), "no face found"),
        (&two, "2 faces of similar size"),
        (&small, "too small for reliable recognition"),
        (&garbage, "not a JPEG or PNG image"),
    ];
    for (photo, why) in cases {
        // A good photo first: all or nothing.
        let out = facegate(
            &g,
            &[
                "enroll",
                "--name",
                "Barack Obama",
                s(&fixture("obama.jpg")),
                s(photo),
            ],
        );
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(
            text(&out).contains(why)
                && text(&out).contains(photo.file_name().unwrap().to_str().unwrap()),
            "expected {why:?}: {}",
            text(&out)
        );
        assert_eq!(
            std::fs::read(&g).unwrap(),
            before,
            "a refused enrolment changed the gallery"
        );
    }
}

#[test]
fn enrolling_a_known_face_under_another_name_needs_force() {
    let dir = tempfile::tempdir().unwrap();
    let g = dir.path().join("gallery.toml");
    assert_eq!(
        facegate(
            &g,
            &["enroll", "--name", "Barack Obama", s(&fixture("obama.jpg"))]
        )
        .status
        .code(),
        Some(0)
    );
    let out = facegate(
        &g,
        &["enroll", "--name", "Not Obama", s(&fixture("obama2.jpg"))],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("matches \"Barack Obama\" (id barack-obama)")
            && text(&out).contains("--id barack-obama"),
        "{}",
        text(&out)
    );
    // The suggested fix: add the photo to the existing person.
    let out = facegate(
        &g,
        &[
            "enroll",
            "--name",
            "Barack Obama",
            "--id",
            "barack-obama",
            s(&fixture("obama2.jpg")),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = facegate(
        &g,
        &[
            "enroll",
            "--force",
            "--name",
            "Not Obama",
            s(&fixture("obama3.jpg")),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let list = facegate(&g, &["list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(v[0]["photos"], 2);
    assert_eq!(v[1]["name"], "Not Obama");
}

#[test]
fn list_show_rename_remove() {
    let dir = tempfile::tempdir().unwrap();
    let g = dir.path().join("gallery.toml");
    assert_eq!(
        String::from_utf8_lossy(&facegate(&g, &["list"]).stdout).trim(),
        "no one is enrolled"
    );
    facegate(
        &g,
        &["enroll", "--name", "Joe Biden", s(&fixture("biden.jpg"))],
    );
    let show = facegate(&g, &["show", "joe-biden", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(v["enrolments"][0]["source"], "biden.jpg");
    assert_eq!(
        v["enrolments"][0]["sha256"],
        "3c17508bb91554c637a2eabddfae790e5bb1caba93130814fc2ac50be9760c4c"
    );
    assert_eq!(
        facegate(&g, &["rename", "joe-biden", "Joseph R. Biden"])
            .status
            .code(),
        Some(0)
    );
    assert!(String::from_utf8_lossy(&facegate(&g, &["list"]).stdout).contains("Joseph R. Biden"));
    let missing = facegate(&g, &["remove", "nobody"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing).contains("no enrolled person has id \"nobody\""));
    assert_eq!(
        facegate(&g, &["remove", "joe-biden"]).status.code(),
        Some(0)
    );
    assert_eq!(
        facegate(&g, &["identify", s(&fixture("biden.jpg"))])
            .status
            .code(),
        Some(1)
    );
}

#[test]
fn a_gallery_of_another_model_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let g = dir.path().join("gallery.toml");
    std::fs::write(&g, "format = 1\nmodel = \"facenet-512/abc\"\n").unwrap();
    for args in [
        &["list"][..],
        &["identify", s(&fixture("obama.jpg"))],
        &["enroll", "--name", "A", s(&fixture("obama.jpg"))],
    ] {
        let out = facegate(&g, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            text(&out).contains("facenet-512/abc") && text(&out).contains("re-enrol"),
            "{}",
            text(&out)
        );
    }
    assert_eq!(
        std::fs::read_to_string(&g).unwrap(),
        "format = 1\nmodel = \"facenet-512/abc\"\n"
    );
}
