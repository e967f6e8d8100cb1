//! Runs one stage of the door's per-frame work (detect, align + quality, embed) a given number
//! of times on a 640x480 frame made from a photo, for `scripts/pi_estimate`: counting the
//! instructions of runs with 0 and N rounds under QEMU gives that stage's instructions per frame.
//!
//! `stage_cost MANIFEST EMBEDDER STAGE ROUNDS PHOTO` (STAGE: none, detect, align, embed).

use facegate::config::Config;
use facegate::daemon::load_pipeline;
use facegate::vision::quality;
use image::imageops::FilterType;
use image::RgbImage;
use std::hint::black_box;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [manifest, embedder, stage, rounds, photo] = &args[..] else {
        anyhow::bail!("usage: stage_cost MANIFEST EMBEDDER STAGE ROUNDS PHOTO");
    };
    let rounds: usize = rounds.parse()?;
    let mut config = Config::default();
    config.recognition.models = Some(manifest.into());
    config.recognition.embedder = Some(embedder.clone());
    // No gallery: `auto` then means this CPU's form.
    config.gallery.path = "/nonexistent/gallery.toml".into();
    let mut pipeline = load_pipeline(&config)?;
    // The door's frame: the photo scaled to fit 640x480, on black.
    let img = facegate::decode_file(photo.as_ref())?;
    let s = (640.0 / img.width() as f32).min(480.0 / img.height() as f32);
    let (w, h) = (
        (img.width() as f32 * s) as u32,
        (img.height() as f32 * s) as u32,
    );
    let small = image::imageops::resize(&img, w, h, FilterType::Triangle);
    let mut frame = RgbImage::new(640, 480);
    image::imageops::overlay(&mut frame, &small, 0, 0);
    let det = pipeline
        .detect_largest(&frame)?
        .ok_or_else(|| anyhow::anyhow!("no face in {photo}"))?;
    let chip = pipeline
        .align(&frame, &det)
        .ok_or_else(|| anyhow::anyhow!("no chip"))?;
    let template = pipeline.embedder_spec().template;
    for _ in 0..rounds {
        match stage.as_str() {
            "none" => {}
            "detect" => {
                black_box(pipeline.detect_largest(black_box(&frame))?);
            }
            "align" => {
                let c = pipeline.align(black_box(&frame), &det);
                black_box(c.map(|c| quality::measure(&c, &template, &det.landmarks)));
            }
            "embed" => {
                black_box(pipeline.embed_chip(black_box(&chip))?);
            }
            other => anyhow::bail!("unknown stage {other:?}"),
        }
    }
    eprintln!("{} {stage} x{rounds}", pipeline.embedder_name());
    Ok(())
}
