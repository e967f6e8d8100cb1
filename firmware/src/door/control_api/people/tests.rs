//! The gallery and picture requests: parsing, the payload's bounds and checks, and the changes
//! made under the gallery's lock (duplicates refused, pictures deleted with the person).

use super::*;
use crate::door::control_api::client::{ClientError, DoorClient};
use crate::door::control_api::{parse, Role, MAX_DISMISS_LINE};
use crate::records::faces::UNKNOWN;
use base64::Engine;
use std::path::Path;

const DIM: usize = 4;

fn png() -> String {
    base64::engine::general_purpose::STANDARD.encode(b"\x89PNG\r\n\x1a\nrest of a png")
}

fn unit(i: usize) -> Vec<f32> {
    let mut v = vec![0.0; DIM];
    v[i] = 1.0;
    v
}

fn payload(name: &str, id: Option<&str>, embeddings: &[Vec<f32>], force: bool) -> Vec<u8> {
    let faces: Vec<_> = embeddings
        .iter()
        .map(|e| serde_json::json!({"embedding": e, "crop_png": png()}))
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "name": name, "id": id, "faces": faces, "force": force, "from_pictures": [],
    }))
    .unwrap()
}

fn access(dir: &Path) -> GalleryAccess {
    GalleryAccess {
        gallery: dir.join("gallery.toml"),
        fingerprint: "test-model".into(),
        dim: DIM,
        scoring: Scoring::COSINE,
        threshold: 0.3,
        faces: FaceStore::for_audit(&dir.join("audit.jsonl")),
    }
}

#[test]
fn the_requests_parse_and_a_seq_is_only_ever_a_number() {
    assert_eq!(parse(b"picture 42"), Ok(Command::Picture(42)));
    assert_eq!(parse(b"pictures unknown"), Ok(Command::PicturesUnknown));
    for bad in [
        &b"picture ../x"[..],
        b"picture -1",
        b"picture 1e3",
        b"picture +5",
        b"picture 99999999999999999999999",
        b"picture 1/../../etc/passwd",
        b"picture",
        b"picture 1 2",
    ] {
        assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
    }
    assert_eq!(
        parse(b"pictures dismiss 3,1,2 by admin@console"),
        Ok(Command::PicturesDismiss {
            seqs: vec![3, 1, 2],
            by: "admin@console".into()
        })
    );
    assert!(parse(b"pictures dismiss 3,../x by a").is_err());
    assert!(parse(b"pictures dismiss 3,,4 by a").is_err());
    assert!(parse(b"pictures dismiss 3").is_err());
    // 100 long SEQs fit; 101 do not.
    let hundred: Vec<String> = (0..100).map(|i| (u64::MAX - i).to_string()).collect();
    let line = format!("pictures dismiss {} by a", hundred.join(","));
    assert!(line.len() <= MAX_DISMISS_LINE);
    assert!(
        matches!(parse(line.as_bytes()), Ok(Command::PicturesDismiss { seqs, .. }) if seqs.len() == 100)
    );
    let line = format!("pictures dismiss {} by a", vec!["1"; 101].join(","));
    assert!(parse(line.as_bytes()).unwrap_err().contains("at most 100"));
    assert_eq!(
        parse(b"people add 1200 by admin"),
        Ok(Command::PeopleAdd {
            len: 1200,
            by: "admin".into()
        })
    );
    assert_eq!(
        parse(b"people remove ada by admin"),
        Ok(Command::PeopleRemove {
            id: "ada".into(),
            by: "admin".into()
        })
    );
    assert_eq!(
        parse(b"people rename ada 12 by admin"),
        Ok(Command::PeopleRename {
            id: "ada".into(),
            len: 12,
            by: "admin".into()
        })
    );
    assert!(parse(b"people remove ../gallery by admin").is_err());
    assert!(parse(b"people add -5 by admin").is_err());
    assert!(parse(b"people add 5").is_err(), "who asks is required");
    assert!(parse(b"people rename ada 12").is_err());
}

#[test]
fn every_picture_and_gallery_request_is_for_admins_only() {
    for c in [
        Command::Picture(1),
        Command::PicturesUnknown,
        Command::PicturesDismiss {
            seqs: vec![1],
            by: "x".into(),
        },
        Command::PeopleAdd {
            len: 1,
            by: "x".into(),
        },
        Command::PeopleRemove {
            id: "a".into(),
            by: "x".into(),
        },
        Command::PeopleRename {
            id: "a".into(),
            len: 1,
            by: "x".into(),
        },
    ] {
        assert!(!c.allowed(Role::Reader), "{c:?}");
        assert!(c.allowed(Role::Admin), "{c:?}");
    }
}

#[test]
fn a_payload_is_checked_before_the_gallery_is_touched() {
    let s = Scoring::COSINE;
    let ok = check_add(&payload("Ada Lovelace", None, &[unit(0)], false), DIM, s).unwrap();
    assert_eq!(ok.faces.len(), 1);
    assert_eq!(ok.faces[0].1.png(), b"\x89PNG\r\n\x1a\nrest of a png");
    let err = |bytes: &[u8]| check_add(bytes, DIM, s).unwrap_err();
    // Too large.
    assert!(err(&vec![b' '; MAX_PAYLOAD + 1]).contains("too large"));
    // Wrong dimension, not finite (JSON has no NaN; 1e39 overflows f32), not unit length.
    assert!(err(&payload("A", None, &[vec![1.0; DIM + 1]], false)).contains("values"));
    assert!(
        err(br#"{"name":"A","faces":[{"embedding":[NaN,0,0,0],"crop_png":""}]}"#)
            .contains("bad request")
    );
    let inf = format!(
        r#"{{"name":"A","faces":[{{"embedding":[1e39,0,0,0],"crop_png":"{}"}}]}}"#,
        png()
    );
    assert!(err(inf.as_bytes()).contains("finite"));
    assert!(check_add(&payload("A", None, &[vec![0.5; DIM]], false), DIM, s).is_ok());
    assert!(err(&payload("A", None, &[vec![2.0, 0.0, 0.0, 0.0]], false)).contains("unit length"));
    assert!(err(&payload("A", None, &[vec![0.0; DIM]], false)).contains("length"));
    // Faces: 1 to 10.
    assert!(err(&payload("A", None, &[], false)).contains("1 to 10"));
    assert!(err(&payload("A", None, &vec![unit(0); 11], false)).contains("1 to 10"));
    // The crop: base64 of a PNG by its signature, at most 256 KiB.
    let bad_png = base64::engine::general_purpose::STANDARD.encode(b"GIF89a....");
    let body =
        format!(r#"{{"name":"A","faces":[{{"embedding":[1,0,0,0],"crop_png":"{bad_png}"}}]}}"#);
    assert!(err(body.as_bytes()).contains("not a PNG"));
    let mut big = PNG_SIGNATURE.to_vec();
    big.resize(MAX_CROP_PNG + 1, 0);
    let big = base64::engine::general_purpose::STANDARD.encode(big);
    let body = format!(r#"{{"name":"A","faces":[{{"embedding":[1,0,0,0],"crop_png":"{big}"}}]}}"#);
    assert!(err(body.as_bytes()).contains("over"));
    let body = r#"{"name":"A","faces":[{"embedding":[1,0,0,0],"crop_png":"%%%"}]}"#;
    assert!(err(body.as_bytes()).contains("base64"));
    // The name and the id, by the gallery's rules; unknown fields refused.
    assert!(err(&payload("  ", None, &[unit(0)], false)).contains("name"));
    assert!(err(&payload("a\u{1b}[2J", None, &[unit(0)], false)).contains("name"));
    assert!(err(&payload("A", Some("../x"), &[unit(0)], false)).contains("id"));
    assert!(err(br#"{"name":"A","faces":[],"admin":true}"#).contains("bad request"));
}

#[test]
fn a_face_already_enrolled_as_another_person_is_refused_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let a = access(dir.path());
    let add = |name: &str, id: Option<&str>, e: Vec<f32>, force: bool| {
        let new = check_add(&payload(name, id, &[e], force), DIM, a.scoring).unwrap();
        add(&a, new, "admin")
    };
    let first = add("Ada Lovelace", None, unit(0), false).unwrap();
    assert!(matches!(&first, PeopleChange::Added { id, new: true, .. } if id == "ada-lovelace"));
    // The same face for someone else: refused, nothing written.
    let e = add("Not Ada", None, unit(0), false).unwrap_err();
    assert!(
        e.starts_with("duplicate: looks like ada-lovelace (distance 0.000)"),
        "{e}"
    );
    let g = Gallery::load(&a.gallery, "test-model").unwrap();
    assert_eq!(g.people.len(), 1);
    // For Ada herself: faces added.
    let more = add("Ada", Some("ada-lovelace"), unit(0), false).unwrap();
    assert!(matches!(
        &more,
        PeopleChange::Added {
            new: false,
            faces: 1,
            ..
        }
    ));
    // Forced: enrolled, and said so.
    let forced = add("Twin", None, unit(0), true).unwrap();
    assert!(matches!(
        &forced,
        PeopleChange::Added {
            forced: Some(_),
            ..
        }
    ));
    let g = Gallery::load(&a.gallery, "test-model").unwrap();
    assert_eq!(g.get("ada-lovelace").unwrap().enrolments.len(), 2);
    assert!(g
        .people
        .iter()
        .all(|p| p.enrolments.iter().all(|e| e.crop.is_some())));
    // A different face is nobody's duplicate.
    assert!(add("Grace Hopper", None, unit(1), false).is_ok());
}

#[test]
fn removing_a_person_deletes_their_crops_and_pictures_and_renaming_keeps_the_id() {
    let dir = tempfile::tempdir().unwrap();
    let a = access(dir.path());
    let new = check_add(
        &payload("Ada", Some("ada"), &[unit(0)], false),
        DIM,
        a.scoring,
    )
    .unwrap();
    add(&a, new, "admin").unwrap();
    let crops = a.gallery.with_extension("crops");
    assert_eq!(std::fs::read_dir(&crops).unwrap().count(), 1);
    a.faces.write(5, "ada", b"x").unwrap();
    a.faces.write(6, UNKNOWN, b"x").unwrap();
    let renamed = rename(&a, "ada", "Ada King".as_bytes()).unwrap();
    assert_eq!(
        renamed,
        PeopleChange::Renamed {
            id: "ada".into(),
            from: "Ada".into(),
            to: "Ada King".into()
        }
    );
    assert!(rename(&a, "ada", b"\xff").is_err());
    assert!(rename(&a, "nobody", b"X")
        .unwrap_err()
        .contains("no person"));
    let removed = remove(&a, "ada").unwrap();
    assert_eq!(
        removed,
        PeopleChange::Removed {
            id: "ada".into(),
            name: "Ada King".into(),
            pictures: 1
        }
    );
    assert_eq!(
        std::fs::read_dir(&crops).unwrap().count(),
        0,
        "crops pruned"
    );
    assert_eq!(a.faces.unknown(10).unwrap(), vec![6]);
    assert!(remove(&a, "ada").unwrap_err().contains("no person"));
}

#[test]
fn faces_enrolled_from_pictures_take_those_pictures_away() {
    let dir = tempfile::tempdir().unwrap();
    let a = access(dir.path());
    a.faces.write(7, UNKNOWN, b"x").unwrap();
    a.faces.write(8, UNKNOWN, b"x").unwrap();
    let body = serde_json::json!({
        "name": "Visitor", "faces": [{"embedding": unit(2), "crop_png": png()}],
        "from_pictures": [7, 99],
    });
    let new = check_add(&serde_json::to_vec(&body).unwrap(), DIM, a.scoring).unwrap();
    let change = add(&a, new, "admin").unwrap();
    assert!(matches!(&change, PeopleChange::Added { pictures, .. } if pictures == &vec![7]));
    assert_eq!(a.faces.unknown(10).unwrap(), vec![8]);
}

/// Over the socket: pictures come back as bytes after their line, a payload over the bound is
/// refused unread (and the connection closed), and a change done reaches the loop once.
#[test]
fn over_the_socket_pictures_come_back_and_an_oversized_payload_is_refused_unread() {
    use crate::door::control_api::{ask, ask_with_payload, Answer, ControlApi};
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let a = access(dir.path());
    a.faces.write(12, UNKNOWN, b"\x89PNG\r\n\x1a\n12").unwrap();
    a.faces.write(14, UNKNOWN, b"\x89PNG\r\n\x1a\n14").unwrap();
    a.faces.write(13, "ada", b"\x89PNG\r\n\x1a\n13").unwrap();
    let socket = dir.path().join("control.sock");
    let stop = Arc::new(AtomicBool::new(false));
    let (server, rx) = ControlApi::bind(&socket)
        .unwrap()
        .with_gallery(a.clone())
        .serve(Arc::clone(&stop));
    // The door's loop, standing in: every change it is handed.
    let looped = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut changes = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                if let Ok(req) = rx.recv_timeout(std::time::Duration::from_millis(20)) {
                    let answer = match req.command {
                        Command::PeopleChanged { change, by } => {
                            changes.push((change, by));
                            Answer::Ok("changed".into())
                        }
                        c => Answer::Err(format!("{c:?}")),
                    };
                    let _ = req.reply.send(answer);
                }
            }
            changes
        })
    };
    assert_eq!(picture(&socket, 13), Ok(b"\x89PNG\r\n\x1a\n13".to_vec()));
    assert_eq!(picture(&socket, 15), Err("no picture for 15".into()));
    assert_eq!(unknown(&socket), Ok(vec![14, 12]));
    let big = format!("people add {} by admin", MAX_PAYLOAD + 1);
    let answer = ask_with_payload(&socket, &big, &[b'{'; 64]).unwrap();
    assert!(answer.unwrap_err().starts_with("too large"));
    let answer = ask_with_payload(&socket, "people add 5 by admin", b"{\"x\":").unwrap();
    assert!(answer.unwrap_err().starts_with("bad request"));
    assert_eq!(
        ask(&socket, "pictures dismiss 12,13 by admin").unwrap(),
        Ok("changed".into())
    );
    assert_eq!(unknown(&socket), Ok(vec![14]));
    assert!(
        a.faces.read(13).unwrap().is_some(),
        "only unknown faces are dismissed"
    );
    stop.store(true, Ordering::SeqCst);
    drop(server);
    let changes = looped.join().unwrap();
    assert_eq!(
        changes,
        vec![(
            PeopleChange::Dismissed {
                seqs: vec![12, 13],
                deleted: 1
            },
            "admin".to_owned()
        )]
    );
}

/// A gallery of two people, enrolled through `add` as the console would.
fn two_people(a: &GalleryAccess) {
    for (name, id, i) in [("Ada", "ada", 0), ("Bob", "bob", 1)] {
        let new = check_add(&payload(name, Some(id), &[unit(i)], false), DIM, a.scoring).unwrap();
        add(a, new, "admin").unwrap();
    }
}

#[test]
fn policy_and_credential_requests_parse_and_are_for_admins_only() {
    use crate::people::credential::Credential;
    assert_eq!(
        parse(b"people policy ada 40 by ada@console"),
        Ok(Command::PeoplePolicy {
            id: "ada".into(),
            len: 40,
            by: "ada@console".into()
        })
    );
    assert_eq!(
        parse(b"people credential ada wiegand26 18 4660 by a"),
        Ok(Command::PeopleCredential {
            id: "ada".into(),
            credential: Some(Credential::Wiegand26 {
                facility: 18,
                card: 4660
            }),
            by: "a".into()
        })
    );
    assert_eq!(
        parse(b"people credential ada raw 8 255 by a"),
        Ok(Command::PeopleCredential {
            id: "ada".into(),
            credential: Some(Credential::Raw {
                bits: 8,
                value: 255
            }),
            by: "a".into()
        })
    );
    assert_eq!(
        parse(b"people credential ada clear by a"),
        Ok(Command::PeopleCredential {
            id: "ada".into(),
            credential: None,
            by: "a".into()
        })
    );
    // The CLI's ranges, digits only, an id of the gallery's form, who asks.
    for (bad, why) in [
        (
            &b"people credential ada wiegand26 256 1 by a"[..],
            "out of range",
        ),
        (
            b"people credential ada wiegand26 1 65536 by a",
            "out of range",
        ),
        (b"people credential ada wiegand26 -1 5 by a", "number"),
        (b"people credential ada wiegand26 +1 5 by a", "number"),
        (b"people credential ada raw 300 5 by a", "bits"),
        (b"people credential ada raw 4 16 by a", "fit"),
        (b"people credential ada magstripe 1 1 by a", "format"),
        (b"people credential ../x clear by a", "bad id"),
        (b"people credential ada clear", "who asks"),
        (b"people credential ada wiegand26 1 by a", "number"),
        (b"people credential ada", "credential takes"),
        (b"people policy ada 40", "who asks"),
        (b"people policy ada -4 by a", "LEN"),
    ] {
        let e = parse(bad).unwrap_err();
        assert!(e.contains(why), "{}: {e}", String::from_utf8_lossy(bad));
    }
    for c in [
        Command::PeoplePolicy {
            id: "a".into(),
            len: 1,
            by: "x".into(),
        },
        Command::PeopleCredential {
            id: "a".into(),
            credential: None,
            by: "x".into(),
        },
    ] {
        assert!(!c.allowed(Role::Reader), "{c:?}");
        assert!(c.allowed(Role::Admin), "{c:?}");
    }
    assert!(has_payload(&Command::PeoplePolicy {
        id: "a".into(),
        len: 1,
        by: "x".into()
    }));
}

#[test]
fn a_policy_is_checked_then_saved_and_a_bad_one_stores_nothing() {
    use crate::people::policy::parse_local;
    let dir = tempfile::tempdir().unwrap();
    let a = access(dir.path());
    two_people(&a);
    let before = std::fs::read(&a.gallery).unwrap();
    for (body, why) in [
        (
            &br#"{"enabled":true,"windows":["mon 9-10"]}"#[..],
            "bad policy",
        ),
        (
            br#"{"enabled":true,"valid_from":"2026-12-02","valid_until":"2026-12-01"}"#,
            "not after",
        ),
        (br#"{"enabled":true,"factors":"face"}"#, "own mode"),
        (br#"{"enabled":true,"admin":true}"#, "bad request"),
        (br#"{"enabled":"#, "bad request"),
    ] {
        let e = check_policy(body).unwrap_err();
        assert!(e.contains(why), "{e}");
    }
    assert!(check_policy(&vec![b' '; MAX_POLICY + 1])
        .unwrap_err()
        .contains("too large"));
    assert_eq!(std::fs::read(&a.gallery).unwrap(), before, "nothing stored");

    let policy = check_policy(
        br#"{"enabled":false,"valid_until":"2027-01-01","windows":["mon-fri 07:00-19:00"],"factors":"card_and_face"}"#,
    )
    .unwrap();
    let change = set_policy(&a, "ada", policy.clone()).unwrap();
    assert_eq!(
        change,
        PeopleChange::Policy {
            id: "ada".into(),
            name: "Ada".into(),
            policy: policy.clone()
        }
    );
    let g = Gallery::load(&a.gallery, "test-model").unwrap();
    let ada = &g.get("ada").unwrap().policy;
    assert!(ada.disabled);
    assert_eq!(ada.valid_until, Some(parse_local("2027-01-01").unwrap()));
    assert_eq!(ada, &policy);
    assert!(g.get("bob").unwrap().policy.is_open(), "only hers");
    assert!(set_policy(&a, "nobody", policy)
        .unwrap_err()
        .contains("no person"));
}

#[test]
fn one_card_is_never_given_to_two_people() {
    use crate::people::credential::Credential;
    let dir = tempfile::tempdir().unwrap();
    let a = access(dir.path());
    two_people(&a);
    let card = Some(Credential::Wiegand26 {
        facility: 18,
        card: 4660,
    });
    assert_eq!(
        set_credential(&a, "ada", card).unwrap(),
        PeopleChange::Credential {
            id: "ada".into(),
            name: "Ada".into(),
            credential: card
        }
    );
    // Again for her: fine (her own card).
    assert!(set_credential(&a, "ada", card).is_ok());
    let before = std::fs::read(&a.gallery).unwrap();
    let e = set_credential(&a, "bob", card).unwrap_err();
    assert!(e.contains("already belongs to ada"), "{e}");
    assert_eq!(std::fs::read(&a.gallery).unwrap(), before, "nothing stored");
    assert!(set_credential(&a, "nobody", None)
        .unwrap_err()
        .contains("no person"));
    // Cleared, the card is free for Bob.
    set_credential(&a, "ada", None).unwrap();
    set_credential(&a, "bob", card).unwrap();
    let g = Gallery::load(&a.gallery, "test-model").unwrap();
    assert_eq!(g.get("ada").unwrap().credential, None);
    assert_eq!(g.get("bob").unwrap().credential, card);
}

/// Over the socket, with the library's client: a policy and a card reach the gallery and the
/// loop (which audits them) with who asked; refusals store nothing and reach no loop.
#[test]
fn over_the_socket_policy_and_card_changes_reach_the_loop_and_refusals_do_not() {
    use crate::door::control_api::client::{ClientError, DoorClient};
    use crate::door::control_api::{Answer, ControlApi};
    use crate::people::credential::Credential;
    use crate::people::policy::PolicyRequest;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let a = access(dir.path());
    two_people(&a);
    let socket = dir.path().join("control.sock");
    let stop = Arc::new(AtomicBool::new(false));
    let (server, rx) = ControlApi::bind(&socket)
        .unwrap()
        .with_gallery(a.clone())
        .serve(Arc::clone(&stop));
    let looped = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut changes = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                if let Ok(req) = rx.recv_timeout(std::time::Duration::from_millis(20)) {
                    let answer = match req.command {
                        Command::PeopleChanged { change, by } => {
                            changes.push((change, by));
                            Answer::Ok("changed".into())
                        }
                        c => Answer::Err(format!("{c:?}")),
                    };
                    let _ = req.reply.send(answer);
                }
            }
            changes
        })
    };
    let mut door = DoorClient::connect(&socket, None).unwrap();
    let request = PolicyRequest {
        enabled: true,
        windows: vec!["sat,sun 10:00-14:00".into()],
        ..PolicyRequest::default()
    };
    assert_eq!(
        door.set_policy("bob", &request, "ada@console").unwrap(),
        "changed"
    );
    let card = Credential::Wiegand34 {
        facility: 300,
        card: 7,
    };
    assert_eq!(
        door.set_credential("bob", Some(card), "ada@console")
            .unwrap(),
        "changed"
    );
    let before = std::fs::read(&a.gallery).unwrap();
    // Bob's card for Ada: refused, on the same connection, which goes on.
    let e = door
        .set_credential("ada", Some(card), "ada@console")
        .unwrap_err();
    assert!(
        matches!(&e, ClientError::Refused(r) if r.contains("already belongs to bob")),
        "{e}"
    );
    let bad = PolicyRequest {
        windows: vec!["someday".into()],
        ..request.clone()
    };
    let e = door.set_policy("ada", &bad, "ada@console").unwrap_err();
    assert!(
        matches!(&e, ClientError::Refused(r) if r.starts_with("bad policy")),
        "{e}"
    );
    assert_eq!(std::fs::read(&a.gallery).unwrap(), before, "nothing stored");
    // A payload over the bound is refused unread, and the connection closed.
    let mut raw = DoorClient::connect(&socket, None).unwrap();
    let e = raw
        .request_with_payload(&format!("people policy ada {} by x", MAX_POLICY + 1), b"{}")
        .unwrap_err();
    assert!(
        matches!(&e, ClientError::Refused(r) if r.starts_with("too large")),
        "{e}"
    );
    stop.store(true, Ordering::SeqCst);
    drop(server);
    let changes = looped.join().unwrap();
    let g = Gallery::load(&a.gallery, "test-model").unwrap();
    let bob = g.get("bob").unwrap();
    assert_eq!(bob.credential, Some(card));
    assert_eq!(bob.policy, request.to_policy().unwrap());
    assert_eq!(
        changes,
        vec![
            (
                PeopleChange::Policy {
                    id: "bob".into(),
                    name: "Bob".into(),
                    policy: request.to_policy().unwrap()
                },
                "ada@console".to_owned()
            ),
            (
                PeopleChange::Credential {
                    id: "bob".into(),
                    name: "Bob".into(),
                    credential: Some(card)
                },
                "ada@console".to_owned()
            ),
        ]
    );
}

/// `picture SEQ` through the door's client: the PNG, or the door's refusal.
fn picture(socket: &Path, seq: u64) -> Result<Vec<u8>, String> {
    refusal(DoorClient::connect(socket, None).and_then(|mut d| d.picture(seq)))
}

/// `pictures unknown` through the door's client: the seqs, or the door's refusal.
fn unknown(socket: &Path) -> Result<Vec<u64>, String> {
    refusal(DoorClient::connect(socket, None).and_then(|mut d| d.unknown_pictures()))
}

fn refusal<T>(r: crate::door::control_api::client::Result<T>) -> Result<T, String> {
    match r {
        Ok(v) => Ok(v),
        Err(ClientError::Refused(e)) => Err(e),
        Err(e) => panic!("talking to the door: {e}"),
    }
}
