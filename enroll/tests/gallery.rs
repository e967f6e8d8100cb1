//! The gallery commands as an admin runs them: enrol from one photo, identify, refuse bad
//! enrolments without touching what is stored, list/show/rename/remove.

mod common;
use common::{facegate, s, text};
use facegate_e2e::{fixture, side_by_side};
use std::path::Path;

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
    // A face far too small to recognise reliably (about 44 px).
    let small_img = scaled(&facegate::decode_file(&fixture("obama.jpg")).unwrap(), 0.18);
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

/// `img` scaled by `k`.
fn scaled(img: &image::RgbImage, k: f32) -> image::RgbImage {
    let (w, h) = (img.width() as f32 * k, img.height() as f32 * k);
    image::imageops::resize(
        img,
        w.round() as u32,
        h.round() as u32,
        image::imageops::FilterType::Triangle,
    )
}

/// Obama's portrait in the middle of a wider canvas, with Biden's face at the left edge a bit
/// smaller (0.8 of the size: "of similar size", not a face in the background).
fn portrait_with_a_colleague() -> image::RgbImage {
    let obama = facegate::decode_file(&fixture("obama.jpg")).unwrap();
    let biden = facegate::decode_file(&fixture("biden.jpg")).unwrap();
    // Biden's face is about 296 px, Obama's 236: a crop around Biden's scaled to 0.64.
    let biden = scaled(
        &image::imageops::crop_imm(&biden, 372, 100, 400, 520).to_image(),
        0.64,
    );
    let mut canvas = image::RgbImage::from_pixel(
        obama.width() + 600,
        obama.height(),
        image::Rgb([128, 128, 128]),
    );
    image::imageops::replace(&mut canvas, &obama, 300, 0);
    image::imageops::replace(&mut canvas, &biden, 0, 200);
    canvas
}

#[test]
fn a_merely_poor_photo_is_enrolled_with_a_warning_and_refused_with_strict() {
    let dir = tempfile::tempdir().unwrap();
    let obama = facegate::decode_file(&fixture("obama.jpg")).unwrap();
    let cases = [
        // A 72 px face: under the 80 recommended, far from unusable.
        (
            "small.png",
            scaled(&obama, 0.3),
            "pixels, under the 80 recommended",
        ),
        // Blurred past enrolment's gate, not past the door's.
        (
            "soft.png",
            facegate_e2e::degraded(&obama, 7.0, 1.0),
            "the face is blurred",
        ),
        // The person in the middle is the largest face; a colleague beside them.
        (
            "group.png",
            portrait_with_a_colleague(),
            "1 other face(s) of similar size",
        ),
    ];
    for (name, img, why) in cases {
        let photo = dir.path().join(name);
        img.save(&photo).unwrap();
        let g = dir.path().join(format!("{name}.toml"));
        let strict = facegate(
            &g,
            &["enroll", "--strict", "--name", "Barack Obama", s(&photo)],
        );
        assert_eq!(strict.status.code(), Some(2), "{name}: {}", text(&strict));
        assert!(!g.exists(), "{name}: a refused enrolment wrote the gallery");
        let out = facegate(&g, &["enroll", "--name", "Barack Obama", s(&photo)]);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("warning:") && err.contains(why) && err.contains(name),
            "{name}: expected a warning {why:?}: {}",
            text(&out)
        );
        // The face enrolled is Obama's: another photo of him is recognised, Biden is not.
        let out = facegate(&g, &["identify", s(&fixture("obama2.jpg"))]);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", text(&out));
        let out = facegate(&g, &["identify", s(&fixture("biden.jpg"))]);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", text(&out));
    }
    // import says the same, per photo, in its JSON.
    let staff = dir.path().join("staff");
    std::fs::create_dir_all(staff.join("Barack Obama")).unwrap();
    std::fs::copy(
        dir.path().join("small.png"),
        staff.join("Barack Obama/small.png"),
    )
    .unwrap();
    let g = dir.path().join("import.toml");
    let out = facegate(&g, &["import", "--json", s(&staff)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["enrolled"].as_array().unwrap().len(), 1, "{v}");
    assert!(
        v["warnings"][0]
            .as_str()
            .is_some_and(|w| w.contains("small.png") && w.contains("under the 80")),
        "{v}"
    );
    let out = facegate(&g, &["import", "--strict", "--json", s(&staff)]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["skipped"][0]
        .as_str()
        .is_some_and(|w| w.contains("too small")));
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

/// `DIR/<person>/<photo>` from fixtures.
fn labelled_dir(dir: &Path, layout: &[(&str, &[&str])]) {
    for (person, photos) in layout {
        std::fs::create_dir_all(dir.join(person)).unwrap();
        for p in *photos {
            std::fs::copy(fixture(p), dir.join(person).join(p)).unwrap();
        }
    }
}

#[test]
fn import_enrols_good_photos_and_skips_bad_ones_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let g = dir.path().join("gallery.toml");
    let staff = dir.path().join("staff");
    labelled_dir(
        &staff,
        &[
            ("Barack Obama", &["obama.jpg", "obama2.jpg", "coffee.png"]),
            ("Joe Biden", &["biden.jpg"]),
        ],
    );
    let out = facegate(&g, &["import", "--json", s(&staff)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["enrolled"].as_array().unwrap().len(), 3, "{v}");
    assert_eq!(v["people"], 2);
    let skipped = v["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1);
    assert!(
        skipped[0]
            .as_str()
            .unwrap()
            .contains("coffee.png: no face found"),
        "{v}"
    );
    let list: serde_json::Value =
        serde_json::from_slice(&facegate(&g, &["list", "--json"]).stdout).unwrap();
    assert_eq!(
        (list[0]["name"].as_str(), list[0]["photos"].as_u64()),
        (Some("Barack Obama"), Some(2))
    );
}

#[test]
fn calibrate_reports_rates_and_a_threshold_that_separates_the_people() {
    let dir = tempfile::tempdir().unwrap();
    let labelled = dir.path().join("labelled");
    labelled_dir(
        &labelled,
        &[
            ("obama", &["obama.jpg", "obama2.jpg", "obama3.jpg"]),
            ("biden", &["biden.jpg"]),
            ("collins", &["astronaut.png"]),
        ],
    );
    let out = facegate(
        &dir.path().join("g.toml"),
        &["calibrate", "--json", s(&labelled)],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["same_pairs"].as_u64(), v["different_pairs"].as_u64()),
        (Some(3), Some(7))
    );
    let t = v["recommended_threshold"].as_f64().unwrap();
    assert!(
        t > v["same_distance"][2].as_f64().unwrap()
            && t < v["different_distance"][0].as_f64().unwrap(),
        "{v}"
    );
    assert_eq!(v["recommended_frr"].as_f64(), Some(0.0));
}

#[test]
fn cluster_groups_faces_by_person() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("visitors");
    labelled_dir(
        &photos,
        &[(
            "x",
            &[
                "obama.jpg",
                "biden.jpg",
                "obama3.jpg",
                "astronaut.png",
                "obama2.jpg",
            ],
        )],
    );
    let out = facegate(
        &dir.path().join("g.toml"),
        &["cluster", "--json", s(&photos)],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let groups: Vec<Vec<serde_json::Value>> = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<Vec<String>> = groups
        .iter()
        .map(|g| {
            let mut v: Vec<String> = g
                .iter()
                .map(|f| {
                    Path::new(f["path"].as_str().unwrap())
                        .file_name()
                        .unwrap()
                        .to_string_lossy()
                        .into_owned()
                })
                .collect();
            v.sort();
            v
        })
        .collect();
    let mut names = names;
    names.sort();
    let expected: Vec<Vec<String>> = [
        &["astronaut.png"][..],
        &["biden.jpg"],
        &["obama.jpg", "obama2.jpg", "obama3.jpg"],
    ]
    .iter()
    .map(|g| g.iter().map(|n| n.to_string()).collect())
    .collect();
    assert_eq!(names, expected);
    assert_eq!(groups.len(), 3, "{names:?}");
}

/// A site's `recognition.target_fnir` above what one photo each gives at its gallery's size:
/// `enroll` and `import` say how many photos per person it needs, `list` marks who has fewer
/// and `--fewer-photos` lists only them. At the default target a small site needs no more.
#[test]
fn photos_per_person_are_advised_and_those_with_fewer_listed() {
    let dir = tempfile::tempdir().unwrap();
    let g = dir.path().join("gallery.toml");
    let strict = dir.path().join("strict.toml");
    std::fs::write(&strict, "[recognition]\ntarget_fnir = 0.05\n").unwrap();
    let default = dir.path().join("default.toml");
    std::fs::write(&default, "").unwrap();
    let run = |config: &Path, args: &[&str]| {
        let mut all = vec!["--config", s(config)];
        all.extend_from_slice(args);
        let out = facegate(&g, &all);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
        out
    };
    let stdout = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).into_owned();

    let out = run(
        &strict,
        &["enroll", "--name", "Barack Obama", s(&fixture("obama.jpg"))],
    );
    let advice = stdout(&out);
    assert!(
        advice.contains("\nat 1 person the door expects ")
            && advice.contains("% of employees refused with one photo each, ")
            && advice.contains(
                "enrol 2 photos per person (1 person has fewer: facegate list --fewer-photos)"
            ),
        "{advice}"
    );
    // A second photo: no one is short any more.
    let out = run(
        &strict,
        &[
            "enroll",
            "--name",
            "Barack Obama",
            "--id",
            "barack-obama",
            s(&fixture("obama2.jpg")),
        ],
    );
    assert!(
        stdout(&out).contains("(everyone has as many)"),
        "{}",
        stdout(&out)
    );

    // import --json keeps its stdout one JSON object: the advice goes to stderr.
    let staff = dir.path().join("staff");
    labelled_dir(&staff, &[("Joe Biden", &["biden.jpg"])]);
    let out = run(&strict, &["import", "--json", s(&staff)]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["people"], 2, "{v}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("at 2 people the door expects")
            && err.contains("enrol 2 photos per person (1 person has fewer"),
        "{err}"
    );

    let list = stdout(&run(&strict, &["list"]));
    let line = |who: &str| {
        list.lines()
            .find(|l| l.contains(who))
            .unwrap_or_else(|| panic!("{who} not in {list}"))
            .to_owned()
    };
    assert!(line("Barack Obama").contains("2 photo(s)"), "{list}");
    assert!(!line("Barack Obama").contains("advised"), "{list}");
    assert!(
        line("Joe Biden").contains("1 photo(s)  (fewer than 2 advised)"),
        "{list}"
    );
    assert!(
        list.contains("1 of 2 people have fewer than the 2 photos advised"),
        "{list}"
    );
    let fewer = stdout(&run(&strict, &["list", "--fewer-photos"]));
    assert!(
        fewer.contains("Joe Biden") && !fewer.contains("Barack Obama"),
        "{fewer}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&run(&strict, &["list", "--json"]).stdout).unwrap();
    let json = json.as_array().unwrap();
    assert_eq!(json.len(), 2);
    for p in json {
        let short = p["name"] == "Joe Biden";
        assert_eq!(p["photos"], if short { 1 } else { 2 }, "{p}");
        assert_eq!(p["fewer_than_advised"], short, "{p}");
    }
    let only: serde_json::Value =
        serde_json::from_slice(&run(&strict, &["list", "--json", "--fewer-photos"]).stdout)
            .unwrap();
    assert_eq!(only.as_array().unwrap().len(), 1, "{only}");

    // The default target (0.10): one photo each is enough for 2 people, no one is marked.
    let list = stdout(&run(&default, &["list"]));
    assert!(!list.contains("advised"), "{list}");
    let fewer = stdout(&run(&default, &["list", "--fewer-photos"]));
    assert_eq!(
        fewer.trim(),
        "one photo each is enough for recognition.target_fnir at 2 people"
    );
}
