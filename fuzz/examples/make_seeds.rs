//! Writes the seed corpus (`corpus/TARGET/`) from the pinned fixture photos, shrunk to a few KB
//! so the fuzzer mutates headers and entropy-coded data rather than megabytes of pixels.
//! Usage: `cargo run --example make_seeds -- FIXTURES_DIR` (`scripts/fetch_fixtures.py` fills it).

use facegate::people::crops::CropRef;
use facegate::people::gallery::{Enrolment, Gallery, Person};
use facegate::records::audit::{AuditLog, AuditSink, Event, EventKind};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::imageops::FilterType;
use image::{DynamicImage, ImageEncoder};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

fn jpeg(img: &DynamicImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(img)
        .unwrap();
    out
}

fn png(img: &DynamicImage) -> Vec<u8> {
    let mut out = Vec::new();
    PngEncoder::new(&mut out)
        .write_image(
            img.as_bytes(),
            img.width(),
            img.height(),
            img.color().into(),
        )
        .unwrap();
    out
}

/// `jpeg` with an EXIF APP1 segment saying "rotate 90" (orientation 6), as phones write.
fn with_exif_orientation(jpeg: &[u8]) -> Vec<u8> {
    let mut tiff = b"II*\0\x08\0\0\0\x01\0".to_vec();
    tiff.extend_from_slice(&[0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0]);
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let len = (app1.len() + 2) as u16;
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// `jpeg` without its Huffman tables, as many UVC cameras send MJPEG frames.
fn without_huffman_tables(jpeg: &[u8]) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    let mut i = 2;
    while i + 4 <= jpeg.len() && jpeg[i] == 0xFF && jpeg[i + 1] != 0xDA {
        let len = u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]) as usize;
        if jpeg[i + 1] != 0xC4 {
            out.extend_from_slice(&jpeg[i..i + 2 + len]);
        }
        i += 2 + len;
    }
    out.extend_from_slice(&jpeg[i..]);
    out
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn main() {
    let fixtures = PathBuf::from(
        std::env::args()
            .nth(1)
            .expect("usage: make_seeds FIXTURES_DIR"),
    );
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let photo = |name: &str| image::open(fixtures.join(name)).unwrap();
    let face = photo("obama.jpg").resize(40, 40, FilterType::Triangle);
    let rgba = photo("32bit.png").resize(24, 24, FilterType::Triangle);

    let d = corpus.join("decode");
    let small = jpeg(&face, 70);
    write(&d, "face.jpg", &small);
    write(
        &d,
        "grey.jpg",
        &jpeg(&DynamicImage::ImageLuma8(face.to_luma8()), 60),
    );
    write(&d, "exif_rotated.jpg", &with_exif_orientation(&small));
    write(
        &d,
        "face.png",
        &png(&face.resize(16, 16, FilterType::Triangle)),
    );
    write(&d, "alpha.png", &png(&rgba));
    write(
        &d,
        "grey16.png",
        &png(&DynamicImage::ImageLuma16(
            rgba.resize(8, 8, FilterType::Triangle).to_luma16(),
        )),
    );

    let d = corpus.join("frame");
    let tiny = jpeg(&face.resize(16, 12, FilterType::Triangle), 50);
    write(&d, "mjpeg", &[&[0u8][..], &tiny].concat());
    write(
        &d,
        "mjpeg_no_dht",
        &[&[0u8][..], &without_huffman_tables(&tiny)].concat(),
    );
    let mut yuyv = vec![1u8, 8, 0, 2, 0];
    yuyv.extend((0..32).map(|i| (i * 37 % 256) as u8));
    write(&d, "yuyv_8x2", &yuyv);

    let d = corpus.join("gallery");
    let mut g = Gallery::new("sface_2021dec_int8:0123456789abcdef");
    for (id, name, n) in [("ada", "Ada Lovelace", 2), ("alan.t", "Alan Turing", 1)] {
        g.people.push(Person {
            id: id.into(),
            name: name.into(),
            enrolments: (0..n)
                .map(|k| Enrolment {
                    enrolled_at: "2026-01-02T03:04:05Z".into(),
                    source: format!("{id}{k}.jpg"),
                    sha256: "ab".repeat(32),
                    embedding: (0..8).map(|i| ((i + k) as f32 * 0.37).sin()).collect(),
                    crop: (k == 0).then(|| CropRef {
                        sha256: "cd".repeat(32),
                        landmarks: [
                            [38.0, 52.0],
                            [74.0, 52.0],
                            [56.0, 72.0],
                            [42.0, 92.0],
                            [70.0, 92.0],
                        ],
                    }),
                })
                .collect(),
            policy: Default::default(),
            credential: None,
            pin_hash: None,
            duress_hash: None,
        });
    }
    write(
        &d,
        "two_people.toml",
        toml::to_string(&g).unwrap().as_bytes(),
    );
    write(
        &d,
        "empty.toml",
        toml::to_string(&Gallery::new("m")).unwrap().as_bytes(),
    );

    let d = corpus.join("config");
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd/config.toml");
    write(&d, "shipped.toml", &std::fs::read(shipped).unwrap());
    write(&d, "empty.toml", b"");
    write(
        &d,
        "small.toml",
        b"[camera]\nformat = \"yuyv\"\nfps = 10\n[lock]\ngpio = 27\nactive_low = true\n\
          [recognition]\nthreshold = 0.4\nframes = 2\n[audit]\non_failure = \"grant_and_alarm\"\n",
    );

    let d = corpus.join("scenario");
    write(
        &d,
        "door.toml",
        b"description = \"a stranger, then Obama\"\nfps = 10\n\n[config.lock]\nunlock_seconds = 3.0\n\n\
          [[enroll]]\nid = \"obama\"\nname = \"Barack Obama\"\nphotos = [\"photos/obama.jpg\"]\n\n\
          [[step]]\nshow = \"photos/biden.jpg\"\nface_px = 160\nseconds = 5\nexpect = \"no_unlock\"\n\n\
          [[step]]\nshow = [\"a.jpg\", \"b.jpg\"]\nframes = 30\nfps = 5\nexpect = \"unlock\"\nperson = \"obama\"\nwithin = 1.0\n\n\
          [[step]]\nstall = 2.5\n\n[[step]]\nsignal = \"hup\"\n\n[expect]\nunlocks = 1\nlocked_at_end = true\n",
    );
    write(
        &d,
        "texts.toml",
        b"fps = 15\n[[step]]\nconfig_text = \"[lock]\\nunlock_seconds = 2.0\\n\"\n\n\
          [[step]]\ngallery_text = \"format = 2\\nmodel = \\\"m\\\"\\n\"\n\n[[step]]\nbad_frames = 3\n\n\
          [[step]]\nremove = \"obama\"\n\n[[step]]\nexit_button = true\n",
    );

    let d = corpus.join("audit");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    {
        let mut log = AuditLog::open(&path).unwrap();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000);
        for (i, kind) in [
            EventKind::Start,
            EventKind::Deny,
            EventKind::Grant,
            EventKind::Relock,
        ]
        .into_iter()
        .enumerate()
        {
            let mut e = Event::new(kind, t0, Duration::from_secs(i as u64));
            if kind == EventKind::Grant {
                e.identity = Some("ada".into());
                e.distance = Some(0.31);
                e.frames = Some(3);
            }
            log.record(&e).unwrap();
        }
    }
    let chain = std::fs::read(&path).unwrap();
    write(&d, "chain.jsonl", &chain);
    write(&d, "torn.jsonl", &chain[..chain.len() - 25]);
    let unchained = b"{\"time\":\"2026-01-01T00:00:00Z\",\"t\":0.0,\"event\":\"start\"}\n";
    write(
        &d,
        "unchained_then_chain.jsonl",
        &[&unchained[..], &chain].concat(),
    );
    let second = chain.iter().position(|&b| b == b'\n').unwrap() + 1;
    write(&d, "rotated.jsonl", &chain[second..]);
}
