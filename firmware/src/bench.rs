//! Per-stage timing of the photo pipeline on real photos, shared by `cargo bench` and
//! `facegate bench`, which measures on the device itself (e.g. int8 against f32 on a Pi), and
//! the door's frame rate with several recognition workers busy at once.

use crate::{decode_file, Embedding, Pipeline};
use image::RgbImage;
use std::path::PathBuf;
use std::time::Instant;

/// The stages timed, in order. "match" is 1:N against 1,000 synthetic embeddings; the last is
/// the whole photo from file to embedding. With the fast detector in use (the door's BlazeFace,
/// [`Pipeline::use_fast_detector`]) "detect" is BlazeFace and "landmarks" O-Net on its box.
pub const STAGES: [&str; 7] = [
    "decode",
    "detect (P+R-Net)",
    "landmarks (O-Net)",
    "align",
    "embed",
    "match 1:1000",
    "photo (decode..embed)",
];

/// A photo the benchmark cannot use.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct BenchError {
    /// The photo.
    pub path: String,
    /// Why.
    pub message: String,
}

/// Milliseconds per stage, photo and round: `ms[stage][photo][round]`.
#[derive(Debug, Clone)]
pub struct StageTimes {
    /// The measurements.
    pub ms: Vec<Vec<Vec<f64>>>,
}

/// The median as Python's `statistics.median` has it (mean of the middle two for an even
/// count), so figures compare with `scripts/dlib_reference.py`'s. NaN for no values.
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

impl StageTimes {
    /// Per stage: the median and the mean over photos of each photo's median over rounds
    /// (noise from other processes falls out of the per-photo median).
    pub fn summary(&self) -> Vec<(f64, f64)> {
        self.ms
            .iter()
            .map(|photos| {
                let per_photo: Vec<f64> = photos.iter().map(|r| median(r)).collect();
                let mean = per_photo.iter().sum::<f64>() / per_photo.len() as f64;
                (median(&per_photo), mean)
            })
            .collect()
    }
}

/// Runs the pipeline on every photo, `rounds` times after one warm-up round (which builds the
/// plans for new image sizes), and times each stage of the largest face's path. `after_round`
/// is called after each timed round (e.g. to sample memory).
pub fn time_photos(
    p: &mut Pipeline,
    files: &[PathBuf],
    rounds: usize,
    mut after_round: impl FnMut(usize),
) -> Result<StageTimes, BenchError> {
    let gallery: Vec<Embedding> = (0..1000)
        .map(|i| {
            Embedding(
                (0..128)
                    .map(|j| (((i * 131 + j * 71) % 997) as f32 / 997.0 - 0.5) * 0.2)
                    .collect(),
            )
        })
        .collect();
    let mut ms = vec![vec![Vec::with_capacity(rounds); files.len()]; STAGES.len()];
    for round in 0..=rounds {
        for (ix, f) in files.iter().enumerate() {
            let fail = |message: String| BenchError {
                path: f.display().to_string(),
                message,
            };
            let t0 = Instant::now();
            let img = decode_file(f).map_err(|e| fail(e.to_string()))?;
            let t1 = Instant::now();
            let (t2, dets) = if let Some(fast) = p.fast_detector() {
                let mut found = fast.detect(&img).map_err(|e| fail(e.to_string()))?;
                found.sort_by(|a, b| b.bbox.area().total_cmp(&a.bbox.area()));
                let t2 = Instant::now();
                let mut dets = Vec::new();
                if let Some(f) = found.first() {
                    dets.extend(
                        p.detector()
                            .landmarks_in(&img, &f.bbox)
                            .map_err(|e| fail(e.to_string()))?,
                    );
                }
                (t2, dets)
            } else {
                let cands = p
                    .detector()
                    .propose(&img)
                    .map_err(|e| fail(e.to_string()))?;
                let t2 = Instant::now();
                let dets = p
                    .detector()
                    .landmarks(&img, &cands)
                    .map_err(|e| fail(e.to_string()))?;
                (t2, dets)
            };
            let t3 = Instant::now();
            let det = dets.first().ok_or_else(|| fail("no face found".into()))?;
            let chip = p
                .align(&img, det)
                .ok_or_else(|| fail("the face's landmarks are degenerate".into()))?;
            let t4 = Instant::now();
            let e = p.embed_chip(&chip).map_err(|e| fail(e.to_string()))?;
            let t5 = Instant::now();
            let best = gallery
                .iter()
                .map(|g| p.distance(&e, g))
                .fold(f32::INFINITY, f32::min);
            let t6 = Instant::now();
            std::hint::black_box(best);
            if round == 0 {
                continue;
            }
            let spans = [
                (t0, t1),
                (t1, t2),
                (t2, t3),
                (t3, t4),
                (t4, t5),
                (t5, t6),
                (t0, t5),
            ];
            for (stage, (a, b)) in spans.into_iter().enumerate() {
                ms[stage][ix].push((b - a).as_secs_f64() * 1e3);
            }
        }
        if round > 0 {
            after_round(round);
        }
    }
    Ok(StageTimes { ms })
}

/// Default size of a shown face in the frame: a person about a metre from a door camera.
pub const DEFAULT_FACE_PX: f32 = 160.0;

/// Places photos side by side in a `w`x`h` frame on mid grey, as a door camera sees the people
/// in them (the simulator's frames, `facegate bench --workers`): each scaled so its largest face
/// (`face`, in the photo's pixels) is `face_px` pixels and centred in its part of the frame; a
/// photo without a face is fitted whole.
pub fn compose(photos: &[(&RgbImage, Option<crate::BBox>, f32)], w: u32, h: u32) -> RgbImage {
    let mut frame = RgbImage::from_pixel(w, h, image::Rgb([118, 118, 118]));
    let n = photos.len().max(1) as u32;
    let cell_w = w / n;
    for (i, (img, face, face_px)) in photos.iter().enumerate() {
        let (k, cx, cy) = match face {
            Some(b) => (
                face_px / b.size().max(1.0),
                b.x + b.w / 2.0,
                b.y + b.h / 2.0,
            ),
            None => (
                (cell_w as f32 / img.width() as f32).min(h as f32 / img.height() as f32),
                img.width() as f32 / 2.0,
                img.height() as f32 / 2.0,
            ),
        };
        let nw = ((img.width() as f32 * k).round() as u32).max(1);
        let nh = ((img.height() as f32 * k).round() as u32).max(1);
        let small = image::imageops::resize(*img, nw, nh, image::imageops::FilterType::Triangle);
        // Paste so the face centre lands on the cell centre, clipped to the cell.
        let ox = (i as u32 * cell_w + cell_w / 2) as i64 - (cx * k).round() as i64;
        let oy = (h / 2) as i64 - (cy * k).round() as i64;
        let x0 = (i as u32 * cell_w) as i64;
        let x1 = x0 + cell_w as i64;
        for (x, y, p) in small.enumerate_pixels() {
            let (fx, fy) = (ox + x as i64, oy + y as i64);
            if fx >= x0 && fx < x1 && fy >= 0 && fy < h as i64 {
                frame.put_pixel(fx as u32, fy as u32, *p);
            }
        }
    }
    frame
}

/// What [`door_rate`] measured.
#[derive(Debug, Clone)]
pub struct DoorRate {
    /// Workers that ran side by side.
    pub workers: usize,
    /// Door frames (detect, align, embed) done a second by all of them together.
    pub frames_per_second: f64,
    /// Median time of one frame on one worker, ms.
    pub frame_ms: f64,
    /// Frames done in all.
    pub frames: usize,
}

/// The door's frame path (largest face, alignment, embedding, as `facegated` runs it) on
/// `frames`, by `workers` copies of `p` side by side for about `seconds`, after one warm-up frame
/// each: what a device really does with its cores busy (shared caches and memory bus included),
/// which counting one core's instructions cannot tell.
pub fn door_rate(
    p: &Pipeline,
    frames: &[image::RgbImage],
    workers: usize,
    seconds: f64,
) -> Result<DoorRate, BenchError> {
    let fail = |message: String| BenchError {
        path: "door frame".into(),
        message,
    };
    if frames.is_empty() {
        return Err(fail("no frames".into()));
    }
    let one = |p: &mut Pipeline, img: &image::RgbImage| -> Result<(), BenchError> {
        let det = p.detect_largest(img).map_err(|e| fail(e.to_string()))?;
        let det = det.ok_or_else(|| fail("no face found".into()))?;
        let chip = p
            .align(img, &det)
            .ok_or_else(|| fail("the face's landmarks are degenerate".into()))?;
        std::hint::black_box(p.embed_chip(&chip).map_err(|e| fail(e.to_string()))?);
        Ok(())
    };
    let workers = workers.max(1);
    let barrier = std::sync::Barrier::new(workers);
    let span = std::time::Duration::from_secs_f64(seconds.max(0.1));
    let results: Vec<Result<(Vec<f64>, f64), BenchError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let (barrier, one) = (&barrier, &one);
                let mut p = p.clone();
                s.spawn(move || {
                    one(&mut p, &frames[w % frames.len()])?;
                    barrier.wait();
                    let start = Instant::now();
                    let mut ms = Vec::new();
                    let mut i = w;
                    while start.elapsed() < span {
                        let t = Instant::now();
                        one(&mut p, &frames[i % frames.len()])?;
                        ms.push(t.elapsed().as_secs_f64() * 1e3);
                        i += 1;
                    }
                    Ok((ms, start.elapsed().as_secs_f64()))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(fail("a worker panicked".into())))
            })
            .collect()
    });
    let mut all = Vec::new();
    let mut rate = 0.0;
    for r in results {
        let (ms, secs) = r?;
        rate += ms.len() as f64 / secs;
        all.extend(ms);
    }
    Ok(DoorRate {
        workers,
        frames_per_second: rate,
        frame_ms: median(&all),
        frames: all.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_matches_pythons() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn summary_takes_each_photos_median_then_the_median_over_photos() {
        let t = StageTimes {
            // One stage, three photos; one round of photo 0 was disturbed (100 ms).
            ms: vec![vec![
                vec![10.0, 100.0, 11.0],
                vec![20.0, 21.0, 22.0],
                vec![40.0; 3],
            ]],
        };
        let (med, mean) = t.summary()[0];
        assert_eq!(med, 21.0);
        assert!((mean - (11.0 + 21.0 + 40.0) / 3.0).abs() < 1e-9);
    }
}
