//! Tests of `gallery`.

use super::*;
use std::os::unix::fs::PermissionsExt;

const MODEL: &str = "test-model/0123";

fn emb(seed: u32) -> Vec<f32> {
    (0..128)
        .map(|j| ((seed * 7919 + j * 104_729) % 1000) as f32 / 1000.0 - 0.5)
        .collect()
}

fn person(g: &Gallery, name: &str, seeds: &[u32]) -> Person {
    Person {
        policy: Default::default(),
        id: g.new_id(name),
        name: name.into(),
        enrolments: seeds
            .iter()
            .map(|&s| Enrolment {
                enrolled_at: "2026-11-28T00:00:00Z".into(),
                source: format!("{s}.jpg"),
                sha256: "00".repeat(32),
                embedding: emb(s),
                crop: None,
            })
            .collect(),
        credential: None,
        pin_hash: None,
        duress_hash: None,
    }
}

fn sample(n: usize) -> Gallery {
    let mut g = Gallery::new(MODEL);
    for i in 0..n {
        let p = person(
            &g,
            &format!("Person {i}"),
            &[i as u32 * 3, i as u32 * 3 + 1],
        );
        g.people.push(p);
    }
    g
}

#[test]
fn save_and_load_round_trip_with_private_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gallery.toml");
    let g = sample(3);
    Locked::acquire(&path).unwrap().save(&g).unwrap();
    assert_eq!(Gallery::load(&path, MODEL).unwrap(), g);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "biometric data must not be world-readable");
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn a_missing_file_is_an_empty_gallery() {
    let dir = tempfile::tempdir().unwrap();
    assert!(Gallery::load(&dir.path().join("none.toml"), MODEL)
        .unwrap()
        .people
        .is_empty());
}

#[test]
fn another_models_gallery_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.toml");
    Locked::acquire(&path).unwrap().save(&sample(1)).unwrap();
    let err = Gallery::load(&path, "other-model/999").unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, GalleryError::ModelMismatch { .. }));
    assert!(
        msg.contains("test-model/0123") && msg.contains("re-enrol"),
        "{msg}"
    );
}

#[test]
fn malformed_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.toml");
    for text in [
        "this is not toml [",
        "format = 1\nmodel = \"test-model/0123\"\nunknown = 3\n",
        "format = 3\nmodel = \"test-model/0123\"\n",
        "format = 2\nmodel = \"test-model/0123\"\n[[person]]\nid = \"a\"\nname = \"A\"\nenrolments = [{ enrolled_at = \"x\", source = \"s\", sha256 = \"h\", embedding = \"AACAPw==\", crop = \"../../etc/passwd:AACAPwAAgD8AAIA/AACAPwAAgD8AAIA/AACAPwAAgD8AAIA/AACAPw==\" }]\n",
        "format = 1\nmodel = \"test-model/0123\"\n[[person]]\nid = \"a\"\nname = \"A\"\nenrolments = [{ enrolled_at = \"x\", source = \"s\", sha256 = \"h\", embedding = \"AACAPw==\" }, { enrolled_at = \"x\", source = \"s\", sha256 = \"h\", embedding = \"AACAPwAAAEA=\" }]\n",
        "format = 1\nmodel = \"test-model/0123\"\n[[person]]\nid = \"../etc\"\nname = \"A\"\nenrolments = []\n",
    ] {
        std::fs::write(&path, text).unwrap();
        assert!(matches!(Gallery::load(&path, MODEL), Err(GalleryError::Parse { .. })), "accepted: {text}");
    }
}

#[test]
fn an_empty_embedding_is_refused_and_a_zero_length_index_finds_no_one() {
    // Found by fuzzing (fuzz/regressions/gallery/): `embedding = ""` was accepted, and
    // searching the zero-length index panicked.
    let text = format!(
        "format = 2\nmodel = \"{MODEL}\"\n[[person]]\nid = \"ada\"\nname = \"Ada\"\n\
         [[person.enrolments]]\nenrolled_at = \"2026-01-02T03:04:05Z\"\nsource = \"a.jpg\"\n\
         sha256 = \"{}\"\nembedding = \"\"\n",
        "ab".repeat(32)
    );
    let err = Gallery::parse(&text, Path::new("g.toml"), MODEL).unwrap_err();
    assert!(err.to_string().contains("empty embedding"), "{err}");
    let mut g = sample(2);
    for e in g.people.iter_mut().flat_map(|p| &mut p.enrolments) {
        e.embedding.clear();
    }
    for scoring in [Scoring::EUCLIDEAN, Scoring::COSINE] {
        assert!(g.index(scoring).best(&Embedding(Vec::new())).is_none());
    }
}

#[test]
fn best_match_reports_distance_and_margin_over_the_next_person() {
    let mut g = Gallery::new(MODEL);
    let a = person(&g, "Ada", &[1, 2]);
    g.people.push(a);
    let b = person(&g, "Bob", &[50]);
    g.people.push(b);
    let index = g.index(Scoring::EUCLIDEAN);
    assert_eq!(index.len(), 3);
    let q = Embedding(emb(2));
    let m = index.best(&q).unwrap();
    assert_eq!(g.people[m.person].name, "Ada");
    assert!(m.distance < 1e-6);
    let to_bob = q.distance(&Embedding(emb(50)), Metric::Euclidean);
    assert!(
        (m.margin - to_bob).abs() < 1e-4,
        "margin {} vs {to_bob}",
        m.margin
    );
    // Ada's other photo is not the runner-up: the margin is over another person.
    let to_ada_other = q.distance(&Embedding(emb(1)), Metric::Euclidean);
    assert!(
        (to_ada_other - to_bob).abs() > 1e-3,
        "test embeddings must differ"
    );
    assert!(Gallery::new(MODEL)
        .index(Scoring::EUCLIDEAN)
        .best(&q)
        .is_none());
    assert!(index.best(&Embedding(vec![0.0; 3])).is_none());
}

/// The nearest person and margin by brute force: every enrolment, exact distances.
fn brute_force(g: &Gallery, q: &Embedding, metric: Metric) -> (Vec<f32>, usize, f32, f32) {
    let per: Vec<f32> = g
        .people
        .iter()
        .map(|p| {
            p.enrolments
                .iter()
                .map(|e| q.distance(&Embedding(e.embedding.clone()), metric))
                .fold(f32::INFINITY, f32::min)
        })
        .collect();
    let first = (0..per.len())
        .min_by(|&a, &b| per[a].total_cmp(&per[b]))
        .unwrap();
    let second = (0..per.len())
        .filter(|&i| i != first)
        .map(|i| per[i])
        .fold(f32::INFINITY, f32::min);
    let d1 = per[first];
    (per, first, d1, second)
}

#[test]
fn the_two_pass_search_is_exact_for_both_metrics() {
    let g = sample(300);
    for scoring in [Scoring::EUCLIDEAN, Scoring::COSINE] {
        let index = g.index(scoring);
        assert_eq!(index.scoring(), scoring);
        for s in 0..200u32 {
            let q = Embedding(emb(s * 13 + 5).iter().map(|v| v * 0.97 + 0.001).collect());
            let (per, first, d1, d2) = brute_force(&g, &q, scoring.metric);
            let m = index.best(&q).unwrap();
            // Rounding may reorder an exact tie, never anything farther apart.
            assert!(
                m.person == first || (per[m.person] - d1).abs() < 1e-5,
                "{scoring:?}: {m:?}, brute force person {first} at {d1}"
            );
            assert!(
                (m.distance - d1).abs() < 1e-4 && (m.margin - (d2 - d1)).abs() < 1e-4,
                "{scoring:?}: {m:?} vs {d1} {d2}"
            );
        }
    }
}

#[test]
fn cosine_matching_ignores_length_and_reports_cosine_distance() {
    // Stored embeddings stay as the network gave them (any length); the index normalises.
    let mut g = sample(50);
    for (k, p) in g.people.iter_mut().enumerate() {
        for e in &mut p.enrolments {
            e.embedding.iter_mut().for_each(|v| *v *= 1.0 + k as f32);
        }
    }
    let stored = g.clone();
    let index = g.index(Scoring::COSINE);
    assert_eq!(g, stored, "indexing must not change the gallery");
    // A longer copy of person 7's second photo: cosine distance 0, far in Euclidean terms.
    let q = Embedding(
        g.people[7].enrolments[1]
            .embedding
            .iter()
            .map(|v| v * 3.0)
            .collect(),
    );
    let m = index.best(&q).unwrap();
    assert_eq!(m.person, 7);
    assert!(m.distance.abs() < 1e-5, "{m:?}");
    let (_, _, _, d2) = brute_force(&g, &q, Metric::Cosine);
    assert!((m.margin - d2).abs() < 1e-4, "{m:?} vs {d2}");
    let e = g.index(Scoring::EUCLIDEAN).best(&q).unwrap();
    assert!(e.distance > 1.0, "Euclidean sees the length: {e:?}");
    // Orthogonal is 1, opposite is 2; a query without direction matches no one.
    let mut h = Gallery::new(MODEL);
    h.people.push(Person {
        policy: Default::default(),
        id: "x".into(),
        name: "X".into(),
        enrolments: vec![Enrolment {
            embedding: vec![2.0, 0.0],
            ..sample(1).people[0].enrolments[0].clone()
        }],
        credential: None,
        pin_hash: None,
        duress_hash: None,
    });
    let hi = h.index(Scoring::COSINE);
    let d = |v: Vec<f32>| hi.best(&Embedding(v)).map(|m| m.distance);
    assert!((d(vec![0.0, 5.0]).unwrap() - 1.0).abs() < 1e-6);
    assert!((d(vec![-1.0, 0.0]).unwrap() - 2.0).abs() < 1e-6);
    assert_eq!(d(vec![0.0, 0.0]), None);
    assert_eq!(d(vec![f32::NAN, 1.0]), None);
    assert_eq!(
        h.index(Scoring::EUCLIDEAN)
            .best(&Embedding(vec![f32::NAN, 1.0])),
        None
    );
}

#[test]
fn ids_are_unique_and_safe() {
    let mut g = Gallery::new(MODEL);
    assert_eq!(g.new_id("Ada Lovelace"), "ada-lovelace");
    let p = person(&g, "Ada Lovelace", &[1]);
    g.people.push(p);
    assert_eq!(g.new_id("Ada  Lovelace!"), "ada-lovelace-2");
    assert_eq!(g.new_id("李"), "person");
    assert!(
        validate_id("../x").is_err()
            && validate_id("").is_err()
            && validate_id("ok_id-1.2").is_ok()
    );
}

#[test]
fn concurrent_writers_do_not_lose_updates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.toml");
    let threads: Vec<_> = (0..2)
        .map(|t| {
            let path = path.clone();
            std::thread::spawn(move || {
                for i in 0..15 {
                    let lock = Locked::acquire(&path).unwrap();
                    let mut g = lock.load(MODEL).unwrap();
                    let p = person(&g, &format!("t{t} p{i}"), &[t * 100 + i]);
                    g.people.push(p);
                    lock.save(&g).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(Gallery::load(&path, MODEL).unwrap().people.len(), 30);
}

/// Child side of the crash test: rewrites the gallery forever (until killed).
#[test]
fn crash_writer_child() {
    let Some(path) = std::env::var_os("FACEGATE_CRASH_WRITER") else {
        return;
    };
    let path = PathBuf::from(path);
    let crops = crops(16);
    let (small, large) = (with_crops(40, &crops[..8]), with_crops(80, &crops));
    println!("ready");
    for i in 0.. {
        let lock = Locked::acquire(&path).unwrap();
        lock.save_with_crops(if i % 2 == 0 { &small } else { &large }, &crops)
            .unwrap();
    }
}

/// `n` distinct encoded crops.
fn crops(n: usize) -> Vec<EncodedCrop> {
    (0..n)
        .map(|i| {
            let image = image::RgbImage::from_fn(
                crate::people::crops::CROP_SIZE,
                crate::people::crops::CROP_SIZE,
                |x, y| image::Rgb([i as u8, (x * y % 256) as u8, 7]),
            );
            let c = crate::people::crops::FaceCrop {
                image,
                landmarks: crate::people::crops::CROP_TEMPLATE,
            };
            c.encode().unwrap()
        })
        .collect()
}

/// `sample(n)` whose people's first photos refer to the first `n` of `crops`.
fn with_crops(n: usize, crops: &[EncodedCrop]) -> Gallery {
    let mut g = sample(n);
    for (p, c) in g.people.iter_mut().zip(crops) {
        p.enrolments[0].crop = Some(c.reference.clone());
    }
    g
}

/// Whether every crop `g` refers to is in the store of the gallery at `path`.
fn crops_present(g: &Gallery, path: &Path) -> bool {
    let store = CropStore::for_gallery(path);
    g.people
        .iter()
        .flat_map(|p| &p.enrolments)
        .filter_map(|e| e.crop.as_ref())
        .all(|c| store.get(c).is_ok())
}

#[test]
fn crops_are_written_before_the_gallery_and_deleted_with_their_entry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gallery.toml");
    let lock = Locked::acquire(&path).unwrap();
    let c = crops(3);
    let mut g = with_crops(3, &c);
    lock.save_with_crops(&g, &c).unwrap();
    assert_eq!(Gallery::load(&path, MODEL).unwrap(), g);
    assert!(crops_present(&g, &path));
    let store = lock.crops();
    let files = || std::fs::read_dir(store.dir()).unwrap().count();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(files(), 3);
    assert_eq!(mode(store.dir()), 0o700);
    for e in std::fs::read_dir(store.dir()).unwrap() {
        assert_eq!(mode(&e.unwrap().path()), 0o600, "biometric data");
    }
    // Removing a person deletes their face; an interrupted write's leftovers go too.
    std::fs::write(store.dir().join(".gallery-tmp123"), b"partial").unwrap();
    let gone = g.remove("person-1").unwrap();
    lock.save(&g).unwrap();
    assert_eq!(files(), 2);
    let gone = gone.enrolments[0].crop.clone().unwrap();
    assert!(store.get(&gone).is_err());
    assert!(crops_present(&g, &path));
    // Crops not referenced by the saved gallery are not kept.
    lock.save_with_crops(&g, &crops(5)[3..]).unwrap();
    assert_eq!(files(), 2);
}

#[test]
fn format_1_galleries_load_and_are_saved_as_format_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.toml");
    std::fs::write(
        &path,
        "format = 1\nmodel = \"test-model/0123\"\n[[person]]\nid = \"a\"\nname = \"A\"\n\
         enrolments = [{ enrolled_at = \"x\", source = \"s\", sha256 = \"h\", embedding = \"AACAPw==\" }]\n",
    )
    .unwrap();
    let g = Gallery::load(&path, MODEL).unwrap();
    assert_eq!(g.people[0].enrolments[0].embedding, vec![1.0]);
    assert_eq!(
        g.people[0].enrolments[0].crop, None,
        "no crop: cannot be re-embedded"
    );
    Locked::acquire(&path).unwrap().save(&g).unwrap();
    assert!(std::fs::read_to_string(&path)
        .unwrap()
        .starts_with("format = 2\n"));
    assert_eq!(Gallery::load(&path, MODEL).unwrap(), g);
    assert_eq!(
        Gallery::load_any_model(&path).unwrap().unwrap().model,
        MODEL,
        "loads whatever its model"
    );
    assert!(Gallery::load_any_model(&dir.path().join("none"))
        .unwrap()
        .is_none());
}

#[test]
fn a_crash_at_any_moment_leaves_an_old_or_new_gallery() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.toml");
    // The large gallery refers to 8 crops more than the small one: each write adds or
    // deletes some.
    let crops = crops(16);
    let (small, large) = (with_crops(40, &crops[..8]), with_crops(80, &crops));
    Locked::acquire(&path)
        .unwrap()
        .save_with_crops(&small, &crops[..8])
        .unwrap();
    for round in 0..12u64 {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "people::gallery::tests::crash_writer_child",
                "--nocapture",
            ])
            .env("FACEGATE_CRASH_WRITER", &path)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Killed while writing, not while still making its crops.
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while !line.starts_with("ready") {
            line.clear();
            assert!(std::io::BufRead::read_line(&mut out, &mut line).unwrap() > 0);
        }
        std::thread::sleep(std::time::Duration::from_millis(30 + round * 17 % 50));
        child.kill().unwrap(); // SIGKILL: no destructor, no cleanup
        child.wait().unwrap();
        let g = Gallery::load(&path, MODEL)
            .unwrap_or_else(|e| panic!("round {round}: torn gallery: {e}"));
        assert!(
            g == small || g == large,
            "round {round}: neither the old nor the new gallery"
        );
        assert!(
            crops_present(&g, &path),
            "round {round}: the gallery refers to a crop that is not there"
        );
    }
}

#[test]
fn reloader_follows_changes_and_keeps_the_last_good_gallery() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.toml");
    Locked::acquire(&path).unwrap().save(&sample(2)).unwrap();
    let mut r = Reloader::new(&path, MODEL, Scoring::EUCLIDEAN).unwrap();
    assert_eq!(r.gallery().people.len(), 2);
    assert!(!r.poll(false).unwrap(), "nothing changed");

    Locked::acquire(&path).unwrap().save(&sample(5)).unwrap();
    assert!(r.poll(false).unwrap());
    assert_eq!((r.gallery().people.len(), r.index().len()), (5, 10));

    std::fs::write(&path, "garbage [").unwrap();
    assert!(r.poll(false).is_err());
    assert_eq!(
        r.gallery().people.len(),
        5,
        "the last good gallery stays in use"
    );
    assert!(
        !r.poll(false).unwrap(),
        "a refused file is not retried until it changes"
    );

    Locked::acquire(&path).unwrap().save(&sample(1)).unwrap();
    assert!(r.poll(false).unwrap());
    assert_eq!(r.gallery().people.len(), 1);
    assert!(r.poll(true).unwrap(), "forced reload (SIGHUP)");
}

#[test]
fn credentials_round_trip_and_one_card_is_one_person() {
    use crate::people::credential::Credential;
    let mut g = sample(2);
    assert!(
        g.people.iter().all(|p| p.credential.is_none()),
        "old people have none"
    );
    let c = Credential::Wiegand26 {
        facility: 12,
        card: 3456,
    };
    g.people[0].credential = Some(c);
    let text = toml::to_string(&g).unwrap();
    let back = Gallery::parse(&text, Path::new("g"), MODEL).unwrap();
    assert_eq!(back.people[0].credential, Some(c));
    assert_eq!(back.people[1].credential, None);
    g.people[1].credential = Some(c);
    let err = Gallery::parse(&toml::to_string(&g).unwrap(), Path::new("g"), MODEL)
        .unwrap_err()
        .to_string();
    assert!(err.contains("same credential"), "{err}");
    g.people[1].credential = Some(Credential::Raw { bits: 4, value: 99 });
    let err = Gallery::parse(&toml::to_string(&g).unwrap(), Path::new("g"), MODEL)
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not fit"), "{err}");
}

/// The 1:1 check of a claim gives the distance to the claimed person's nearest enrolment, the
/// same as a search would find for them; `within` lists the nearest people under a threshold,
/// nearest first, at most k.
#[test]
fn a_one_to_one_check_and_the_nearest_few_agree_with_the_search() {
    for scoring in [Scoring::EUCLIDEAN, Scoring::COSINE] {
        let g = sample(20);
        let index = g.index(scoring);
        // Close to person 7's second photo.
        let mut q = emb(7 * 3 + 1);
        q[0] += 0.01;
        let q = Embedding(q);
        let best = index.best(&q).unwrap();
        assert_eq!(best.person, 7);
        let d = index.distance_to(7, &q).unwrap();
        assert!((d - best.distance).abs() < 1e-5, "{d} vs {}", best.distance);
        // Another person is farther, by at least the margin.
        assert!(index.distance_to(8, &q).unwrap() >= best.distance + best.margin - 1e-5);
        assert_eq!(index.distance_to(99, &q), None, "no such person");
        assert_eq!(index.distance_to(7, &Embedding(vec![0.0; 3])), None);
        let near = index.within(&q, f32::INFINITY, 3);
        assert_eq!(near.len(), 3);
        assert_eq!(near[0].0, 7);
        assert!(near[0].1 <= near[1].1 && near[1].1 <= near[2].1);
        assert!(index.within(&q, best.distance / 2.0, 3).is_empty());
        assert_eq!(index.within(&q, best.distance + 1e-4, 3).len(), 1);
    }
}

/// Several photos of a person are each their own row (the rule kept after measuring the mean
/// template against it on lfw_dev: docs/administering.md#photos-per-person): a person's distance
/// is their nearest photo's, so adding a photo never makes anyone farther from the door, and a
/// face like one of their photos is at that photo's distance, not at a blend of them.
#[test]
fn each_photo_is_its_own_row_and_another_photo_never_makes_a_person_farther() {
    let scoring = Scoring::COSINE;
    let mut one = Gallery::new(MODEL);
    let p = person(&one, "Ada", &[1]);
    one.people.push(p);
    let p = person(&one, "Bob", &[50]);
    one.people.push(p);
    let mut two = one.clone();
    let second = person(&two, "x", &[2]).enrolments;
    two.people[0].enrolments.extend(second);
    let (i1, i2) = (one.index(scoring), two.index(scoring));
    assert_eq!((i1.len(), i2.len()), (2, 3), "one row per enrolment");
    for seed in 0..40 {
        let q = Embedding(emb(seed + 100));
        let (d1, d2) = (
            i1.distance_to(0, &q).unwrap(),
            i2.distance_to(0, &q).unwrap(),
        );
        let to_second = q.distance(&Embedding(emb(2)), Metric::Cosine);
        assert!(d2 <= d1 + 1e-6, "farther with another photo: {d1} -> {d2}");
        assert!(
            (d2 - d1.min(to_second)).abs() < 1e-5,
            "the nearest photo's distance"
        );
    }
    // A face identical to the second photo is at distance 0 (a mean template would not be).
    let m = i2.best(&Embedding(emb(2))).unwrap();
    assert_eq!(m.person, 0);
    assert!(m.distance < 1e-6, "{}", m.distance);
    // The margin is to the second-nearest *person*: Ada's first photo is not her runner-up.
    let to_bob = Embedding(emb(2)).distance(&Embedding(emb(50)), Metric::Cosine);
    assert!((m.margin - to_bob).abs() < 1e-4, "{} vs {to_bob}", m.margin);
}
