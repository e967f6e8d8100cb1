//! The live view (`view`) and `snapshot`: what the door's loop hands a viewer (the newest
//! recognised frame and what it made of each face), and how a client thread turns it into the
//! wire records. The loop only ever puts a reference to a frame it already holds into a
//! viewer's one-slot mailbox (newest wins); downscaling and JPEG encoding happen on the
//! viewer's own thread, and nothing at all happens while nobody watches.
//!
//! A record: `frame JSON\n` then exactly `JSON.jpeg` bytes of JPEG, with JSON as [`FrameMeta`].

use crate::door::realtime::Mailbox;
use crate::vision::detect::BBox;
use image::RgbImage;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Viewers at once; a third `view` is answered `ERR busy: 2 viewers`.
pub const MAX_VIEWERS: usize = 2;
/// Widest live frame, in pixels (larger frames are scaled down by a whole factor).
pub const MAX_WIDTH: u32 = 640;
/// Shortest time between two live frames (at most 4 a second).
pub const FRAME_INTERVAL: Duration = Duration::from_millis(250);
/// JPEG quality of live frames.
pub const VIEW_QUALITY: u8 = 70;
/// JPEG quality of a snapshot (for enrolment: close to the camera's own picture).
pub const SNAPSHOT_QUALITY: u8 = 90;
/// Largest JPEG a client accepts from the door (a full-resolution snapshot of a 4K camera at
/// quality 90 is about 3 MiB): a longer length is refused unread.
pub const MAX_JPEG: usize = 8 << 20;
/// Longest `frame JSON` line a client accepts.
pub const MAX_META: usize = 64 << 10;

/// What the door made of one face on a live frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The door's acceptance rule would let this face in at this frame (before the agreement
    /// of several frames).
    LetIn,
    /// Nobody enrolled near enough (or two people about as near).
    Unknown,
    /// Smaller than `min_face`.
    TooSmall,
    /// Quality gate: out of focus or moving.
    Blurry,
    /// Quality gate: under-exposed.
    TooDark,
    /// Quality gate: over-exposed.
    TooBright,
    /// Quality gate: head turned too far.
    Turned,
    /// The liveness check or a presentation cue took it for a photo or a screen.
    NotLive,
    /// A face that was not judged (not the largest).
    Detected,
    /// A word this client does not know (a newer door).
    #[serde(other)]
    Other,
}

impl Verdict {
    /// The word on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LetIn => "let_in",
            Self::Unknown => "unknown",
            Self::TooSmall => "too_small",
            Self::Blurry => "blurry",
            Self::TooDark => "too_dark",
            Self::TooBright => "too_bright",
            Self::Turned => "turned",
            Self::NotLive => "not_live",
            Self::Detected => "detected",
            Self::Other => "other",
        }
    }
}

/// One face as the loop saw it, in the camera frame's pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveFace {
    /// Where.
    pub bbox: BBox,
    /// What the door made of it.
    pub verdict: Verdict,
    /// The nearest person's id, when the face would be let in or was refused as not live.
    pub name: Option<String>,
    /// The distance to the nearest person, when the face was embedded.
    pub distance: Option<f32>,
}

/// A frame for the viewers: a reference to the frame the loop already holds, and its faces.
#[derive(Clone)]
pub struct LiveShot {
    /// Numbers the live frames the loop offered (gaps: a slow viewer missed some).
    pub seq: u64,
    /// When the frame was decided on (Unix time, ms).
    pub at_ms: u64,
    /// The camera frame.
    pub image: Arc<RgbImage>,
    /// Its faces, the judged (largest) one first.
    pub faces: Vec<LiveFace>,
    /// The wire record, made by the first viewer's thread that sends this shot and shared
    /// with the others (one encoding a frame however many watch).
    pub encoded: Arc<OnceLock<Option<Encoded>>>,
}

/// A shot's wire record: its JSON line's object and its JPEG.
pub type Encoded = (FrameMeta, Arc<[u8]>);

impl std::fmt::Debug for LiveShot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveShot")
            .field("seq", &self.seq)
            .field("size", &self.image.dimensions())
            .field("faces", &self.faces)
            .finish()
    }
}

/// One viewer's mailbox, shared by the loop (puts) and the viewer's client thread (takes).
#[derive(Debug, Default)]
pub struct ViewerSlot {
    /// The newest shot not yet sent.
    pub shots: Mailbox<LiveShot>,
    /// Frames encoded for all viewers, for the door's status (shared with the loop).
    pub encoded: Arc<AtomicU64>,
}

impl ViewerSlot {
    /// A slot counting its encoded frames in `encoded`.
    pub fn new(encoded: Arc<AtomicU64>) -> Self {
        Self {
            shots: Mailbox::default(),
            encoded,
        }
    }
}

/// A camera frame held by the loop, for `snapshot` (its `Debug` shows only its size).
#[derive(Clone)]
pub struct Picture(pub Arc<RgbImage>);

impl std::fmt::Debug for Picture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Picture({:?})", self.0.dimensions())
    }
}

/// The JSON of a `frame` record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameMeta {
    /// The live frame's number.
    pub seq: u64,
    /// When it was decided on (Unix time, ms).
    pub at_ms: u64,
    /// The JPEG's width.
    pub width: u32,
    /// The JPEG's height.
    pub height: u32,
    /// The JPEG's length in bytes (they follow the line).
    pub jpeg: usize,
    /// The faces, the judged one first.
    pub faces: Vec<FaceMeta>,
}

/// One face of a [`FrameMeta`]: its box in the JPEG's pixels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaceMeta {
    /// Left.
    pub x: u32,
    /// Top.
    pub y: u32,
    /// Width.
    pub w: u32,
    /// Height.
    pub h: u32,
    /// The face's size as the door judges it against `min_face`: the shorter side of its box
    /// in the camera's pixels.
    pub size_px: u32,
    /// What the door made of it.
    pub verdict: Verdict,
    /// The person's id (with `let_in` and `not_live`), else null.
    pub name: Option<String>,
    /// The distance to the nearest person (null: not embedded).
    pub distance: Option<f32>,
}

/// The whole factor a frame `width` wide is divided by to be at most [`MAX_WIDTH`] wide.
pub fn scale_factor(width: u32) -> u32 {
    width.div_ceil(MAX_WIDTH).max(1)
}

/// `image` scaled down by `k` (each output pixel the mean of a k x k block): cheap, and exact
/// for the common 1280 and 1920 wide cameras.
fn shrink(image: &RgbImage, k: u32) -> RgbImage {
    let (w, h) = (image.width() / k, image.height() / k);
    let stride = image.width() as usize * 3;
    let k = k as usize;
    let n = (k * k) as u32;
    let mut out = Vec::with_capacity(w as usize * h as usize * 3);
    let mut sums = vec![0u32; w as usize * 3];
    for y in 0..h as usize {
        sums.fill(0);
        for line in image.as_raw()[y * k * stride..]
            .chunks_exact(stride)
            .take(k)
        {
            for (x, acc) in sums.chunks_exact_mut(3).enumerate() {
                for px in line[x * k * 3..(x + 1) * k * 3].chunks_exact(3) {
                    for (a, &v) in acc.iter_mut().zip(px) {
                        *a += u32::from(v);
                    }
                }
            }
        }
        // The mean of u8 values fits a u8.
        out.extend(sums.iter().map(|&s| ((s + n / 2) / n) as u8));
    }
    RgbImage::from_raw(w, h, out).unwrap_or_else(|| RgbImage::new(w, h))
}

/// `image` as a JPEG of `quality`.
pub fn jpeg(image: &RgbImage, quality: u8) -> Result<Vec<u8>, image::ImageError> {
    let mut out = Vec::with_capacity((image.width() * image.height() / 4) as usize);
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality).encode_image(image)?;
    Ok(out)
}

/// The wire record of `shot` ([`encode_shot`]), made once for all viewers; `None` if the frame
/// cannot be encoded.
pub fn shared_record<'a>(shot: &'a LiveShot, encoded: &AtomicU64) -> Option<&'a Encoded> {
    shot.encoded
        .get_or_init(|| match encode_shot(shot, encoded) {
            Ok((meta, bytes)) => Some((meta, bytes.into())),
            Err(e) => {
                tracing::warn!("live view: cannot encode a frame: {e}");
                None
            }
        })
        .as_ref()
}

/// The wire record of `shot`: its JSON (with the JPEG's size) and the JPEG, downscaled to at most
/// [`MAX_WIDTH`] wide, the boxes scaled with it. Counted in `encoded`.
pub fn encode_shot(
    shot: &LiveShot,
    encoded: &AtomicU64,
) -> Result<(FrameMeta, Vec<u8>), image::ImageError> {
    let k = scale_factor(shot.image.width());
    let small;
    let picture: &RgbImage = if k > 1 {
        small = shrink(&shot.image, k);
        &small
    } else {
        &shot.image
    };
    let bytes = jpeg(picture, VIEW_QUALITY)?;
    encoded.fetch_add(1, Ordering::Relaxed);
    let kf = k as f32;
    let (pw, ph) = picture.dimensions();
    let faces = shot
        .faces
        .iter()
        .map(|f| {
            // Clamped to the picture: a box may reach past the frame's edge.
            let cx = |v: f32| (v / kf).clamp(0.0, pw as f32).round() as u32;
            let cy = |v: f32| (v / kf).clamp(0.0, ph as f32).round() as u32;
            let (x, y) = (cx(f.bbox.x), cy(f.bbox.y));
            let w = cx(f.bbox.x + f.bbox.w).saturating_sub(x);
            let h = cy(f.bbox.y + f.bbox.h).saturating_sub(y);
            FaceMeta {
                x,
                y,
                w,
                h,
                size_px: f.bbox.size().max(0.0).round() as u32,
                verdict: f.verdict,
                name: f.name.clone(),
                // Three decimals say enough; NaN is not JSON.
                distance: f
                    .distance
                    .filter(|d| d.is_finite())
                    .map(|d| (d * 1000.0).round() / 1000.0),
            }
        })
        .collect();
    let meta = FrameMeta {
        seq: shot.seq,
        at_ms: shot.at_ms,
        width: pw,
        height: ph,
        jpeg: bytes.len(),
        faces,
    };
    Ok((meta, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shot(w: u32, h: u32) -> LiveShot {
        let image = RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 7])
        });
        LiveShot {
            seq: 3,
            at_ms: 1_700_000_000_000,
            image: Arc::new(image),
            faces: vec![LiveFace {
                bbox: BBox {
                    x: 600.0,
                    y: 100.0,
                    w: 200.0,
                    h: 240.0,
                },
                verdict: Verdict::LetIn,
                name: Some("obama".into()),
                distance: Some(0.312_345),
            }],
            encoded: Arc::default(),
        }
    }

    #[test]
    fn a_live_frame_is_at_most_640_wide_and_its_boxes_scale_with_it() {
        let encoded = AtomicU64::new(0);
        let (meta, bytes) = encode_shot(&shot(1280, 720), &encoded).unwrap();
        assert_eq!((meta.width, meta.height), (640, 360));
        assert_eq!(meta.jpeg, bytes.len());
        let decoded = image::load_from_memory(&bytes).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (640, 360));
        let f = &meta.faces[0];
        assert_eq!((f.x, f.y, f.w, f.h, f.size_px), (300, 50, 100, 120, 200));
        assert_eq!(f.distance, Some(0.312));
        assert_eq!(encoded.load(Ordering::Relaxed), 1);
        let json = serde_json::to_string(&meta).unwrap();
        assert!(json.contains("\"verdict\":\"let_in\""), "{json}");
        assert_eq!(serde_json::from_str::<FrameMeta>(&json).unwrap(), meta);
        // 1920 is divided by 3, 640 and less are kept.
        assert_eq!(scale_factor(1920), 3);
        assert_eq!(scale_factor(640), 1);
        assert_eq!(scale_factor(0), 1);
        let (meta, _) = encode_shot(&shot(1920, 1080), &encoded).unwrap();
        assert_eq!(meta.width, 640);
        // Viewers of one shot share one encoding.
        let (s, count) = (shot(1280, 720), AtomicU64::new(0));
        let (a, b) = (s.clone(), s.clone());
        let first = shared_record(&a, &count).unwrap();
        let second = shared_record(&b, &count).unwrap();
        assert!(Arc::ptr_eq(&first.1, &second.1));
        assert_eq!(count.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn shrinking_averages_blocks() {
        let img = RgbImage::from_fn(4, 2, |x, _| image::Rgb([(x * 10) as u8, 200, 0]));
        let small = shrink(&img, 2);
        assert_eq!(small.dimensions(), (2, 1));
        assert_eq!(small.get_pixel(0, 0).0, [5, 200, 0]);
        assert_eq!(small.get_pixel(1, 0).0, [25, 200, 0]);
    }

    #[test]
    fn a_box_past_the_edge_is_clamped_and_an_unknown_word_parses() {
        let mut s = shot(320, 240);
        s.faces[0].bbox = BBox {
            x: -20.0,
            y: 200.0,
            w: 100.0,
            h: 100.0,
        };
        let (meta, _) = encode_shot(&s, &AtomicU64::new(0)).unwrap();
        let f = &meta.faces[0];
        assert_eq!((f.x, f.y, f.w, f.h), (0, 200, 80, 40));
        let v: Verdict = serde_json::from_str("\"sparkly\"").unwrap();
        assert_eq!(v, Verdict::Other);
    }
}
