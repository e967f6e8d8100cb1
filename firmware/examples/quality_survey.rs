//! Measures face quality (sharpness, exposure, pose; see `facegate::vision::quality`) on photos
//! and prints one CSV line per photo with the door's and enrolment's verdicts: the data the
//! quality thresholds' defaults were set from.
//!
//! `find DIR -name '*.jpg' | cargo run --release -p facegate --example quality_survey > q.csv`
//!
//! `-- --blur SIGMA` (Gaussian blur, in photo pixels) or `-- --gain G` (every pixel value times
//! G, clipped) degrade each photo first, to check that the gates catch what they are for.
//! `-- --embeddings FILE` also writes each photo's f32 dlib embedding (path, then 128 values,
//! comma-separated), to see how far poor photos land from the person's other photos.

use anyhow::Context;
use facegate::vision::quality::{measure, QualityParams};
use facegate::{decode_file, ModelSet, Pipeline};
use std::io::BufRead;
use std::path::Path;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| -> anyhow::Result<Option<f32>> {
        match args.iter().position(|a| a == name) {
            None => Ok(None),
            Some(i) => Ok(Some(
                args.get(i + 1)
                    .with_context(|| format!("{name} needs a value"))?
                    .parse()
                    .with_context(|| format!("{name} needs a number"))?,
            )),
        }
    };
    let (blur, gain) = (value("--blur")?, value("--gain")?);
    let mut embeddings = match args.iter().position(|a| a == "--embeddings") {
        None => None,
        Some(i) => {
            let path = args.get(i + 1).context("--embeddings needs a file")?;
            let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/manifest.toml");
            let models = ModelSet::from_manifest(Path::new(manifest))?;
            let f32_pipeline = Pipeline::new(&models, Some("dlib_resnet_v1_f32"), None)?;
            Some((f32_pipeline, std::fs::File::create(path)?))
        }
    };
    let models = ModelSet::builtin().context("loading the built-in models")?;
    let mut pipeline = Pipeline::new(&models, None, None)?;
    let template = pipeline.embedder_spec().template;
    let door = QualityParams::default();
    let enrol = door.for_enrolment();
    println!(
        "path,size,sharpness,brightness,dark_clipped,bright_clipped,yaw,pitch,roll,door,enrolment"
    );
    let (mut measured, mut spent) = (0u32, std::time::Duration::ZERO);
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let path = Path::new(line.trim());
        let mut img = match decode_file(path) {
            Ok(i) => i,
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                continue;
            }
        };
        if let Some(sigma) = blur {
            img = image::imageops::blur(&img, sigma);
        }
        if let Some(g) = gain {
            img.pixels_mut()
                .for_each(|p| p.0 = p.0.map(|v| (f32::from(v) * g).round().min(255.0) as u8));
        }
        let Some(det) = pipeline.detect_largest(&img)? else {
            println!("{},,,,,,,,,no_face,no_face", path.display());
            continue;
        };
        let Some(chip) = pipeline.align(&img, &det) else {
            println!("{},,,,,,,,,no_chip,no_chip", path.display());
            continue;
        };
        let t0 = std::time::Instant::now();
        let m = measure(&chip, &template, &det.landmarks);
        measured += 1;
        spent += t0.elapsed();
        if let Some((p, out)) = &mut embeddings {
            use std::io::Write;
            // Same template and chip size: the chip is the same.
            let e = p.embed_chip(&chip)?;
            let values: Vec<String> = e.0.iter().map(|v| format!("{v:.5}")).collect();
            writeln!(out, "{},{}", path.display(), values.join(","))?;
        }
        let verdict = |q: &QualityParams| match q.judge(&m) {
            Ok(()) => "ok",
            Err(i) => i.as_str(),
        };
        println!(
            "{},{:.1},{:.4},{:.1},{:.4},{:.4},{:.3},{:.3},{:.2},{},{}",
            path.display(),
            det.bbox.size(),
            m.sharpness,
            m.brightness,
            m.dark_clipped,
            m.bright_clipped,
            m.yaw,
            m.pitch,
            m.roll,
            verdict(&door),
            verdict(&enrol)
        );
    }
    if measured > 0 {
        eprintln!(
            "{measured} faces measured, {:.1} us each",
            spent.as_secs_f64() * 1e6 / f64::from(measured)
        );
    }
    Ok(())
}
