//! The face crop kept with each enrolment, so that another embedding network can embed an
//! enrolled face later (`facegate reembed`) without the person coming back, and its store: one
//! PNG per crop beside the gallery, named by its sha256.
//!
//! A crop is the photo's face warped by the similarity that puts its 5 landmarks onto
//! [`CROP_TEMPLATE`]: eyes level and at a fixed place, 56 px apart, in a [`CROP_SIZE`]-pixel
//! square. The landmarks are kept in crop pixels, so aligning the face to any network's template
//! is one more similarity warp from the crop. Crops are biometric data like the embeddings:
//! files 0600 in a directory 0700, each written atomically before the gallery that refers to it,
//! and deleted once no gallery entry refers to them (so removing a person removes their face).
//! The door daemon never reads them.

use crate::fs::{write_atomic, FileError};
use crate::vision::align::{Aligner, Similarity};
use image::RgbImage;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Side of a crop in pixels.
///
/// Why 240 with 56 px between the eyes: the chips of the manifest's networks, placed from the
/// mean face, span x -1.52..+1.52 and y -1.42..+1.92 eye distances around the eyes' midpoint
/// (dlib's 150 px chip with padding 0.25 is the widest down, ArcFace's 112 px template the widest
/// across and up). At 56 px per eye distance that is 170 x 187 px; 240 px leaves 26-35 px (0.5
/// eye distance) on every side for faces whose landmarks sit off the mean (see the tests). 56 px
/// is just above the 54.8 px of dlib's chip, the sharpest template, so re-aligning from a crop
/// never magnifies (a 112 px ArcFace chip needs only 35 px).
pub const CROP_SIZE: u32 = 240;

/// Where the 5 landmarks (eyes, nose, mouth corners) go in a crop: dlib's template scaled to
/// 56 px between the eyes, eyes' midpoint at (120, 106) so the chips' union is centred.
pub const CROP_TEMPLATE: [[f32; 2]; 5] = [
    [92.0, 105.87],
    [148.0, 106.13],
    [120.19, 139.14],
    [93.94, 163.38],
    [146.41, 163.31],
];

/// Errors of the crop store.
#[derive(Debug, thiserror::Error)]
pub enum CropError {
    /// The crop file could not be read or written.
    #[error(transparent)]
    Io(#[from] FileError),
    /// The crop file is not the crop the gallery refers to (changed, truncated or not a PNG).
    #[error("{path}: {message}")]
    Corrupt {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The crop could not be encoded.
    #[error("cannot encode a face crop: {0}")]
    Encode(String),
}

/// A gallery entry's reference to its face crop.
///
/// Stored as one string, `"<sha256>:<landmarks as base64 of 10 little-endian f32>"`: exact, and
/// a 10,000-person gallery parses ~4x faster than with a table of decimal numbers per entry (the
/// daemon parses the whole file on every reload).
#[derive(Debug, Clone, PartialEq)]
pub struct CropRef {
    /// sha256 of the PNG file (also its name in the store).
    pub sha256: String,
    /// The 5 landmarks in crop pixels, as the detector found them in the photo.
    pub landmarks: [[f32; 2]; 5],
}

impl Serialize for CropRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use base64::Engine;
        let bytes: Vec<u8> = self
            .landmarks
            .iter()
            .flatten()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        s.serialize_str(&format!("{}:{b64}", self.sha256))
    }
}

impl<'de> Deserialize<'de> for CropRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use base64::Engine;
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let bad = || serde::de::Error::custom("crop must be \"<sha256>:<base64 landmarks>\"");
        let (sha256, b64) = text.split_once(':').ok_or_else(bad)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64.as_bytes())
            .map_err(|_| bad())?;
        if bytes.len() != 40 {
            return Err(bad());
        }
        let v: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok(Self {
            sha256: sha256.to_owned(),
            landmarks: std::array::from_fn(|i| [v[2 * i], v[2 * i + 1]]),
        })
    }
}

impl CropRef {
    /// Checks what a gallery file says: the hash names a file, the landmarks are numbers.
    pub fn validate(&self) -> Result<(), String> {
        let hex = self.sha256.len() == 64
            && self
                .sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex {
            return Err(format!(
                "crop sha256 {:?} is not 64 lower-case hex digits",
                self.sha256
            ));
        }
        if !self.landmarks.iter().flatten().all(|v| v.is_finite()) {
            return Err("crop landmarks must be finite numbers".into());
        }
        Ok(())
    }
}

/// A face crop with its landmarks in crop pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceCrop {
    /// The [`CROP_SIZE`] square image.
    pub image: RgbImage,
    /// The 5 landmarks in crop pixels.
    pub landmarks: [[f32; 2]; 5],
}

impl FaceCrop {
    /// The crop of the face with `landmarks` (image pixels) in `img`; `None` when the
    /// landmarks are degenerate.
    pub fn cut(aligner: &mut Aligner, img: &RgbImage, landmarks: &[[f32; 2]; 5]) -> Option<Self> {
        let to_crop = Similarity::estimate(landmarks, &CROP_TEMPLATE)?;
        let image = aligner.chip(img, landmarks, &CROP_TEMPLATE, CROP_SIZE)?;
        let landmarks = landmarks.map(|p| {
            let (x, y) = to_crop.apply(f64::from(p[0]), f64::from(p[1]));
            [x as f32, y as f32]
        });
        Some(Self { image, landmarks })
    }

    /// The face aligned to a network's `template` in a `size` chip, as from the photo.
    pub fn chip(
        &self,
        aligner: &mut Aligner,
        template: &[[f32; 2]; 5],
        size: u32,
    ) -> Option<RgbImage> {
        aligner.chip(&self.image, &self.landmarks, template, size)
    }

    /// Encodes the crop as PNG (lossless: a later network sees what enrolment saw).
    pub fn encode(&self) -> Result<EncodedCrop, CropError> {
        let mut png = Vec::new();
        image::codecs::png::PngEncoder::new_with_quality(
            &mut png,
            image::codecs::png::CompressionType::Best,
            image::codecs::png::FilterType::Adaptive,
        )
        .write_image(
            self.image.as_raw(),
            self.image.width(),
            self.image.height(),
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| CropError::Encode(e.to_string()))?;
        Ok(EncodedCrop {
            reference: CropRef {
                sha256: crate::vision::models::sha256_hex(&png),
                landmarks: self.landmarks,
            },
            png,
        })
    }
}

use image::ImageEncoder as _;

/// A crop encoded for the store, not yet written: what a new enrolment carries until the
/// gallery that refers to it is saved ([`crate::people::gallery::Locked::save_with_crops`]).
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedCrop {
    /// The reference the gallery entry holds.
    pub reference: CropRef,
    png: Vec<u8>,
}

impl EncodedCrop {
    /// A crop made elsewhere (the console, from a photo or a decision picture) as its PNG
    /// bytes: in this module's format, so its landmarks are taken as [`CROP_TEMPLATE`], where
    /// the format puts them. The bytes are not decoded here (the door never decodes a client's
    /// image); the caller checks their size and signature.
    pub fn from_png(png: Vec<u8>) -> Self {
        Self {
            reference: CropRef {
                sha256: crate::vision::models::sha256_hex(&png),
                landmarks: CROP_TEMPLATE,
            },
            png,
        }
    }

    /// The PNG file's bytes.
    pub fn png(&self) -> &[u8] {
        &self.png
    }
}

/// The crops of one gallery file: `<gallery minus extension>.crops/<sha256>.png`.
#[derive(Debug, Clone)]
pub struct CropStore {
    dir: PathBuf,
}

impl CropStore {
    /// The store beside the gallery at `gallery` (e.g. `gallery.toml` -> `gallery.crops/`).
    pub fn for_gallery(gallery: &Path) -> Self {
        Self {
            dir: gallery.with_extension("crops"),
        }
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}.png"))
    }

    /// Writes `crop` (atomically, 0600, directory 0700) unless the store has it already. Only
    /// under the gallery's lock: an unlocked write could be pruned by a concurrent save.
    pub(crate) fn put(&self, crop: &EncodedCrop) -> Result<(), FileError> {
        let io = |source| FileError {
            path: self.dir.clone(),
            source,
        };
        if !self.dir.is_dir() {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&self.dir)
                .map_err(io)?;
        }
        let path = self.path(&crop.reference.sha256);
        if path.is_file() {
            // Content-addressed and written by rename: an existing file is this crop.
            return Ok(());
        }
        write_atomic(&path, &crop.png)
    }

    /// Reads the crop `r` refers to, checking its hash and size.
    pub fn get(&self, r: &CropRef) -> Result<FaceCrop, CropError> {
        r.validate().map_err(|message| CropError::Corrupt {
            path: self.dir.clone(),
            message,
        })?;
        let path = self.path(&r.sha256);
        let corrupt = |message: String| CropError::Corrupt {
            path: path.clone(),
            message,
        };
        let bytes = std::fs::read(&path).map_err(|source| FileError {
            path: path.clone(),
            source,
        })?;
        let actual = crate::vision::models::sha256_hex(&bytes);
        if actual != r.sha256 {
            return Err(corrupt(format!(
                "sha256 is {actual}, the gallery expects {}",
                r.sha256
            )));
        }
        let image = image::load_from_memory_with_format(&bytes, image::ImageFormat::Png)
            .map_err(|e| corrupt(e.to_string()))?
            .to_rgb8();
        if image.dimensions() != (CROP_SIZE, CROP_SIZE) {
            return Err(corrupt(format!(
                "crop is {:?}, expected {CROP_SIZE}x{CROP_SIZE}",
                image.dimensions()
            )));
        }
        Ok(FaceCrop {
            image,
            landmarks: r.landmarks,
        })
    }

    /// After `gallery` was saved: deletes the crops it no longer refers to (and temporary files
    /// of an interrupted write). Returns how many files were deleted, and warns about crops the
    /// gallery refers to that are missing. Only under the gallery's lock.
    pub(crate) fn prune<'a>(
        &self,
        referenced: impl IntoIterator<Item = &'a CropRef>,
    ) -> Result<usize, FileError> {
        let io = |source| FileError {
            path: self.dir.clone(),
            source,
        };
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io(e)),
        };
        let wanted: HashSet<String> = referenced
            .into_iter()
            .map(|c| format!("{}.png", c.sha256))
            .collect();
        let mut present = HashSet::new();
        let mut removed = 0;
        for entry in entries {
            let entry = entry.map_err(io)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if wanted.contains(&name) {
                present.insert(name);
                continue;
            }
            let path = entry.path();
            std::fs::remove_file(&path).map_err(|source| FileError { path, source })?;
            removed += 1;
        }
        if removed > 0 {
            std::fs::File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(io)?;
        }
        let missing = wanted.len() - present.len();
        if missing > 0 {
            tracing::warn!(
                dir = %self.dir.display(),
                missing,
                "face crops the gallery refers to are missing: those enrolments cannot be re-embedded"
            );
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chip footprint (its 4 corners) in crop pixels for a face with `landmarks` in the crop.
    fn footprint(
        landmarks: &[[f32; 2]; 5],
        template: &[[f32; 2]; 5],
        size: u32,
    ) -> [(f64, f64); 4] {
        let to_crop = Similarity::estimate(landmarks, template).unwrap().inverse();
        let s = f64::from(size);
        [(0.0, 0.0), (s, 0.0), (0.0, s), (s, s)].map(|(x, y)| to_crop.apply(x, y))
    }

    /// Templates of every embedder in the shipped manifest, and ArcFace's (SFace, 112 px).
    fn templates() -> Vec<([[f32; 2]; 5], u32)> {
        let m =
            crate::vision::models::Manifest::parse(crate::vision::models::BUILTIN_MANIFEST, "test")
                .unwrap();
        let mut t: Vec<_> = m
            .embedders
            .values()
            .map(|e| (e.template, e.input_size))
            .collect();
        t.push((
            [
                [38.2946, 51.6963],
                [73.5318, 51.5014],
                [56.0252, 71.7366],
                [41.5493, 92.3655],
                [70.7299, 92.2041],
            ],
            112,
        ));
        t
    }

    #[test]
    fn every_template_fits_in_the_crop_with_margin() {
        for (template, size) in templates() {
            for (x, y) in footprint(&CROP_TEMPLATE, &template, size) {
                let margin = [x, y, f64::from(CROP_SIZE) - x, f64::from(CROP_SIZE) - y]
                    .into_iter()
                    .fold(f64::INFINITY, f64::min);
                assert!(
                    margin >= 25.0,
                    "{size} px template: corner ({x:.1}, {y:.1}) has {margin:.1} px margin"
                );
            }
        }
        // Re-aligning to dlib's chip never magnifies the crop.
        let dlib = &templates()[0];
        let s = Similarity::estimate(&CROP_TEMPLATE, &dlib.0)
            .unwrap()
            .scale();
        assert!(s <= 1.0, "crop to dlib chip scale {s}");
    }

    #[test]
    fn a_crop_keeps_the_landmarks_and_round_trips_through_png() {
        // A synthetic face: landmarks somewhere in a photo, rotated 20 degrees and large.
        let (c, s) = (20f64.to_radians().cos(), 20f64.to_radians().sin());
        let lm = CROP_TEMPLATE.map(|p| {
            let (x, y) = (f64::from(p[0]) * 2.5, f64::from(p[1]) * 2.5);
            [
                (300.0 + c * x - s * y) as f32,
                (100.0 + s * x + c * y) as f32,
            ]
        });
        let mut img = RgbImage::from_fn(1200, 1000, |x, y| {
            image::Rgb([(x % 251) as u8, (y % 241) as u8, 90])
        });
        for p in &lm {
            for dy in -3..=3 {
                for dx in -3..=3 {
                    img.put_pixel(
                        (p[0] as i32 + dx) as u32,
                        (p[1] as i32 + dy) as u32,
                        image::Rgb([255, 255, 255]),
                    );
                }
            }
        }
        let crop = FaceCrop::cut(&mut Aligner::default(), &img, &lm).unwrap();
        assert_eq!(crop.image.dimensions(), (CROP_SIZE, CROP_SIZE));
        for (got, want) in crop.landmarks.iter().zip(&CROP_TEMPLATE) {
            assert!(
                (got[0] - want[0]).abs() < 0.01 && (got[1] - want[1]).abs() < 0.01,
                "{got:?} vs {want:?}"
            );
            let px = crop
                .image
                .get_pixel(want[0].round() as u32, want[1].round() as u32);
            assert!(
                px[0] > 200 && px[1] > 200,
                "landmark dot not at {want:?}: {px:?}"
            );
        }
        let enc = crop.encode().unwrap();
        assert_eq!(
            enc.reference.sha256,
            crate::vision::models::sha256_hex(enc.png())
        );
        assert_eq!(
            enc,
            crop.encode().unwrap(),
            "the same crop is the same file"
        );

        let dir = tempfile::tempdir().unwrap();
        let store = CropStore::for_gallery(&dir.path().join("gallery.toml"));
        assert_eq!(store.dir(), dir.path().join("gallery.crops"));
        store.put(&enc).unwrap();
        assert_eq!(store.get(&enc.reference).unwrap(), crop, "lossless");
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(store.dir()), 0o700);
        assert_eq!(mode(&store.path(&enc.reference.sha256)), 0o600);

        // A changed file is refused, not embedded.
        let path = store.path(&enc.reference.sha256);
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n / 2] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            store.get(&enc.reference),
            Err(CropError::Corrupt { .. })
        ));
        // A reference that is not a hash never becomes a path.
        let bad = CropRef {
            sha256: "../../etc/passwd".into(),
            ..enc.reference.clone()
        };
        assert!(bad.validate().is_err());
        assert!(matches!(store.get(&bad), Err(CropError::Corrupt { .. })));
    }

    #[test]
    fn a_chip_from_the_crop_embeds_like_a_chip_from_the_photo() {
        // What re-embedding loses against enrolling the photo again: measured against the
        // pipeline's own noise (landmarks half a pixel off), on real faces.
        let models = crate::ModelSet::builtin().unwrap();
        let mut p = crate::Pipeline::new(&models, None, None).unwrap();
        let spec = p.embedder_spec().clone();
        for name in [
            "obama.jpg",
            "obama2.jpg",
            "obama3.jpg",
            "biden.jpg",
            "astronaut.png",
        ] {
            let img = crate::decode_file(&facegate_e2e::fixture(name)).unwrap();
            let det = p.detect(&img).unwrap().remove(0);
            let chip = p.align(&img, &det).unwrap();
            let direct = p.embed_chip(&chip).unwrap();
            let mut moved = det.clone();
            moved
                .landmarks
                .iter_mut()
                .for_each(|l| *l = [l[0] + 0.5, l[1] - 0.3]);
            let chip = p.align(&img, &moved).unwrap();
            let jitter = direct.distance(&p.embed_chip(&chip).unwrap(), spec.metric);
            let mut aligner = Aligner::default();
            let crop = FaceCrop::cut(&mut aligner, &img, &det.landmarks).unwrap();
            let chip = crop
                .chip(&mut aligner, &spec.template, spec.input_size)
                .unwrap();
            let drift = direct.distance(&p.embed_chip(&chip).unwrap(), spec.metric);
            println!("{name}: from the crop {drift:.3}, landmarks 0.5 px off {jitter:.3}");
            assert!(drift < spec.threshold / 6.0, "{name}: {drift}");
        }
    }
}
