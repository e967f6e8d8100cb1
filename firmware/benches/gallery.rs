//! Benchmark of the gallery: 1:N matching over 10, 1,000 and 100,000 enrolled embeddings under
//! each metric, against the 1:1 check of a card or PIN claim (`Index::distance_to`: one
//! comparison per enrolment of the claimed person) and a PIN's argon2id verification, and loading a 10,000-person gallery file (entries refer to face crops, as
//! enrolled now; the crops themselves are not read on load). Single thread; prints medians.
//!
//! `cargo bench -p facegate --bench gallery`

use facegate::people::crops::{CropRef, CROP_TEMPLATE};
use facegate::people::gallery::{Enrolment, Gallery, Locked, Person, Scoring};
use facegate::Embedding;
use std::time::Instant;

/// Deterministic pseudo-random unit-scale embeddings (xorshift), like real ones in range.
fn embedding(state: &mut u64) -> Vec<f32> {
    (0..128)
        .map(|_| {
            *state ^= *state << 13;
            *state ^= *state >> 7;
            *state ^= *state << 17;
            ((*state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.25
        })
        .collect()
}

fn gallery(people: usize, per_person: usize, seed: u64) -> Gallery {
    let mut state = seed;
    let mut g = Gallery::new("bench/0");
    for i in 0..people {
        g.people.push(Person {
            policy: Default::default(),
            id: format!("p{i}"),
            name: format!("Person {i}"),
            enrolments: (0..per_person)
                .map(|k| Enrolment {
                    enrolled_at: "2026-11-28T00:00:00Z".into(),
                    source: format!("p{i}_{k}.jpg"),
                    sha256: "0".repeat(64),
                    embedding: embedding(&mut state),
                    // As enrolled now: each entry refers to its face crop (not read here).
                    crop: Some(CropRef {
                        sha256: format!("{:064x}", i * per_person + k),
                        landmarks: CROP_TEMPLATE.map(|p| [p[0] + 0.37, p[1] - 0.61]),
                    }),
                })
                .collect(),
            credential: None,
            pin_hash: None,
            duress_hash: None,
        });
    }
    g
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    println!("facegate gallery benchmark, single thread");
    let mut state = 42u64;
    for (label, scoring) in [
        ("euclidean", Scoring::EUCLIDEAN),
        ("cosine", Scoring::COSINE),
    ] {
        for n in [10usize, 1_000, 100_000] {
            // Two photos per person, as after a typical enrolment.
            let index = gallery(n / 2, 2, 7).index(scoring);
            let queries: Vec<Embedding> =
                (0..50).map(|_| Embedding(embedding(&mut state))).collect();
            let mut t = Vec::new();
            for _ in 0..5 {
                for q in &queries {
                    let t0 = Instant::now();
                    std::hint::black_box(index.best(q));
                    t.push(t0.elapsed().as_secs_f64() * 1e3);
                }
            }
            // The claim's 1:1 check: a person in the middle of the gallery.
            let mut one = Vec::new();
            for _ in 0..5 {
                for q in &queries {
                    let t0 = Instant::now();
                    std::hint::black_box(index.distance_to(n / 4, q));
                    one.push(t0.elapsed().as_secs_f64() * 1e3);
                }
            }
            println!(
                "  1:N match over {n:>7} embeddings ({label:>9}): median {:>8.3} ms; 1:1 check {:>7.4} ms",
                median(t),
                median(one)
            );
        }
    }
    let hash = facegate::people::pin::hash("4711").unwrap();
    let mut t = Vec::new();
    for _ in 0..5 {
        let t0 = Instant::now();
        assert!(facegate::people::pin::verify("4711", &hash));
        t.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    println!(
        "  a PIN's argon2id verification ({} KiB, {} passes): median {:.1} ms",
        facegate::people::pin::MEMORY_KIB,
        facegate::people::pin::PASSES,
        median(t)
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gallery.toml");
    for crops in [true, false] {
        let mut g = gallery(10_000, 1, 9);
        if !crops {
            // As enrolled before crops were kept: the cost the crop references add.
            g.people
                .iter_mut()
                .for_each(|p| p.enrolments[0].crop = None);
        }
        let t0 = Instant::now();
        Locked::acquire(&path).unwrap().save(&g).unwrap();
        let save = t0.elapsed().as_secs_f64() * 1e3;
        let size = std::fs::metadata(&path).unwrap().len();
        let mut t = Vec::new();
        for _ in 0..5 {
            let t0 = Instant::now();
            let loaded = Gallery::load(&path, "bench/0").unwrap();
            let index = loaded.index(Scoring::EUCLIDEAN);
            t.push(t0.elapsed().as_secs_f64() * 1e3);
            assert_eq!(index.len(), 10_000);
        }
        println!(
            "  10,000-person gallery, {} ({:.1} MB): load + index median {:.1} ms, atomic save {save:.1} ms",
            if crops { "with crop references" } else { "without crops     " },
            size as f64 / 1e6,
            median(t)
        );
    }
}
