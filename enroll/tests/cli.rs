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
    let int8 = dir.path().join("dlib_resnet_v1_int8.onnx");
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
    assert!(err.contains("dlib_resnet_v1_int8.onnx has sha256"), "{err}");
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
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
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

#[test]
fn audit_verify_counts_good_lines_and_names_the_first_removed_one() {
    use facegate::audit::{AuditLog, AuditSink, Event, EventKind};
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
