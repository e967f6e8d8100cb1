//! The admin CLI as an admin runs it: `facegate embed` and `facegate verify` on real photos and
//! on bad input.

use facegate_e2e::fixture;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn facegate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_facegate"))
        .args(args)
        .output()
        .unwrap()
}

/// The standard output of a run that must have exited 0 (else fails with both outputs).
fn succeeded(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn stdout_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn verify_says_same_for_one_person_and_different_for_two() {
    let same = facegate(&[
        "verify",
        s(&fixture("obama.jpg")),
        s(&fixture("obama3.jpg")),
    ]);
    assert_eq!(
        same.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&same.stderr)
    );
    let text = String::from_utf8_lossy(&same.stdout);
    assert!(text.starts_with("same person: distance "), "{text}");
    assert!(text.contains("threshold"), "{text}");

    let diff = facegate(&[
        "verify",
        "--json",
        s(&fixture("obama.jpg")),
        s(&fixture("biden.jpg")),
    ]);
    assert_eq!(diff.status.code(), Some(1));
    let v = &stdout_lines(&diff)[0];
    assert_eq!(v["same"], false);
    assert!(v["distance"].as_f64().unwrap() > v["threshold"].as_f64().unwrap());
}

#[test]
fn verify_threshold_override_changes_the_verdict() {
    let out = facegate(&[
        "verify",
        "--threshold",
        "0.01",
        s(&fixture("obama.jpg")),
        s(&fixture("obama3.jpg")),
    ]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn verify_errors_name_the_file_and_exit_2() {
    let no_face = facegate(&[
        "verify",
        s(&fixture("obama.jpg")),
        s(&fixture("coffee.png")),
    ]);
    assert_eq!(no_face.status.code(), Some(2));
    let err = String::from_utf8_lossy(&no_face.stderr);
    assert!(
        err.contains("coffee.png") && err.contains("no face"),
        "{err}"
    );

    let missing = facegate(&["verify", s(&fixture("obama.jpg")), "/nonexistent/photo.jpg"]);
    assert_eq!(missing.status.code(), Some(2));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("/nonexistent/photo.jpg") && err.contains("No such file"),
        "{err}"
    );
}

#[test]
fn embed_prints_one_json_object_per_image_in_sorted_order() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("b_people");
    std::fs::create_dir(&sub).unwrap();
    std::fs::copy(fixture("obama.jpg"), sub.join("obama.JPG")).unwrap();
    std::fs::copy(fixture("coffee.png"), dir.path().join("a_coffee.png")).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not an image, and not listed").unwrap();

    let out = facegate(&["embed", s(dir.path())]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0]["path"].as_str().unwrap().ends_with("a_coffee.png"));
    assert_eq!(lines[0]["faces"].as_array().unwrap().len(), 0);
    assert!(lines[1]["path"]
        .as_str()
        .unwrap()
        .ends_with("b_people/obama.JPG"));

    let obj = lines[1].as_object().unwrap();
    assert_eq!(obj.keys().collect::<Vec<_>>(), ["faces", "path"]);
    let faces = lines[1]["faces"].as_array().unwrap();
    assert_eq!(faces.len(), 1);
    let face = faces[0].as_object().unwrap();
    let mut keys: Vec<_> = face.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["box", "embedding", "landmarks", "score"]);
    assert_eq!(face["embedding"].as_array().unwrap().len(), 128);
    assert_eq!(face["landmarks"].as_array().unwrap().len(), 5);
    let b: Vec<f64> = face["box"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    // obama.jpg is 910x1137: the box lies inside it, in original pixels.
    assert!(
        b[0] >= 0.0 && b[1] >= 0.0 && b[0] + b[2] <= 910.0 && b[1] + b[3] <= 1137.0 && b[2] > 100.0,
        "{b:?}"
    );
    let score = face["score"].as_f64().unwrap();
    assert!(score > 0.9 && score <= 1.0);
}

#[test]
fn embed_reports_bad_files_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("1_empty.jpg"), b"").unwrap();
    std::fs::write(d.join("2_text.jpg"), b"hello, I am not a picture").unwrap();
    let jpeg = std::fs::read(fixture("obama.jpg")).unwrap();
    std::fs::write(d.join("3_truncated.jpg"), &jpeg[..jpeg.len() / 3]).unwrap();
    std::fs::write(d.join("4_huge.png"), huge_png_header(30_000, 30_000)).unwrap();
    std::fs::copy(fixture("biden.jpg"), d.join("5_good.jpg")).unwrap();

    let out = facegate(&["embed", s(d)]);
    assert_eq!(out.status.code(), Some(2));
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 5, "{lines:?}");
    let err = |i: usize| {
        lines[i]["error"]
            .as_str()
            .unwrap_or_else(|| panic!("line {i} is not an error: {}", lines[i]))
            .to_owned()
    };
    assert_eq!(err(0), "empty file (0 bytes)");
    assert_eq!(err(1), "not a JPEG or PNG image");
    assert!(
        err(2).starts_with("corrupt or truncated image"),
        "{}",
        err(2)
    );
    assert!(
        err(3).contains("30000x30000") && err(3).contains("over the limit"),
        "{}",
        err(3)
    );
    assert_eq!(
        lines[4]["faces"].as_array().unwrap().len(),
        1,
        "the good photo after the bad ones"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("1_empty.jpg") && stderr.contains("4_huge.png"),
        "{stderr}"
    );
}

#[test]
fn embed_of_a_missing_path_is_an_error_line() {
    let out = facegate(&["embed", "/nonexistent/x.jpg", s(&fixture("obama2.jpg"))]);
    assert_eq!(out.status.code(), Some(2));
    let lines = stdout_lines(&out);
    assert_eq!(lines[0]["path"], "/nonexistent/x.jpg");
    assert!(lines[0]["error"].as_str().unwrap().contains("No such file"));
    assert_eq!(lines[1]["faces"].as_array().unwrap().len(), 1);
}

#[test]
fn help_explains_every_option() {
    let out = facegate(&["embed", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for opt in ["--models", "--embedder", "--min-face", "--verbose"] {
        assert!(text.contains(opt), "{opt} missing from help:\n{text}");
    }
    let out = facegate(&["verify", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("--threshold") && text.contains("--json") && text.contains("Exit status"),
        "{text}"
    );
}

#[test]
fn a_model_manifest_with_a_wrong_checksum_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    let text = std::fs::read_to_string(shipped.join("manifest.toml")).unwrap();
    for entry in std::fs::read_dir(&shipped).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "onnx") {
            std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
        }
    }
    // Corrupt one byte of the default embedder.
    let int8 = dir.path().join("sface_2021dec_int8.onnx");
    let mut bytes = std::fs::read(&int8).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&int8, bytes).unwrap();
    std::fs::write(dir.path().join("manifest.toml"), text).unwrap();
    let out = facegate(&[
        "--models",
        s(&dir.path().join("manifest.toml")),
        "verify",
        s(&fixture("obama.jpg")),
        s(&fixture("obama2.jpg")),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sface_2021dec_int8.onnx has sha256"), "{err}");
}

/// A valid-looking PNG announcing a `w`x`h` RGB image, with a tiny data chunk: what a crafted
/// "decompression bomb" header looks like to a decoder.
fn huge_png_header(w: u32, h: u32) -> Vec<u8> {
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [
        (&b"IHDR"[..], &ihdr[..]),
        (b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]),
        (b"IEND", &[]),
    ] {
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut chunk = kind.to_vec();
        chunk.extend_from_slice(data);
        png.extend_from_slice(&chunk);
        png.extend_from_slice(&crc32fast::hash(&chunk).to_be_bytes());
    }
    png
}

fn repo_manifest() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../models/manifest.toml")
        .to_str()
        .unwrap()
        .to_owned()
}

#[test]
fn bench_times_every_stage_of_each_embedder() {
    let manifest = repo_manifest();
    let out = facegate(&[
        "--models",
        &manifest,
        "bench",
        "--rounds",
        "1",
        s(&fixture("obama2.jpg")),
    ]);
    let text = succeeded(&out);
    for embedder in ["dlib_resnet_v1_f32", "dlib_resnet_v1_int8"] {
        let section: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with(embedder))
            .skip(1)
            .take(facegate::bench::STAGES.len())
            .collect();
        for (line, stage) in section.iter().zip(facegate::bench::STAGES) {
            let ms: f64 = line
                .trim()
                .strip_prefix(stage)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{embedder}: no time for {stage} in {line:?}"));
            assert!(ms > 0.0 && ms.is_finite(), "{embedder} {stage}: {ms}");
        }
        assert_eq!(section.len(), facegate::bench::STAGES.len(), "{text}");
    }
}

/// `--workers N`: the door's frame rate on one worker and on N side by side, as a Pi owner
/// checks what the four cores give.
#[test]
fn bench_workers_gives_the_doors_frame_rate_on_one_and_on_n_workers() {
    let out = facegate(&[
        "--embedder",
        "sface_2021dec_int8",
        "bench",
        "--rounds",
        "1",
        "--workers",
        "2",
        s(&fixture("obama2.jpg")),
        s(&fixture("biden.jpg")),
    ]);
    let text = succeeded(&out);
    let rate = |w: u32| -> f64 {
        let prefix = format!("door frames, {w} worker(s)");
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in {text}"));
        line[prefix.len()..]
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no rate in {line:?}"))
    };
    for w in [1, 2] {
        assert!(rate(w) > 0.0 && rate(w).is_finite(), "{text}");
    }
    // --workers is bounded: a number of workers that would exhaust memory is refused.
    let out = facegate(&["bench", "--workers", "64", s(&fixture("obama2.jpg"))]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("64"));
}

#[test]
fn bench_names_a_photo_without_a_face_and_exits_2() {
    let out = facegate(&["bench", "--rounds", "1", s(&fixture("coffee.png"))]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("coffee.png") && err.contains("no face"),
        "{err}"
    );
}

/// A gallery in `dir` with Obama (obama.jpg) and Biden enrolled, and an empty config there (so
/// that the machine's /etc/facegate/config.toml plays no part).
fn two_people(dir: &Path) -> (String, String) {
    let gallery = dir.join("gallery.toml").to_str().unwrap().to_owned();
    let config = dir.join("config.toml");
    std::fs::write(&config, "# the defaults\n").unwrap();
    for (name, photo) in [("Obama", "obama.jpg"), ("Biden", "biden.jpg")] {
        let out = facegate(&[
            "--gallery",
            &gallery,
            "enroll",
            "--name",
            name,
            s(&fixture(photo)),
        ]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    (gallery, config.to_str().unwrap().to_owned())
}

#[test]
fn identify_shows_the_door_verdict_and_the_rule_that_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (gallery, config) = two_people(dir.path());
    let identify = |config: &str, photos: &[&str]| {
        let mut args = vec![
            "--gallery",
            &gallery,
            "--config",
            config,
            "identify",
            "--json",
        ];
        args.extend_from_slice(photos);
        facegate(&args)
    };
    let obama2 = fixture("obama2.jpg");
    let astronaut = fixture("astronaut.png");
    let out = identify(&config, &[s(&obama2), s(&astronaut)]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 2, "{lines:?}");
    let mut keys: Vec<_> = lines[0].as_object().unwrap().keys().cloned().collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["box", "distance", "id", "margin", "name", "nearest", "path", "refused"]
    );
    // The employee is let in.
    assert_eq!(lines[0]["id"], "obama", "{}", lines[0]);
    assert_eq!(lines[0]["refused"], Value::Null);
    assert_eq!(lines[0]["nearest"]["id"], "obama");
    // The stranger is not, and the output says why and who was nearest.
    assert_eq!(lines[1]["id"], Value::Null, "{}", lines[1]);
    assert_eq!(lines[1]["refused"], "unknown");
    assert!(lines[1]["nearest"]["id"].is_string());
    assert!(lines[1]["distance"].as_f64().unwrap() > 0.6);

    // The config's values are the ones applied: a margin no two people can have...
    let strict = dir.path().join("strict.toml");
    std::fs::write(&strict, "[recognition]\nmin_margin = 2.0\n").unwrap();
    let out = identify(s(&strict), &[s(&obama2)]);
    assert_eq!(out.status.code(), Some(1));
    let line = &stdout_lines(&out)[0];
    assert_eq!(line["refused"], "ambiguous", "{line}");
    assert_eq!(line["nearest"]["id"], "obama");
    // ...a face size no photo reaches...
    std::fs::write(&strict, "[recognition]\nmin_face = 2000\n").unwrap();
    let out = identify(s(&strict), &[s(&obama2)]);
    assert_eq!(stdout_lines(&out)[0]["refused"], "too_small");
    // ...and in text, the rule is named with the value that refused.
    std::fs::write(&strict, "[recognition]\nthreshold = 0.05\n").unwrap();
    let out = facegate(&[
        "--gallery",
        &gallery,
        "--config",
        s(&strict),
        "identify",
        s(&obama2),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("refused, unknown (threshold 0.050); nearest Obama (id obama)"),
        "{text}"
    );
}

#[test]
fn verify_and_enrolment_use_the_config_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let (gallery, _) = two_people(dir.path());
    let strict = dir.path().join("strict.toml");
    std::fs::write(&strict, "[recognition]\nthreshold = 0.05\n").unwrap();
    let (a, b) = (fixture("obama.jpg"), fixture("obama3.jpg"));
    let out = facegate(&["--config", s(&strict), "verify", "--json", s(&a), s(&b)]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout_lines(&out)[0]["threshold"].as_f64().unwrap() as f32,
        0.05
    );
    // Another Obama photo under a new name is a duplicate with the defaults...
    let enrol = |config: &str| {
        facegate(&[
            "--gallery",
            &gallery,
            "--config",
            config,
            "enroll",
            "--name",
            "Barack",
            s(&b),
        ])
    };
    let empty = dir.path().join("config.toml");
    let out = enrol(s(&empty));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("matches \"Obama\""));
    // ...and not under a threshold that near.
    assert_eq!(enrol(s(&strict)).status.code(), Some(0));
}

#[test]
fn calibrate_open_set_measures_the_door_rule_and_writes_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    std::fs::create_dir(&photos).unwrap();
    for f in [
        "obama.jpg",
        "obama2.jpg",
        "obama3.jpg",
        "biden.jpg",
        "astronaut.png",
        "coffee.png",
    ] {
        std::fs::copy(fixture(f), photos.join(f)).unwrap();
    }
    let csv = dir.path().join("openset.csv");
    std::fs::write(
        &csv,
        "role,person,image\nenrol,obama,photos/obama.jpg\nenrol,biden,photos/biden.jpg\n\
         genuine,obama,photos/obama2.jpg\ngenuine,obama,photos/obama3.jpg\n\
         impostor,collins,photos/astronaut.png\nimpostor,cup,photos/coffee.png\n",
    )
    .unwrap();
    let config = dir.path().join("site.toml");
    std::fs::write(&config, "# our door\n[lock]\ngpio = 22\n").unwrap();
    let out = facegate(&[
        "--config",
        s(&config),
        "calibrate",
        "--open-set",
        s(&csv),
        "--sizes",
        "1,5",
        "--draws",
        "3",
        "--json",
        "--write-config",
        s(&config),
        "--point-sizes",
        "1,2,1000",
        "--write-points",
        s(&dir.path().join("points.toml")),
    ]);
    let text = succeeded(&out);
    let v: Value = serde_json::from_str(&text).unwrap();
    let mut keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "by_size",
            "current",
            "enrol_skipped",
            "enrolled_people",
            "enrolled_photos",
            "enrolled_with_warning",
            "flip",
            "genuine_probes",
            "genuine_without_enrolment",
            "grid",
            "impostor_probes",
            "metric",
            "min_face",
            "model",
            "model_threshold",
            "one_to_one",
            "recommended",
            "seed",
            "sizes",
            "source",
            "target_fmr",
            "target_fpir",
            "unusable_probes"
        ]
    );
    assert_eq!(v["enrolled_people"], 2);
    assert_eq!(
        (v["genuine_probes"].as_u64(), v["impostor_probes"].as_u64()),
        (Some(2), Some(2))
    );
    // The photo without a face is reported, and counted as a rejected stranger.
    let unusable = v["unusable_probes"].as_array().unwrap();
    assert_eq!(unusable.len(), 1, "{unusable:?}");
    assert!(unusable[0]["path"]
        .as_str()
        .unwrap()
        .ends_with("coffee.png"));
    assert_eq!(unusable[0]["role"], "impostor");
    // Size 5 is capped to the 2 enrolled; size 1 is drawn 3 times.
    let sizes = v["sizes"].as_array().unwrap();
    assert_eq!(sizes.len(), 2);
    assert_eq!(
        (sizes[0]["size"].as_u64(), sizes[0]["draws"].as_u64()),
        (Some(1), Some(3))
    );
    assert_eq!(sizes[1]["requested"], 5);
    assert_eq!(sizes[1]["size"], 2);
    assert_eq!(sizes[1]["capped"], true);
    assert_eq!(sizes[1]["genuine_trials"], 2);
    assert_eq!(sizes[1]["impostor_trials"], 2);
    let grid = v["grid"].as_array().unwrap();
    assert!(grid.len() > 10);
    for p in grid {
        assert_eq!(p["rates"].as_array().unwrap().len(), 2);
    }
    // With the shipped defaults, Obama is let in and the astronaut is not.
    let current = &v["current"]["rates"][1];
    assert_eq!(current["fpir"], 0.0, "{current}");
    assert_eq!(current["fnir"], 0.0, "{current}");
    let rec = &v["recommended"];
    assert_eq!(rec["rates"][1]["fpir"], 0.0, "{rec}");
    assert_eq!(rec["rates"][1]["fnir"], 0.0, "{rec}");
    assert_eq!(rec["rates"][1]["fnir_wrong_person"], 0.0);
    // The operating point went into the config, which the daemon accepts, comments and all.
    let written = std::fs::read_to_string(&config).unwrap();
    assert!(written.starts_with("# our door\n"), "{written}");
    let c = facegate::config::Config::load(&config).unwrap();
    assert_eq!(c.lock.gpio, 22);
    let as_f32 = |v: &Value| v.as_f64().unwrap() as f32;
    assert_eq!(c.recognition.threshold, Some(as_f32(&rec["threshold"])));
    assert_eq!(c.recognition.min_margin, Some(as_f32(&rec["min_margin"])));
    // The thresholds by size went into a calibration the door accepts for this model, never
    // looser for a larger gallery.
    let points = std::fs::read_to_string(dir.path().join("points.toml")).unwrap();
    let fingerprint = v["model"].as_str().unwrap();
    let spec = facegate::vision::models::ModelSet::builtin()
        .unwrap()
        .manifest
        .embedders[fingerprint]
        .clone();
    let cal = facegate::access::operating_point::Calibration::parse(&points, &spec.fingerprint)
        .unwrap_or_else(|e| panic!("{e}: {points}"));
    let sizes: Vec<usize> = cal.point.iter().map(|p| p.gallery).collect();
    assert_eq!(sizes, [1, 2, 1000], "{points}");
    assert!(cal
        .point
        .windows(2)
        .all(|w| w[1].threshold <= w[0].threshold));
    assert_eq!(by_size_json(&v).len(), 3);
    // The 1:1 check's threshold (a card or PIN) went in too, inside the calibrated range.
    let one = cal
        .one_to_one
        .unwrap_or_else(|| panic!("no one_to_one: {points}"));
    assert_eq!(one.gallery, 1);
    let json = v["one_to_one"]["threshold"].as_f64().unwrap();
    assert!((one.threshold - json).abs() < 1e-3, "{points}");
    assert!(
        one.threshold
            <= f64::from(facegate::config::max_calibrated_threshold(spec.threshold)) + 1e-4,
        "{points}"
    );

    // Flip augmentation is said in the output and keeps the verdicts on these photos.
    let out = facegate(&[
        "--config",
        s(&config),
        "calibrate",
        "--open-set",
        s(&csv),
        "--sizes",
        "2",
        "--flip",
        "--json",
    ]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["flip"], true);
    assert_eq!(v["current"]["rates"][0]["fnir"], 0.0, "{}", v["current"]);
    assert_eq!(v["current"]["rates"][0]["fpir"], 0.0, "{}", v["current"]);
}

fn by_size_json(v: &Value) -> Vec<Value> {
    v["by_size"].as_array().unwrap().clone()
}

#[test]
fn the_config_names_the_network_the_cli_uses() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[recognition]\nmodels = {:?}\nembedder = \"dlib_resnet_v1_f32\"\n",
            repo_manifest()
        ),
    )
    .unwrap();
    let (a, b) = (fixture("obama.jpg"), fixture("obama3.jpg"));
    let out = facegate(&["--config", s(&config), "verify", "--json", s(&a), s(&b)]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout_lines(&out)[0]["model"], "dlib_resnet_v1_f32");
    // --embedder wins over the config.
    let out = facegate(&[
        "--config",
        s(&config),
        "--embedder",
        "dlib_resnet_v1_int8",
        "verify",
        "--json",
        s(&a),
        s(&b),
    ]);
    assert_eq!(stdout_lines(&out)[0]["model"], "dlib_resnet_v1_int8");
    // A config the daemon would refuse stops the commands that judge, naming the key...
    std::fs::write(&config, "[recognition]\nframes = 1\n").unwrap();
    let out = facegate(&["--config", s(&config), "verify", s(&a), s(&b)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("recognition.frames"));
    // ...but not `embed`, which does not judge.
    let out = facegate(&["--config", s(&config), "embed", s(&a)]);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn calibrate_open_set_holds_out_a_share_of_a_directory_as_strangers() {
    let dir = tempfile::tempdir().unwrap();
    let people = dir.path().join("people");
    for (who, photos) in [
        ("obama", &["obama.jpg", "obama2.jpg", "obama3.jpg"][..]),
        ("biden", &["biden.jpg"]),
        ("collins", &["astronaut.png"]),
    ] {
        std::fs::create_dir_all(people.join(who)).unwrap();
        for p in photos {
            std::fs::copy(fixture(p), people.join(who).join(p)).unwrap();
        }
    }
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "").unwrap();
    let run = |seed: &str| {
        let out = facegate(&[
            "--config",
            s(&config),
            "calibrate",
            "--open-set",
            s(&people),
            "--strangers",
            "0.34",
            "--seed",
            seed,
            "--sizes",
            "3",
            "--json",
        ]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let v = run("1");
    // One person of three is a stranger; the others are enrolled from their first photo.
    assert_eq!(v["enrolled_people"], 2, "{v}");
    let n = |k: &str| v[k].as_u64().unwrap();
    assert_eq!(
        n("enrolled_photos") + n("genuine_probes") + n("impostor_probes"),
        5
    );
    // The same seed, the same split.
    let again = run("1");
    assert_eq!(again["impostor_probes"], v["impostor_probes"]);
    assert_eq!(again["grid"], v["grid"]);
}

#[test]
fn audit_verify_counts_good_lines_and_names_the_first_removed_one() {
    use facegate::records::audit::{AuditLog, AuditSink, Event, EventKind};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    // An old line from before the chain, then a chained run.
    let old = serde_json::to_string(&Event::new(
        EventKind::Stop,
        std::time::SystemTime::UNIX_EPOCH,
        std::time::Duration::ZERO,
    ))
    .unwrap();
    std::fs::write(&path, format!("{old}\n")).unwrap();
    let mut log = AuditLog::open(&path).unwrap();
    for (i, k) in [
        EventKind::Start,
        EventKind::Grant,
        EventKind::Deny,
        EventKind::Stop,
    ]
    .into_iter()
    .enumerate()
    {
        let e = Event::new(
            k,
            std::time::SystemTime::now(),
            std::time::Duration::from_secs(i as u64),
        );
        log.record(&e).unwrap();
    }
    drop(log);
    let out = facegate(&["audit", "verify", s(&path)]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("4 line(s) verified, 1 unchained"), "{text}");
    // Someone removes the grant (line 3 of the file).
    let lines: Vec<String> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let kept: Vec<&String> = lines
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 2)
        .map(|(_, l)| l)
        .collect();
    std::fs::write(
        &path,
        kept.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
    let out = facegate(&["audit", "verify", s(&path)]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("line 3: seq 3 follows seq 1: 1 line(s) removed"),
        "{text}"
    );
    // An unreadable log is an error, not a verdict.
    let out = facegate(&["audit", "verify", "/nonexistent/audit.jsonl"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn identify_refuses_a_face_the_door_would_not_judge_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let (gallery, config) = two_people(dir.path());
    // Obama's other photo, darkened to 12%: found, but too dark to judge at the door.
    let mut img = image::open(fixture("obama2.jpg")).unwrap().to_rgb8();
    for p in img.pixels_mut() {
        for c in p.0.iter_mut() {
            *c = (f32::from(*c) * 0.12) as u8;
        }
    }
    let dark = dir.path().join("dark.png");
    img.save(&dark).unwrap();
    let out = facegate(&[
        "--gallery",
        &gallery,
        "--config",
        &config,
        "identify",
        "--json",
        s(&dark),
    ]);
    let lines = stdout_lines(&out);
    assert_eq!(out.status.code(), Some(1), "{lines:?}");
    assert_eq!(lines[0]["refused"], "poor_quality:too_dark", "{}", lines[0]);
    assert_eq!(lines[0]["id"], Value::Null);
}
