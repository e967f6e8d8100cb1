//! The face pipeline on real photos: what a user relies on when enrolling and at the door.

use facegate::access::acceptance::QualityIssue;
use facegate::access::enrolment::{enrol_photo, enrolment_quality, EnrolError};
use facegate::vision::quality::{measure, QualityParams};
use facegate::{decode_file, Embedding, Face, ModelSet, Pipeline};
use facegate_e2e::{degraded, fixture, side_by_side};
use std::path::{Path, PathBuf};

fn builtin() -> Pipeline {
    Pipeline::new(&ModelSet::builtin().unwrap(), None, None).unwrap()
}

fn repo_models() -> ModelSet {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/manifest.toml");
    ModelSet::from_manifest(&manifest).unwrap()
}

fn faces(p: &mut Pipeline, name: &str) -> Vec<Face> {
    let img = decode_file(&fixture(name)).unwrap();
    p.faces(&img).unwrap()
}

fn one_face(p: &mut Pipeline, name: &str) -> Embedding {
    let f = faces(p, name);
    assert_eq!(f.len(), 1, "{name}: expected one face, found {}", f.len());
    f[0].embedding.clone()
}

const OBAMAS: [&str; 4] = ["obama.jpg", "obama2.jpg", "obama3.jpg", "32bit.png"];

#[test]
fn same_person_is_accepted_and_different_people_rejected() {
    let mut p = builtin();
    let threshold = p.embedder_spec().threshold;
    let obamas: Vec<Embedding> = OBAMAS.iter().map(|n| one_face(&mut p, n)).collect();
    let biden = one_face(&mut p, "biden.jpg");
    for (i, a) in obamas.iter().enumerate() {
        for b in &obamas[i + 1..] {
            let d = p.distance(a, b);
            assert!(
                d < threshold,
                "two photos of Obama at distance {d} >= threshold {threshold}"
            );
        }
        let d = p.distance(a, &biden);
        assert!(
            d > threshold,
            "{} and Biden at distance {d} <= threshold {threshold}",
            OBAMAS[i]
        );
    }
}

#[test]
fn images_without_a_face_give_no_face() {
    let mut p = builtin();
    for name in ["coffee.png", "rocket.jpg", "chelsea.png"] {
        let found = faces(&mut p, name);
        assert!(
            found.is_empty(),
            "{name}: expected no face, found {:?}",
            found.iter().map(|f| f.detection.bbox).collect::<Vec<_>>()
        );
    }
}

#[test]
fn both_faces_of_a_two_person_image_are_found_and_recognised() {
    let mut p = builtin();
    let threshold = p.embedder_spec().threshold;
    let obama = decode_file(&fixture("obama.jpg")).unwrap();
    let biden = decode_file(&fixture("biden.jpg")).unwrap();
    let both = side_by_side(&obama, &biden, 600);
    let found = p.faces(&both).unwrap();
    assert_eq!(found.len(), 2, "expected two faces, found {}", found.len());
    let alone = [one_face(&mut p, "obama.jpg"), one_face(&mut p, "biden.jpg")];
    // Left face is Obama, right face is Biden.
    let (left, right) = if found[0].detection.bbox.x < found[1].detection.bbox.x {
        (0, 1)
    } else {
        (1, 0)
    };
    assert!(p.distance(&found[left].embedding, &alone[0]) < threshold);
    assert!(p.distance(&found[right].embedding, &alone[1]) < threshold);
    assert!(p.distance(&found[left].embedding, &alone[1]) > threshold);
}

#[test]
fn a_face_cut_by_the_image_edge_is_still_found() {
    let mut p = builtin();
    let threshold = p.embedder_spec().threshold;
    let whole = one_face(&mut p, "obama.jpg");
    for name in ["obama_partial_face.jpg", "obama_partial_face2.jpg"] {
        let found = faces(&mut p, name);
        assert_eq!(
            found.len(),
            1,
            "{name}: expected one face, found {}",
            found.len()
        );
        let img = decode_file(&fixture(name)).unwrap();
        let b = found[0].detection.bbox;
        let (w, h) = (img.width() as f32, img.height() as f32);
        // The box runs past the image edge where the face is cut, instead of being squeezed in.
        assert!(
            b.x < 0.0 || b.y < 0.0 || b.x + b.w > w || b.y + b.h > h,
            "{name}: box {b:?} inside {w}x{h}"
        );
        let d = p.distance(&found[0].embedding, &whole);
        assert!(d < threshold, "{name}: the cut face is {d} from Obama");
    }
}

#[test]
fn an_rgba_png_is_read_like_its_rgb_original() {
    let mut p = builtin();
    let rgba = one_face(&mut p, "32bit.png");
    let rgb = one_face(&mut p, "obama2.jpg");
    let d = p.distance(&rgba, &rgb);
    assert!(
        d < 0.2,
        "32bit.png is an RGBA copy of obama2.jpg, yet at distance {d}"
    );
}

#[test]
fn exif_orientation_is_applied() {
    let src = std::fs::read(fixture("obama.jpg")).unwrap();
    let upright = facegate::decode_bytes(&src).unwrap();
    // Store the photo rotated by 90 degrees with an EXIF tag saying "rotate 90 CW to view".
    let stored = image::imageops::rotate270(&upright);
    let mut jpeg = Vec::new();
    let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95);
    let exif = [
        b'M', b'M', 0, 42, 0, 0, 0, 8, // TIFF header, IFD at offset 8
        0, 1, // one entry
        0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, // Orientation (SHORT) = 6
        0, 0, 0, 0, // no next IFD
    ];
    image::ImageEncoder::write_image(
        {
            image::ImageEncoder::set_exif_metadata(&mut enc, exif.to_vec()).unwrap();
            enc
        },
        stored.as_raw(),
        stored.width(),
        stored.height(),
        image::ExtendedColorType::Rgb8,
    )
    .unwrap();
    let decoded = facegate::decode_bytes(&jpeg).unwrap();
    assert_eq!(
        decoded.dimensions(),
        upright.dimensions(),
        "orientation not applied"
    );
    let mut p = builtin();
    let a = p.faces(&upright).unwrap();
    let b = p.faces(&decoded).unwrap();
    assert_eq!(b.len(), 1);
    assert!(p.distance(&a[0].embedding, &b[0].embedding) < 0.15);
}

#[test]
fn landmarks_are_plausible() {
    let mut p = builtin();
    let f = &faces(&mut p, "obama.jpg")[0];
    let b = f.detection.bbox;
    let [le, re, nose, lm, rm] = f.detection.landmarks;
    for pt in f.detection.landmarks {
        assert!(
            pt[0] > b.x && pt[0] < b.x + b.w && pt[1] > b.y && pt[1] < b.y + b.h,
            "{pt:?} outside {b:?}"
        );
    }
    assert!(le[0] < re[0] && lm[0] < rm[0], "left/right swapped");
    assert!(le[1] < nose[1] && re[1] < nose[1], "eyes below nose");
    assert!(nose[1] < lm[1] && nose[1] < rm[1], "mouth above nose");
    assert!(b.size() > 100.0, "face of obama.jpg is large, got {b:?}");
}

/// Every face photo of the fixtures, with the person in it.
fn labelled() -> Vec<(PathBuf, &'static str)> {
    let mut v: Vec<(PathBuf, &str)> = OBAMAS.iter().map(|n| (fixture(n), "obama")).collect();
    v.push((fixture("biden.jpg"), "biden"));
    v.push((fixture("astronaut.png"), "collins"));
    v
}

#[test]
fn int8_network_agrees_with_f32() {
    let models = repo_models();
    let mut int8 = Pipeline::new(&models, Some("dlib_resnet_v1_int8"), None).unwrap();
    let mut f32 = Pipeline::new(&models, Some("dlib_resnet_v1_f32"), None).unwrap();
    let threshold = int8.embedder_spec().threshold;
    let mut pairs = Vec::new();
    for (path, who) in labelled() {
        let img = decode_file(&path).unwrap();
        let det = int8.detect(&img).unwrap();
        assert!(!det.is_empty(), "{}: no face", path.display());
        let chip = int8.align(&img, &det[0]).unwrap();
        let (q, r) = (
            int8.embed_chip(&chip).unwrap(),
            f32.embed_chip(&chip).unwrap(),
        );
        let drift = q.distance(&r, facegate::vision::models::Metric::Euclidean);
        assert!(
            drift < 0.1,
            "{}: int8 is {drift} away from f32",
            path.display()
        );
        pairs.push((who, q, r));
    }
    for (i, a) in pairs.iter().enumerate() {
        for b in &pairs[i + 1..] {
            let same_q = int8.distance(&a.1, &b.1) <= threshold;
            let same_r = f32.distance(&a.2, &b.2) <= threshold;
            assert_eq!(same_q, same_r, "{} vs {}: int8 and f32 disagree", a.0, b.0);
            assert_eq!(same_q, a.0 == b.0, "{} vs {}: wrong verdict", a.0, b.0);
        }
    }
}

#[test]
fn builtin_models_are_the_shipped_files() {
    let builtin = ModelSet::builtin().unwrap();
    let shipped = repo_models();
    let (name, spec) = builtin.embedder(None).unwrap();
    let (sname, sspec) = shipped.embedder(None).unwrap();
    assert_eq!(
        (name, &spec.sha256, &spec.fingerprint),
        (sname, &sspec.sha256, &sspec.fingerprint)
    );
    assert!(builtin.read(&spec.file, &spec.sha256).is_ok());
    assert!(shipped.read(&sspec.file, &sspec.sha256).is_ok());
}

/// SFace (f32 and our int8), loaded from the repository's manifest by name: photos of Obama are
/// the same person under its cosine threshold, Obama and Biden are not, and its embeddings come
/// out unit length (the manifest's `normalize`, which its cosine threshold assumes).
#[test]
fn sface_puts_obama_closer_to_obama_than_to_biden() {
    let models = repo_models();
    for name in ["sface_2021dec_f32", "sface_2021dec_int8"] {
        let mut p = Pipeline::new(&models, Some(name), None).unwrap();
        let threshold = p.embedder_spec().threshold;
        let obamas: Vec<Embedding> = OBAMAS.iter().map(|n| one_face(&mut p, n)).collect();
        let biden = one_face(&mut p, "biden.jpg");
        for e in obamas.iter().chain([&biden]) {
            let norm = e.0.iter().map(|v| v * v).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4, "{name}: norm {norm}");
        }
        for (i, a) in obamas.iter().enumerate() {
            let to_biden = p.distance(a, &biden);
            for b in &obamas[i + 1..] {
                let d = p.distance(a, b);
                assert!(
                    d < threshold && d < to_biden,
                    "{name}: two photos of Obama at {d} (threshold {threshold}, Biden at {to_biden})"
                );
            }
            assert!(
                to_biden > threshold,
                "{name}: {} and Biden at {to_biden} <= threshold {threshold}",
                OBAMAS[i]
            );
        }
    }
}

#[test]
fn the_pinned_photos_pass_the_quality_gates_of_door_and_enrolment() {
    let mut p = builtin();
    let template = p.embedder_spec().template;
    for name in facegate_e2e::ONE_FACE_PHOTOS {
        let img = decode_file(&fixture(name)).unwrap();
        let det = p.detect_largest(&img).unwrap().unwrap();
        let chip = p.align(&img, &det).unwrap();
        let m = measure(&chip, &template, &det.landmarks);
        assert_eq!(QualityParams::default().judge(&m), Ok(()), "{name}: {m:?}");
        assert_eq!(enrolment_quality().judge(&m), Ok(()), "{name}: {m:?}");
    }
}

#[test]
fn flip_augmentation_gives_a_face_and_its_mirror_one_embedding() {
    let mut p = builtin();
    let img = decode_file(&fixture("obama2.jpg")).unwrap();
    let det = p.detect_largest(&img).unwrap().unwrap();
    let chip = p.align(&img, &det).unwrap();
    let mirror = image::imageops::flip_horizontal(&chip);
    let plain = p.embed_chip(&chip).unwrap();
    assert_ne!(plain, p.embed_chip(&mirror).unwrap());
    p.set_flip(true);
    let both = p.embed_chip(&chip).unwrap();
    assert_eq!(both, p.embed_chip(&mirror).unwrap());
    // The average stays close to the plain embedding: still the same person.
    assert!(p.distance(&both, &plain) < p.embedder_spec().threshold / 2.0);
}

#[test]
fn poor_photos_are_refused_for_enrolment_with_what_to_fix() {
    let mut p = builtin();
    let dir = tempfile::tempdir().unwrap();
    let obama = decode_file(&fixture("obama.jpg")).unwrap();
    assert!(enrol_photo(&mut p, &fixture("obama.jpg")).is_ok());
    for (sigma, gain, issue, advice) in [
        (10.0, 1.0, QualityIssue::Blurry, "in focus"),
        (0.0, 0.15, QualityIssue::TooDark, "well lit"),
        (0.0, 3.0, QualityIssue::TooBright, "over-exposed"),
    ] {
        let path = dir.path().join(format!("{}.png", issue.as_str()));
        degraded(&obama, sigma, gain).save(&path).unwrap();
        match enrol_photo(&mut p, &path) {
            Err(e @ EnrolError::PoorQuality { issue: got, .. }) => {
                assert_eq!(got, issue);
                let msg = e.to_string();
                assert!(msg.contains(advice), "{msg}");
                assert!(msg.contains(&path.display().to_string()), "{msg}");
            }
            other => panic!("{issue:?}: expected a refusal, got {other:?}"),
        }
    }
}
