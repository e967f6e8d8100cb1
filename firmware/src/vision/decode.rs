//! Image decoding for photos and frames: format sniffing, size limits, EXIF orientation, RGB output.

use image::{DynamicImage, ImageDecoder, ImageReader, Limits, RgbImage};
use std::io::{BufReader, Cursor, Seek};

use std::path::Path;

/// Largest accepted width or height. A 16384x16384 RGB image is 768 MiB: past that a crafted
/// header could make us allocate more than a Pi has.
pub const MAX_SIDE: u32 = 16_384;
/// Largest accepted decoded size in bytes (RGB), about 100 megapixels.
pub const MAX_BYTES: u64 = 300 * 1024 * 1024;

/// Why an image could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The file could not be opened or read.
    #[error("cannot read file: {0}")]
    Io(#[from] std::io::Error),
    /// The file holds no bytes at all.
    #[error("empty file (0 bytes)")]
    Empty,
    /// The bytes are not a JPEG or PNG image.
    #[error("not a JPEG or PNG image")]
    UnknownFormat,
    /// The header announces an image too large to decode safely.
    #[error("image is {width}x{height} pixels, over the limit of {MAX_SIDE} pixels a side or {} megapixels", MAX_BYTES / 3 / 1_000_000)]
    TooLarge {
        /// Announced width.
        width: u32,
        /// Announced height.
        height: u32,
    },
    /// The image is truncated or its data is corrupt.
    #[error("corrupt or truncated image: {0}")]
    Corrupt(String),
}

/// Largest accepted file; compressed photos are far smaller than their pixels.
pub const MAX_FILE_BYTES: u64 = 200 * 1024 * 1024;

/// Decodes the image file at `path` to upright RGB.
pub fn decode_file(path: &Path) -> Result<RgbImage, DecodeError> {
    let file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    if len > MAX_FILE_BYTES {
        return Err(DecodeError::Corrupt(format!(
            "file is {len} bytes, over the {MAX_FILE_BYTES}-byte limit"
        )));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    std::io::Read::read_to_end(&mut BufReader::new(file), &mut bytes)?;
    decode_bytes(&bytes)
}

/// Decodes an in-memory image (JPEG or PNG) to upright RGB.
pub fn decode_bytes(bytes: &[u8]) -> Result<RgbImage, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    if bytes.starts_with(&[0xff, 0xd8]) && !jpeg_has_end(bytes) {
        // The JPEG decoder fills a missing tail with grey instead of failing; a cut-off
        // photo would then be enrolled or matched half grey.
        return Err(DecodeError::Corrupt("file ends early (truncated)".into()));
    }
    decode_reader(Cursor::new(bytes))
}

/// Whether an end-of-image marker follows the last start-of-scan marker. In entropy-coded data
/// 0xFF is always stuffed, so FF D9 there is the real end (an EXIF thumbnail's end comes before).
fn jpeg_has_end(bytes: &[u8]) -> bool {
    let last_sos = bytes.windows(2).rposition(|w| w == [0xff, 0xda]);
    match last_sos {
        Some(i) => bytes[i..].windows(2).any(|w| w == [0xff, 0xd9]),
        None => false,
    }
}

fn decode_reader<R: std::io::BufRead + Seek>(reader: R) -> Result<RgbImage, DecodeError> {
    let mut reader = ImageReader::new(reader).with_guessed_format()?;
    match reader.format() {
        Some(image::ImageFormat::Jpeg) | Some(image::ImageFormat::Png) => {}
        _ => return Err(DecodeError::UnknownFormat),
    }
    // Width and height are checked below with a clearer message; the allocation limit also
    // bounds what a decoder may use on the way.
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_BYTES * 2);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(map_err)?;
    let (width, height) = decoder.dimensions();
    // Refuse before allocating anything: the header alone can claim gigabytes.
    if width > MAX_SIDE || height > MAX_SIDE || u64::from(width) * u64::from(height) * 3 > MAX_BYTES
    {
        return Err(DecodeError::TooLarge { width, height });
    }
    if width == 0 || height == 0 {
        return Err(DecodeError::Corrupt("image has no pixels".into()));
    }
    // A missing or broken EXIF block is not worth refusing a photo for.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = contained(|| DynamicImage::from_decoder(decoder))?.map_err(map_err)?;
    img.apply_orientation(orientation);
    Ok(to_rgb(img))
}

/// Flattens any colour type to 8-bit RGB; transparent pixels are composited over white, as a
/// viewer would show them.
/// Runs a decoder on untrusted bytes, turning a panic inside it into an error: the image crates
/// are not panic-free on corrupt input (fuzzing: zune-jpeg 0.5.15's AVX2 IDCT unwraps an
/// out-of-range slice), and a bad frame or photo must never stop the door.
pub fn contained<T>(decode: impl FnOnce() -> T) -> Result<T, DecodeError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode))
        .map_err(|_| DecodeError::Corrupt("the decoder failed on this corrupt image".into()))
}

fn to_rgb(img: DynamicImage) -> RgbImage {
    if !img.color().has_alpha() {
        return img.into_rgb8();
    }
    let rgba = img.into_rgba8();
    let (w, h) = rgba.dimensions();
    let mut out = RgbImage::new(w, h);
    for (dst, src) in out.pixels_mut().zip(rgba.pixels()) {
        let a = u32::from(src[3]);
        for c in 0..3 {
            dst[c] = ((u32::from(src[c]) * a + 255 * (255 - a) + 127) / 255) as u8;
        }
    }
    out
}

fn map_err(e: image::ImageError) -> DecodeError {
    match e {
        image::ImageError::Limits(l) => {
            DecodeError::Corrupt(format!("over the decoder's limits: {l}"))
        }
        image::ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            DecodeError::Corrupt("file ends early (truncated)".into())
        }
        image::ImageError::Unsupported(u) => DecodeError::Corrupt(format!("unsupported: {u}")),
        other => DecodeError::Corrupt(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg() -> Vec<u8> {
        let img = RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 4, y as u8 * 5, 90]));
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut out)
            .encode_image(&img)
            .unwrap();
        out
    }

    #[test]
    fn a_whole_jpeg_decodes() {
        assert_eq!(decode_bytes(&jpeg()).unwrap().dimensions(), (64, 48));
    }

    #[test]
    fn a_truncated_jpeg_is_refused() {
        let j = jpeg();
        let err = decode_bytes(&j[..j.len() * 2 / 3]).unwrap_err();
        assert!(
            matches!(err, DecodeError::Corrupt(ref m) if m.contains("truncated")),
            "{err}"
        );
    }

    #[test]
    fn empty_and_garbage_are_refused() {
        assert!(matches!(decode_bytes(b""), Err(DecodeError::Empty)));
        assert!(matches!(
            decode_bytes(b"GIF89a not for us"),
            Err(DecodeError::UnknownFormat)
        ));
    }
}
