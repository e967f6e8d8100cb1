//! `facegate reembed` as an admin runs it: a gallery enrolled with one network moves to another
//! from its face crops, recognition holds, photos without a crop are refused by name, and a
//! crash mid-way leaves the old gallery.

mod common;
use common::{s, text};
use facegate::people::crops::CropStore;
use facegate::people::gallery::{Gallery, Locked};
use facegate::{Embedding, Manifest};
use facegate_e2e::fixture;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn manifest_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/manifest.toml")
}

fn manifest() -> Manifest {
    Manifest::parse(&std::fs::read_to_string(manifest_path()).unwrap(), "test").unwrap()
}

/// `facegate --gallery G --models <repo manifest> ARGS`.
fn command(gallery: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_facegate"));
    c.arg("--gallery")
        .arg(gallery)
        .arg("--models")
        .arg(manifest_path())
        .args(args);
    c
}

fn facegate(gallery: &Path, args: &[&str]) -> Output {
    command(gallery, args).output().unwrap()
}

fn enrol(g: &Path, name: &str, photos: &[&str]) {
    let mut args = vec!["enroll", "--name", name];
    let paths: Vec<PathBuf> = photos.iter().map(|p| fixture(p)).collect();
    args.extend(paths.iter().map(|p| s(p)));
    let out = facegate(g, &args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// Every crop the gallery refers to can be read back (hash checked).
fn crops_intact(g: &Gallery, path: &Path) -> bool {
    let store = CropStore::for_gallery(path);
    g.people
        .iter()
        .flat_map(|p| &p.enrolments)
        .all(|e| e.crop.as_ref().is_some_and(|c| store.get(c).is_ok()))
}

/// The embedding the network `embedder` gives the main face of `photo` directly.
fn embed_photo(embedder: &str, photo: &Path) -> Embedding {
    let out = facegate(
        Path::new("/nonexistent"),
        &["--embedder", embedder, "embed", s(photo)],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    Embedding(
        v["faces"][0]["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect(),
    )
}

#[test]
fn reembed_moves_the_gallery_to_another_network_and_recognition_holds() {
    let dir = tempfile::tempdir().unwrap();
    let g = dir.path().join("gallery.toml");
    let m = manifest();
    enrol(&g, "Barack Obama", &["obama.jpg"]);
    enrol(&g, "Joe Biden", &["biden.jpg"]);
    let enrolled = Gallery::load(&g, &m.embedders[&m.default_embedder].fingerprint).unwrap();
    assert!(
        crops_intact(&enrolled, &g),
        "enrolment keeps a crop per photo"
    );

    let mut targets = vec!["dlib_resnet_v1_f32".to_owned()];
    let sface: Vec<String> = m
        .embedders
        .keys()
        // The gallery starts on the default network: move it to every other one.
        .filter(|k| k.starts_with("sface_") && **k != m.default_embedder)
        .cloned()
        .collect();
    if sface.is_empty() {
        println!("skipping SFace: models/manifest.toml has no sface_* embedder yet");
    }
    targets.extend(sface);
    let mut before = enrolled;
    for target in &targets {
        let spec = &m.embedders[target];
        let out = facegate(&g, &["--embedder", target, "reembed", "--json"]);
        assert_eq!(out.status.code(), Some(0), "{target}: {}", text(&out));
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            summary["changed"] == true && summary["people"] == 2 && summary["photos"] == 2,
            "{summary}"
        );
        let after = Gallery::load(&g, &spec.fingerprint).unwrap();
        // Same people, photos and crops; new embeddings of the new network's length.
        for (a, b) in before.people.iter().zip(&after.people) {
            assert_eq!((&a.id, &a.name), (&b.id, &b.name));
            for (x, y) in a.enrolments.iter().zip(&b.enrolments) {
                assert_eq!(
                    (&x.source, &x.sha256, &x.crop),
                    (&y.source, &y.sha256, &y.crop)
                );
                assert_ne!(x.embedding, y.embedding, "{target}: not re-embedded");
                assert_eq!(y.embedding.len(), spec.dim);
            }
        }
        assert!(crops_intact(&after, &g));
        // From the crop, about what enrolling the photo again with this network would give.
        let fresh = embed_photo(target, &fixture("obama.jpg"));
        let drift = fresh.distance(
            &Embedding(after.people[0].enrolments[0].embedding.clone()),
            spec.metric,
        );
        println!(
            "{target}: crop vs photo embedding of obama.jpg: distance {drift:.3} (threshold {:.3})",
            spec.threshold
        );
        assert!(drift < spec.threshold / 3.0, "{target}: drift {drift}");

        let emb = ["--embedder", target.as_str()];
        for photo in ["obama2.jpg", "obama3.jpg"] {
            let out = facegate(&g, &[&emb[..], &["identify", s(&fixture(photo))]].concat());
            assert_eq!(
                out.status.code(),
                Some(0),
                "{target} {photo}: {}",
                text(&out)
            );
            assert!(
                text(&out).contains("Barack Obama (id barack-obama)"),
                "{}",
                text(&out)
            );
        }
        let out = facegate(
            &g,
            &[&emb[..], &["identify", s(&fixture("astronaut.png"))]].concat(),
        );
        assert_eq!(
            out.status.code(),
            Some(1),
            "{target}: a stranger: {}",
            text(&out)
        );
        assert!(text(&out).contains("unknown"), "{}", text(&out));
        before = after;
    }
    // The previous network now refuses the gallery, and says how to move it back.
    let out = facegate(&g, &["list"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("facegate reembed"), "{}", text(&out));
    // Already there: nothing to do, nothing written.
    let bytes = std::fs::read(&g).unwrap();
    let last = targets.last().unwrap();
    let out = facegate(&g, &["--embedder", last, "reembed"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("nothing to do"), "{}", text(&out));
    assert_eq!(std::fs::read(&g).unwrap(), bytes);
}

#[test]
fn reembed_refuses_photos_without_a_crop_by_name_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let g = dir.path().join("gallery.toml");
    let m = manifest();
    let fingerprint = &m.embedders[&m.default_embedder].fingerprint;
    enrol(&g, "Barack Obama", &["obama.jpg"]);
    enrol(&g, "Joe Biden", &["biden.jpg"]);
    // Biden as if enrolled by an older facegate: no crop.
    {
        let lock = Locked::acquire(&g).unwrap();
        let mut gallery = lock.load(fingerprint).unwrap();
        gallery.get_mut("joe-biden").unwrap().enrolments[0].crop = None;
        lock.save(&gallery).unwrap();
    }
    let bytes = std::fs::read(&g).unwrap();
    let crops = std::fs::read_dir(CropStore::for_gallery(&g).dir())
        .unwrap()
        .count();
    assert_eq!(crops, 1, "Biden's crop was deleted with its reference");
    let out = facegate(&g, &["--embedder", "dlib_resnet_v1_f32", "reembed"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let msg = text(&out);
    assert!(
        msg.contains("joe-biden (biden.jpg)")
            && msg.contains("re-enrol")
            && !msg.contains("barack-obama"),
        "{msg}"
    );
    assert_eq!(std::fs::read(&g).unwrap(), bytes, "nothing written");
    assert_eq!(
        std::fs::read_dir(CropStore::for_gallery(&g).dir())
            .unwrap()
            .count(),
        1
    );
    // `show` tells the admin beforehand.
    let out = facegate(&g, &["show", "joe-biden"]);
    assert!(text(&out).contains("no face crop"), "{}", text(&out));

    // A gallery written before crops existed (format 1) still loads, and is refused the same way.
    let old = dir.path().join("old.toml");
    std::fs::write(
        &old,
        format!(
            "format = 1\nmodel = \"{fingerprint}\"\n[[person]]\nid = \"ada\"\nname = \"Ada\"\n\
             enrolments = [{{ enrolled_at = \"x\", source = \"ada.jpg\", sha256 = \"h\", embedding = \"AACAPw==\" }}]\n"
        ),
    )
    .unwrap();
    assert_eq!(facegate(&old, &["list"]).status.code(), Some(0));
    let out = facegate(&old, &["--embedder", "dlib_resnet_v1_f32", "reembed"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("ada (ada.jpg)"), "{}", text(&out));
}

#[test]
fn a_crash_during_reembed_leaves_the_old_or_the_new_gallery() {
    let dir = tempfile::tempdir().unwrap();
    let g = dir.path().join("gallery.toml");
    let m = manifest();
    let (old_fp, new_fp) = (
        &m.embedders[&m.default_embedder].fingerprint,
        &m.embedders["dlib_resnet_v1_f32"].fingerprint,
    );
    enrol(
        &g,
        "Barack Obama",
        &["obama.jpg", "obama2.jpg", "obama3.jpg"],
    );
    enrol(&g, "Joe Biden", &["biden.jpg"]);
    let old_bytes = std::fs::read(&g).unwrap();
    let old = Gallery::load(&g, old_fp).unwrap();
    // The uninterrupted run: how long it takes, and what it writes.
    let reembed = || command(&g, &["--embedder", "dlib_resnet_v1_f32", "reembed"]);
    let t0 = std::time::Instant::now();
    assert!(reembed().output().unwrap().status.success());
    let full = t0.elapsed();
    let new = Gallery::load(&g, new_fp).unwrap();
    let mut outcomes = [0usize; 2];
    for round in 0..10u32 {
        std::fs::write(&g, &old_bytes).unwrap();
        let mut child = reembed()
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(full * round / 8);
        child.kill().unwrap(); // SIGKILL: no cleanup
        child.wait().unwrap();
        let now = Gallery::load_any_model(&g)
            .unwrap_or_else(|e| panic!("round {round}: torn gallery: {e}"))
            .unwrap();
        if now.model == *old_fp {
            assert_eq!(std::fs::read(&g).unwrap(), old_bytes, "round {round}");
            assert_eq!(now, old);
            outcomes[0] += 1;
        } else {
            assert_eq!(
                now, new,
                "round {round}: neither the old nor the new gallery"
            );
            outcomes[1] += 1;
        }
        assert!(crops_intact(&now, &g), "round {round}: a crop is missing");
    }
    println!(
        "old gallery after {} kills, new after {} (run {full:?})",
        outcomes[0], outcomes[1]
    );
    assert!(
        outcomes[0] > 0,
        "no kill landed before the write: the test proved nothing"
    );
}
