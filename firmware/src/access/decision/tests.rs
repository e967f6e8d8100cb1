//! Tests of `decision`.

use super::*;

fn params() -> DecisionParams {
    DecisionParams {
        threshold: 0.6,
        min_margin: 0.05,
        min_face: 80.0,
        frames: 3,
        window: Duration::from_millis(1000),
        cooldown: Duration::from_secs(6),
        deny_after: 5,
        rearm: Duration::from_secs(2),
        deny_repeat: Duration::from_secs(10),
        min_liveness: None,
        cues: false,
    }
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// The test gallery: person k is enrolled at the unit vector along axis k.
const GALLERY: [[f32; 4]; 4] = [
    [1.0, 0.0, 0.0, 0.0],
    [0.0, 1.0, 0.0, 0.0],
    [0.0, 0.0, 1.0, 0.0],
    [0.0, 0.0, 0.0, 1.0],
];
/// What the camera gives for person k: 0.2 from their enrolment.
const SEEN: [[f32; 4]; 4] = [
    [0.8, 0.0, 0.0, 0.0],
    [0.0, 0.8, 0.0, 0.0],
    [0.0, 0.0, 0.8, 0.0],
    [0.0, 0.0, 0.0, 0.8],
];

/// The nearest person of the test gallery and the margin (Euclidean), as the index does.
fn fuse(e: &[f32]) -> Option<Nearest> {
    if e.len() != 4 {
        return None;
    }
    let mut d: Vec<(usize, f32)> = GALLERY
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let sq: f32 = g.iter().zip(e).map(|(a, b)| (a - b) * (a - b)).sum();
            (i, sq.sqrt())
        })
        .collect();
    d.sort_by(|a, b| a.1.total_cmp(&b.1));
    Some(Nearest {
        person: d[0].0,
        distance: d[0].1,
        margin: d[1].1 - d[0].1,
    })
}

/// Where the test faces are, unless a test moves them.
const BOX: BBox = BBox {
    x: 200.0,
    y: 100.0,
    w: 120.0,
    h: 120.0,
};

fn face(person: usize, distance: f32, margin: f32) -> Observation<'static> {
    face_at(BOX, person, distance, margin)
}

fn face_at(bbox: BBox, person: usize, distance: f32, margin: f32) -> Observation<'static> {
    Observation::Face(Seen {
        bbox,
        quality: Ok(()),
        nearest: Some(Nearest {
            person,
            distance,
            margin,
        }),
        embedding: &SEEN[person % 4],
        liveness: None,
        cues: None,
    })
}

/// A face whose per-frame match is computed from its embedding.
fn face_e(embedding: &'static [f32]) -> Observation<'static> {
    Observation::Face(Seen {
        bbox: BOX,
        quality: Ok(()),
        nearest: fuse(embedding),
        embedding,
        liveness: None,
        cues: None,
    })
}

fn poor(issue: QualityIssue) -> Observation<'static> {
    Observation::Face(Seen {
        bbox: BOX,
        quality: Err(issue),
        nearest: None,
        embedding: &[],
        liveness: None,
        cues: None,
    })
}

fn moved(dx: f32) -> BBox {
    BBox {
        x: BOX.x + dx,
        ..BOX
    }
}

/// Feeds `obs` at 10 fps from `start` ms; returns the non-Wait decisions with their time.
fn feed(d: &mut Decider, start: u64, obs: &[Observation<'static>]) -> Vec<(u64, Decision)> {
    obs.iter()
        .enumerate()
        .map(|(i, o)| (start + 100 * i as u64, *o))
        .map(|(t, o)| (t, d.observe(ms(t), o, &mut fuse)))
        .filter(|(_, d)| *d != Decision::Wait)
        .collect()
}

#[test]
fn grants_on_the_third_agreeing_frame_and_not_before() {
    let mut d = Decider::new(params());
    assert_eq!(
        d.observe(ms(0), face(1, 0.4, 0.3), &mut fuse),
        Decision::Wait
    );
    assert_eq!(
        d.observe(ms(100), face(1, 0.5, 0.2), &mut fuse),
        Decision::Wait
    );
    assert_eq!(
        d.observe(ms(200), face(1, 0.45, 0.25), &mut fuse),
        Decision::Grant {
            person: 1,
            distance: 0.5,
            margin: 0.2,
            frames: 3,
            fused: fuse(&SEEN[1]).unwrap(),
        }
    );
}

#[test]
fn a_stranger_is_never_granted_however_long_they_stay() {
    let mut d = Decider::new(params());
    // 60 s at 10 fps, nearest person always just over the threshold.
    let frames: Vec<_> = (0..600).map(|_| face(0, 0.62, 0.3)).collect();
    let out = feed(&mut d, 0, &frames);
    assert!(out.iter().all(|(_, d)| matches!(d, Decision::Deny { .. })));
    // Denied at the 5th frame, then every 10 s while the stranger stays.
    let times: Vec<u64> = out.iter().map(|(t, _)| *t).collect();
    assert_eq!(times, vec![400, 10400, 20400, 30400, 40400, 50400]);
    assert!(matches!(
        out[0].1,
        Decision::Deny {
            reason: DenyReason::Unknown,
            frames: 5,
            ..
        }
    ));
}

#[test]
fn a_small_margin_is_ambiguous_and_denied() {
    let mut d = Decider::new(params());
    let frames: Vec<_> = (0..5).map(|_| face(2, 0.3, 0.01)).collect();
    let out = feed(&mut d, 0, &frames);
    assert_eq!(out.len(), 1);
    assert!(matches!(
        out[0].1,
        Decision::Deny {
            reason: DenyReason::Ambiguous,
            ..
        }
    ));
}

#[test]
fn a_disagreeing_frame_breaks_the_run() {
    let mut d = Decider::new(params());
    let out = feed(
        &mut d,
        0,
        &[
            face(1, 0.4, 0.3),
            face(1, 0.4, 0.3),
            face(1, 0.7, 0.3), // unknown: the run starts again
            face(1, 0.4, 0.3),
            face(1, 0.4, 0.3),
        ],
    );
    assert!(out.is_empty(), "{out:?}");
    assert!(matches!(
        d.observe(ms(500), face(1, 0.4, 0.3), &mut fuse),
        Decision::Grant { frames: 3, .. }
    ));
}

#[test]
fn another_person_breaks_the_run() {
    let mut d = Decider::new(params());
    let out = feed(
        &mut d,
        0,
        &[
            face(1, 0.4, 0.3),
            face(1, 0.4, 0.3),
            face(2, 0.4, 0.3),
            face(1, 0.4, 0.3),
        ],
    );
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn a_frame_without_a_usable_face_breaks_the_run() {
    for gap in [Observation::NoFace, Observation::Lost] {
        let mut d = Decider::new(params());
        let out = feed(
            &mut d,
            0,
            &[
                face(1, 0.4, 0.3),
                face(1, 0.4, 0.3),
                gap,
                face(1, 0.4, 0.3),
                face(1, 0.4, 0.3),
            ],
        );
        assert!(out.is_empty(), "{gap:?}: {out:?}");
        assert!(
            matches!(
                d.observe(ms(500), face(1, 0.4, 0.3), &mut fuse),
                Decision::Grant { frames: 3, .. }
            ),
            "{gap:?}"
        );
    }
}

#[test]
fn two_faces_that_both_match_one_person_do_not_add_up() {
    // One face on the left, then another on the right (a second person who also matches
    // person 1, or a photo held up beside the first): each is its own track.
    let left = face_at(moved(-150.0), 1, 0.4, 0.3);
    let right = face_at(moved(150.0), 1, 0.4, 0.3);
    let mut d = Decider::new(params());
    let out = feed(&mut d, 0, &[left, left, right, right, left, left]);
    assert!(out.is_empty(), "{out:?}");
    // The same face moving a little between frames is one track.
    let mut d = Decider::new(params());
    let walk: Vec<_> = (0..3)
        .map(|i| face_at(moved(25.0 * i as f32), 1, 0.4, 0.3))
        .collect();
    assert!(matches!(
        feed(&mut d, 0, &walk)[..],
        [(200, Decision::Grant { frames: 3, .. })]
    ));
}

#[test]
fn a_photo_of_an_enrolled_person_is_denied_as_a_spoof_and_never_granted() {
    let p = DecisionParams {
        min_liveness: Some(0.5),
        ..params()
    };
    let with = |score: f32| match face(1, 0.3, 0.3) {
        Observation::Face(s) => Observation::Face(Seen {
            liveness: Some(score),
            ..s
        }),
        o => o,
    };
    // A photo held up for 10 s: every frame matches person 1 but scores low.
    let mut d = Decider::new(p.clone());
    let out = feed(&mut d, 0, &[with(0.1); 100]);
    assert!(!out.is_empty());
    assert!(
        out.iter().all(|(_, d)| matches!(
            d,
            Decision::Deny {
                reason: DenyReason::SpoofSuspected,
                ..
            }
        )),
        "{out:?}"
    );
    // A live face is let in; a spoof frame in the middle of a run breaks it.
    let mut d = Decider::new(p.clone());
    assert!(matches!(
        feed(&mut d, 0, &[with(0.9); 3])[..],
        [(200, Decision::Grant { .. })]
    ));
    let mut d = Decider::new(p);
    let out = feed(&mut d, 0, &[with(0.9), with(0.9), with(0.2), with(0.9)]);
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn the_mean_of_the_run_must_match_the_same_person() {
    // Each frame is (given as) person 1, but the embeddings lie half-way to person 2:
    // their mean is nobody, so no grant, and the face is denied in the end.
    const HALF: [f32; 4] = [0.0, 0.5, 0.5, 0.0];
    let f = face_at(BOX, 1, 0.5, 0.3);
    let Observation::Face(seen) = f else {
        unreachable!()
    };
    let f = Observation::Face(Seen {
        embedding: &HALF,
        ..seen
    });
    let mut d = Decider::new(params());
    let out = feed(&mut d, 0, &[f; 12]);
    assert!(!out.is_empty());
    assert!(
        out.iter().all(|(_, d)| matches!(
            d,
            Decision::Deny {
                reason: DenyReason::Unknown,
                ..
            }
        )),
        "{out:?}"
    );
}

#[test]
fn the_grant_records_the_fused_distance() {
    // Frames scattered around person 1 (0.36 away each): the mean of three is 0.22 away.
    const UP: [f32; 4] = [0.0, 0.8, 0.3, 0.0];
    const DOWN: [f32; 4] = [0.0, 0.8, -0.3, 0.0];
    let mut d = Decider::new(params());
    let out = feed(
        &mut d,
        0,
        &[face_e(&UP), face_e(&DOWN), face_e(&UP), face_e(&DOWN)],
    );
    let [(
        200,
        Decision::Grant {
            person: 1,
            distance,
            fused,
            ..
        },
    )] = out[..]
    else {
        panic!("{out:?}")
    };
    assert!((distance - 0.3606).abs() < 1e-3, "{distance}");
    assert_eq!(fused.person, 1);
    assert!((fused.distance - 0.2236).abs() < 1e-3, "{fused:?}");
}

#[test]
fn boxes_are_one_track_when_they_overlap_or_the_centre_moves_little() {
    assert!(same_track(&BOX, &BOX));
    assert!(same_track(&BOX, &moved(50.0)));
    // A face coming closer: the box grows around the same centre.
    let near = BBox {
        x: 170.0,
        y: 70.0,
        w: 180.0,
        h: 180.0,
    };
    assert!(same_track(&BOX, &near));
    assert!(!same_track(&BOX, &moved(130.0)));
    assert!(!same_track(&BOX, &moved(-300.0)));
}

#[test]
fn a_poor_frame_neither_agrees_nor_breaks_the_run_and_is_denied_by_its_reason() {
    let mut d = Decider::new(params());
    let out = feed(
        &mut d,
        0,
        &[
            face(1, 0.4, 0.3),
            poor(QualityIssue::Blurry),
            face(1, 0.4, 0.3),
            poor(QualityIssue::Blurry),
        ],
    );
    assert!(out.is_empty(), "{out:?}");
    assert!(matches!(
        d.observe(ms(400), face(1, 0.4, 0.3), &mut fuse),
        Decision::Grant { frames: 3, .. }
    ));
    // A face that is always too dark is denied as such, never granted.
    let mut d = Decider::new(params());
    let out = feed(&mut d, 0, &[poor(QualityIssue::TooDark); 8]);
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(matches!(
        out[0].1,
        Decision::Deny {
            reason: DenyReason::PoorQuality(QualityIssue::TooDark),
            frames: 5,
            ..
        }
    ));
    assert_eq!(
        DenyReason::PoorQuality(QualityIssue::TooDark).as_str(),
        "poor_quality:too_dark"
    );
}

#[test]
fn agreeing_frames_spread_over_more_than_the_window_do_not_grant() {
    let mut d = Decider::new(params());
    assert_eq!(
        d.observe(ms(0), face(1, 0.4, 0.3), &mut fuse),
        Decision::Wait
    );
    assert_eq!(
        d.observe(ms(600), face(1, 0.4, 0.3), &mut fuse),
        Decision::Wait
    );
    // 1200 ms after the first: the first falls out of the window, the second stays.
    assert_eq!(
        d.observe(ms(1200), face(1, 0.4, 0.3), &mut fuse),
        Decision::Wait
    );
    assert!(matches!(
        d.observe(ms(1300), face(1, 0.4, 0.3), &mut fuse),
        Decision::Grant { frames: 3, .. }
    ));
}

#[test]
fn small_faces_are_not_recognised() {
    let mut d = Decider::new(params());
    let small = face_at(
        BBox {
            w: 60.0,
            h: 60.0,
            ..BOX
        },
        1,
        0.2,
        0.5,
    );
    let out = feed(&mut d, 0, &[small; 8]);
    assert_eq!(out.len(), 1);
    assert!(matches!(
        out[0].1,
        Decision::Deny {
            reason: DenyReason::TooSmall,
            ..
        }
    ));
}

fn times(out: &[(u64, Decision)]) -> Vec<u64> {
    out.iter().map(|(t, _)| *t).collect()
}

#[test]
fn the_cooldown_holds_back_the_same_person_not_the_next_one() {
    // Person 1 is let in at 200 ms and walks away at 1 s; person 2 steps up at 1.5 s and is
    // let in on their own third frame: a colleague right behind is not turned away.
    let mut d = Decider::new(params());
    let mut frames: Vec<_> = (0..10).map(|_| face(1, 0.4, 0.3)).collect();
    frames.extend([Observation::NoFace; 5]);
    frames.extend((0..10).map(|_| face(2, 0.4, 0.3)));
    // Person 1 back after 2.5 s away (gone longer than rearm), still within the cooldown:
    // let in when it ends (6.2 s), not before.
    frames.extend([Observation::NoFace; 25]);
    frames.extend((0..30).map(|_| face(1, 0.4, 0.3)));
    let out = feed(&mut d, 0, &frames);
    assert_eq!(times(&out), vec![200, 1700, 6200], "{out:?}");
    assert!(matches!(out[0].1, Decision::Grant { person: 1, .. }));
    assert!(matches!(out[1].1, Decision::Grant { person: 2, .. }));
    assert!(matches!(out[2].1, Decision::Grant { person: 1, .. }));
}

#[test]
fn a_face_that_stays_in_view_for_60_s_is_let_in_once() {
    // However long the cooldown: a photo taped in front of the camera, or a frozen stream.
    let mut d = Decider::new(params());
    let frames: Vec<_> = (0..600).map(|_| face(1, 0.4, 0.3)).collect();
    let out = feed(&mut d, 0, &frames);
    assert_eq!(times(&out), vec![200], "{out:?}");
    // The same with the detector missing the face now and then (each miss starts a new
    // track, which is still the same person).
    let mut d = Decider::new(params());
    let frames: Vec<_> = (0..600)
        .map(|i| {
            if i % 7 == 6 {
                Observation::NoFace
            } else {
                face(1, 0.4, 0.3)
            }
        })
        .collect();
    let out = feed(&mut d, 0, &frames);
    assert_eq!(times(&out), vec![200], "{out:?}");
}

#[test]
fn a_face_that_left_for_the_rearm_time_is_let_in_again() {
    let mut d = Decider::new(params());
    let person: Vec<_> = (0..10).map(|_| face(1, 0.4, 0.3)).collect();
    assert_eq!(times(&feed(&mut d, 0, &person)), vec![200]);
    // Gone 1 s (less than rearm): not gone; back for 10 s, no second grant.
    let back: Vec<_> = (0..100).map(|_| face(1, 0.4, 0.3)).collect();
    assert!(feed(&mut d, 2000, &back).is_empty());
    // Gone 3 s: back after the cooldown, let in again at the third frame.
    let out = feed(&mut d, 15000, &person);
    assert_eq!(times(&out), vec![15200], "{out:?}");
}

#[test]
fn someone_else_stepping_into_the_same_place_is_not_held() {
    // Person 1 is let in; person 2 takes their place without a frame's gap (the boxes
    // overlap): person 2 is judged on their own and let in on their third frame.
    let mut d = Decider::new(params());
    let mut frames: Vec<_> = (0..10).map(|_| face(1, 0.4, 0.3)).collect();
    frames.extend((0..70).map(|_| face(2, 0.4, 0.3)));
    let out = feed(&mut d, 0, &frames);
    assert_eq!(times(&out), vec![200, 1200], "{out:?}");
    assert!(matches!(out[1].1, Decision::Grant { person: 2, .. }));
}

#[test]
fn a_stranger_during_the_cooldown_is_denied_and_audited() {
    let mut d = Decider::new(params());
    let mut frames: Vec<_> = (0..5).map(|_| face(1, 0.4, 0.3)).collect();
    // While person 1 is still in view (held), a stranger takes the place of the face on
    // the other side of the frame.
    frames.extend((0..10).map(|_| face_at(moved(300.0), 0, 0.8, 0.3)));
    let out = feed(&mut d, 0, &frames);
    assert_eq!(times(&out), vec![200, 900], "{out:?}");
    assert!(matches!(
        out[1].1,
        Decision::Deny {
            reason: DenyReason::Unknown,
            frames: 5,
            ..
        }
    ));
}

#[test]
fn after_a_gallery_change_the_face_let_in_is_still_held() {
    let stay: Vec<_> = (0..100).map(|_| face(1, 0.4, 0.3)).collect();
    let mut d = Decider::new(params());
    assert_eq!(times(&feed(&mut d, 0, &stay[..10])), vec![200]);
    d.forget(Some(1));
    assert_eq!(d.held_person(), Some(1));
    assert!(feed(&mut d, 1000, &stay).is_empty());
    // If the person is no longer in the gallery, their track holds them for 2 s (rearm)
    // after they were last recognised; then the face is judged afresh under the new
    // gallery, where index 1 is someone else, let in at their third frame.
    let mut d = Decider::new(params());
    assert_eq!(times(&feed(&mut d, 0, &stay[..10])), vec![200]);
    d.forget(None);
    assert_eq!(times(&feed(&mut d, 1000, &stay)), vec![3100]);
}

#[test]
fn a_new_face_after_the_rearm_time_is_denied_again() {
    let mut d = Decider::new(params());
    let stranger: Vec<_> = (0..5).map(|_| face(0, 0.8, 0.3)).collect();
    assert_eq!(feed(&mut d, 0, &stranger).len(), 1);
    // Gone for 3 s (more than rearm), then back: a new denial after 5 frames.
    let out = feed(&mut d, 3500, &stranger);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, 3900);
}

#[test]
fn unsteady_recognition_is_denied_as_such() {
    let mut d = Decider::new(params());
    let frames: Vec<_> = (0..6)
        .map(|i| {
            if i % 2 == 0 {
                face(1, 0.5, 0.3)
            } else {
                face(1, 0.65, 0.3)
            }
        })
        .collect();
    let out = feed(&mut d, 0, &frames);
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(matches!(
        out[0].1,
        Decision::Deny {
            reason: DenyReason::Unsteady,
            ..
        }
    ));
}

#[test]
fn nan_distances_never_match() {
    let mut d = Decider::new(params());
    let frames: Vec<_> = (0..10).map(|_| face(1, f32::NAN, f32::NAN)).collect();
    let out = feed(&mut d, 0, &frames);
    assert!(out
        .iter()
        .all(|(_, d)| !matches!(d, Decision::Grant { .. })));
}

#[test]
fn an_empty_gallery_denies() {
    let mut d = Decider::new(params());
    let f = Observation::Face(Seen {
        bbox: BOX,
        quality: Ok(()),
        nearest: None,
        embedding: &[],
        liveness: None,
        cues: None,
    });
    let out = feed(&mut d, 0, &[f; 5]);
    assert!(matches!(
        out[..],
        [(
            400,
            Decision::Deny {
                reason: DenyReason::Unknown,
                nearest: None,
                frames: 5
            }
        )]
    ));
}
