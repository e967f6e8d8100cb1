//! Measures the presentation cues of `facegate::access::cues` (the NIR view and the paper/screen
//! border) on photos: BPCER on bona fide stand-ins, APCER on the simulator's synthetic print
//! and screen attacks, and each cue's cost per call. A measurement tool, not a test.
//!
//! `cargo run --release -p facegate-sim --example cue_eval -- [--limit N] DIR_OR_PHOTO...`
//! (each argument is one set; directories are walked, at most N photos a set).
//!
//! Bona fide frames are the photo scaled to *cover* the 640x480 frame around its face (a pasted
//! photo on the simulator's grey would show its own edges, a border no live scene has); attack
//! frames are what a scenario's `attack = "print" | "screen"` shows (face 160 px).

use facegate::access::cues::{border, nir_face, MotionTrack, NirConfig};
use facegate::{decode_file, BBox, DetectorParams, ModelSet, Pipeline};
use facegate_sim::attack::{infrared, present, present_nir, tilt, Attack};
use facegate_sim::runner::compose;
use image::RgbImage;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const W: u32 = 640;
const H: u32 = 480;

fn photos(p: &Path, out: &mut Vec<PathBuf>) {
    if p.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        entries.sort();
        for e in entries {
            photos(&e, out);
        }
    } else if p
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
    {
        out.push(p.to_owned());
    }
}

/// The largest 4:3 part of `img` around `face`, resized to the frame.
fn cover(img: &RgbImage, face: &BBox) -> RgbImage {
    let (iw, ih) = (img.width() as f32, img.height() as f32);
    let (cw, ch) = if iw / ih > W as f32 / H as f32 {
        (ih * W as f32 / H as f32, ih)
    } else {
        (iw, iw * H as f32 / W as f32)
    };
    let cx = (face.x + face.w / 2.0 - cw / 2.0).clamp(0.0, iw - cw);
    let cy = (face.y + face.h / 2.0 - ch / 2.0).clamp(0.0, ih - ch);
    let crop = image::imageops::crop_imm(img, cx as u32, cy as u32, cw as u32, ch as u32);
    image::imageops::resize(
        &crop.to_image(),
        W,
        H,
        image::imageops::FilterType::Triangle,
    )
}

#[derive(Default)]
struct Tally {
    bona: usize,
    bona_border: usize,
    bona_nir: usize,
    attacks: [usize; 2],
    border_pass: [usize; 2],
    nir_pass: [usize; 2],
    border_time: Duration,
    border_calls: u32,
    nir_time: Duration,
    nir_calls: u32,
    detect_time: Duration,
    /// Attacks waved (turned to and fro) in front of the camera, and those the motion cue let
    /// through.
    waved: [usize; 2],
    motion_pass: [usize; 2],
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut limit = usize::MAX;
    if let Some(i) = args.iter().position(|a| a == "--limit") {
        limit = args
            .get(i + 1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(limit);
        args.drain(i..(i + 2).min(args.len()));
    }
    let models = ModelSet::builtin().expect("models");
    // The door's detector settings (min_face 80, faces down to 0.75 of it).
    let mut params = DetectorParams::for_photos(&models.manifest.detector);
    params.min_face = 60.0;
    let mut pipeline = Pipeline::new(&models, None, Some(params)).expect("pipeline");
    // The door's default detector (`recognition.detector = "blazeface"`).
    pipeline.use_fast_detector(&models).expect("BlazeFace");
    let nir = NirConfig::default();
    for set in &args {
        let mut list = Vec::new();
        photos(Path::new(set), &mut list);
        list.truncate(limit);
        let mut t = Tally::default();
        for path in &list {
            let Ok(img) = decode_file(path) else { continue };
            let Some(face) = pipeline
                .detect(&img)
                .ok()
                .and_then(|d| d.first().map(|d| d.bbox))
            else {
                continue;
            };
            // Bona fide: the door finds the face, both cues judge it.
            let frame = cover(&img, &face);
            let s = Instant::now();
            let Some(det) = pipeline.detect_largest(&frame).ok().flatten() else {
                continue;
            };
            t.detect_time += s.elapsed();
            t.bona += 1;
            let s = Instant::now();
            let framed = border(&frame, &det.bbox);
            t.border_time += s.elapsed();
            t.border_calls += 1;
            t.bona_border += usize::from(framed);
            let ir = infrared(&frame);
            let s = Instant::now();
            let seen = nir_face(&mut pipeline, &ir, &det.bbox, &nir);
            t.nir_time += s.elapsed();
            t.nir_calls += 1;
            t.bona_nir += usize::from(seen.is_err());
            if framed || seen.is_err() {
                eprintln!(
                    "bona fide refused: {} border={framed} nir={seen:?}",
                    path.display()
                );
            }
            for (k, attack) in [Attack::Print, Attack::Screen].into_iter().enumerate() {
                let shown = present(&img, attack);
                let shown_face = pipeline
                    .detect(&shown)
                    .ok()
                    .and_then(|d| d.first().map(|d| d.bbox));
                let colour = compose(&[(&shown, shown_face, 160.0)], W, H);
                let ir_view = present_nir(&img, Some(attack));
                let ir = compose(&[(&ir_view, shown_face, 160.0)], W, H);
                // An attack the door sees no face in is not accepted by anything: not counted.
                let Some(det) = pipeline.detect_largest(&colour).ok().flatten() else {
                    continue;
                };
                t.attacks[k] += 1;
                t.border_pass[k] += usize::from(!border(&colour, &det.bbox));
                t.nir_pass[k] += usize::from(nir_face(&mut pipeline, &ir, &det.bbox, &nir).is_ok());
                // The medium turned to and fro by up to 30 degrees over 10 frames (1 s at 10 fps).
                let mut track = MotionTrack::default();
                let mut flagged = false;
                let mut seen = 0;
                for f in 0..10 {
                    let yaw = 30.0 * (f as f32 * std::f32::consts::PI / 9.0).sin();
                    let moved = tilt(&colour, yaw, 800.0);
                    if let Some(d) = pipeline.detect_largest(&moved).ok().flatten() {
                        seen += 1;
                        flagged |= track.observe(&d).is_some();
                    }
                }
                if seen >= 5 {
                    t.waved[k] += 1;
                    t.motion_pass[k] += usize::from(!flagged);
                }
            }
        }
        // "a/b (p%)", the form of every rate below.
        let rate =
            |a: usize, b: usize| format!("{a}/{b} ({:.1}%)", 100.0 * a as f64 / b.max(1) as f64);
        let per_call = |d: std::time::Duration, n: u32| d.as_secs_f64() * 1e3 / f64::from(n.max(1));
        println!(
            "set {set}: {} bona fide faces; the door's detection of the colour frame {:.2} ms",
            t.bona,
            t.detect_time.as_secs_f64() * 1e3 / t.bona.max(1) as f64
        );
        println!(
            "  border: BPCER {}; APCER print {}, screen {}; {:.2} ms a call",
            rate(t.bona_border, t.bona),
            rate(t.border_pass[0], t.attacks[0]),
            rate(t.border_pass[1], t.attacks[1]),
            per_call(t.border_time, t.border_calls),
        );
        println!(
            "  nir:    BPCER {}; APCER print {}, screen {}; {:.2} ms a call",
            rate(t.bona_nir, t.bona),
            rate(t.nir_pass[0], t.attacks[0]),
            rate(t.nir_pass[1], t.attacks[1]),
            per_call(t.nir_time, t.nir_calls),
        );
        println!(
            "  motion: APCER print {}, screen {} waved 30 degrees; BPCER not measurable here (no video of live heads)",
            rate(t.motion_pass[0], t.waved[0]),
            rate(t.motion_pass[1], t.waved[1]),
        );
    }
}
