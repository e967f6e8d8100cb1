//! Camera pixel formats to RGB: YUYV 4:2:2 (BT.601, limited range, what UVC cameras send) and
//! MJPEG. Pure functions, so they are tested without a camera.

use image::RgbImage;

/// Why a camera buffer could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The buffer is shorter than the frame size says.
    #[error("YUYV buffer of {got} bytes for a {width}x{height} frame (needs {need})")]
    Short {
        /// Bytes received.
        got: usize,
        /// Bytes needed.
        need: usize,
        /// Frame width.
        width: u32,
        /// Frame height.
        height: u32,
    },
    /// An odd width cannot be YUYV.
    #[error("YUYV frames need an even width (got {0})")]
    OddWidth(u32),
    /// The MJPEG frame did not decode.
    #[error("MJPEG frame: {0}")]
    Jpeg(String),
}

#[inline]
fn clamp(v: i32) -> u8 {
    v.clamp(0, 255) as u8
}

/// Converts one YUYV frame into `out` (reusing its buffer when the size matches).
pub fn yuyv_to_rgb(
    buf: &[u8],
    width: u32,
    height: u32,
    out: &mut RgbImage,
) -> Result<(), FrameError> {
    if !width.is_multiple_of(2) {
        return Err(FrameError::OddWidth(width));
    }
    let need = width as usize * height as usize * 2;
    if buf.len() < need {
        return Err(FrameError::Short {
            got: buf.len(),
            need,
            width,
            height,
        });
    }
    if out.dimensions() != (width, height) {
        *out = RgbImage::new(width, height);
    }
    // BT.601 limited range in 8.8 fixed point: R = 1.164(Y-16) + 1.596(V-128), ...
    for (src, dst) in buf[..need].chunks_exact(4).zip(out.chunks_exact_mut(6)) {
        let (y0, u, y1, v) = (src[0] as i32, src[1] as i32, src[2] as i32, src[3] as i32);
        let (d, e) = (u - 128, v - 128);
        let r = 409 * e + 128;
        let g = -100 * d - 208 * e + 128;
        let b = 516 * d + 128;
        for (k, y) in [y0, y1].into_iter().enumerate() {
            let c = 298 * (y - 16);
            dst[3 * k] = clamp((c + r) >> 8);
            dst[3 * k + 1] = clamp((c + g) >> 8);
            dst[3 * k + 2] = clamp((c + b) >> 8);
        }
    }
    Ok(())
}

/// Whether the JPEG's headers (before the scan) carry Huffman tables (a DHT segment).
fn has_huffman_tables(buf: &[u8]) -> bool {
    let mut i = 2; // after SOI
    while i + 4 <= buf.len() && buf[i] == 0xFF {
        let marker = buf[i + 1];
        if marker == 0xC4 {
            return true;
        }
        if marker == 0xDA {
            return false; // start of scan: no tables before it
        }
        let len = u16::from_be_bytes([buf[i + 2], buf[i + 3]]) as usize;
        i += 2 + len;
    }
    false
}

/// APP0 "AVI1": the marker of Motion-JPEG, which tells the decoder to use the standard Huffman
/// tables (JPEG Annex K.3) that MJPEG frames leave out.
const AVI1: [u8; 10] = [0xFF, 0xE0, 0x00, 0x08, b'A', b'V', b'I', b'1', 0, 0];

/// Largest MJPEG frame side decoded, in pixels (UVC cameras stop at 4K, 3840x2160).
pub const MAX_FRAME_SIDE: u32 = 4096;

/// Decodes one MJPEG frame into `out`. Many UVC cameras send frames without Huffman tables and
/// without the AVI1 marker that implies them; such a frame gets the marker added.
pub fn mjpeg_to_rgb(buf: &[u8], out: &mut RgbImage) -> Result<(), FrameError> {
    let patched;
    let data = if buf.starts_with(&[0xFF, 0xD8]) && !has_huffman_tables(buf) {
        patched = [&buf[..2], &AVI1[..], &buf[2..]].concat();
        &patched[..]
    } else {
        buf
    };
    // A corrupt frame's header may claim up to 65535x65535 pixels: refuse it before allocating.
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_FRAME_SIDE);
    limits.max_image_height = Some(MAX_FRAME_SIDE);
    let mut reader =
        image::ImageReader::with_format(std::io::Cursor::new(data), image::ImageFormat::Jpeg);
    reader.limits(limits);
    let img = crate::vision::decode::contained(|| reader.decode())
        .map_err(|e| FrameError::Jpeg(e.to_string()))?
        .map_err(|e| FrameError::Jpeg(e.to_string()))?;
    *out = img.into_rgb8();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuyv_reference_colours() {
        // Black, white, and BT.601 red (Y 81, U 90, V 240) as two pixel pairs each.
        let buf = [16, 128, 16, 128, 235, 128, 235, 128, 81, 90, 81, 240];
        let mut out = RgbImage::new(0, 0);
        yuyv_to_rgb(&buf, 6, 1, &mut out).unwrap();
        let px: Vec<[u8; 3]> = out.pixels().map(|p| p.0).collect();
        assert_eq!(px[0], [0, 0, 0]);
        assert_eq!(px[2], [255, 255, 255]);
        let red = px[4];
        assert!(red[0] >= 250 && red[1] <= 5 && red[2] <= 5, "{red:?}");
    }

    #[test]
    fn short_and_odd_buffers_are_errors_not_panics() {
        let mut out = RgbImage::new(0, 0);
        let err = yuyv_to_rgb(&[0; 10], 640, 480, &mut out).unwrap_err();
        assert!(err.to_string().contains("640x480"), "{err}");
        assert!(yuyv_to_rgb(&[0; 100], 5, 2, &mut out).is_err());
        assert!(mjpeg_to_rgb(b"\xff\xd8\xff garbage", &mut out).is_err());
        assert!(mjpeg_to_rgb(&[], &mut out).is_err());
    }

    /// UVC cameras send MJPEG frames without Huffman tables (the standard ones are implied).
    #[test]
    fn a_frame_claiming_more_than_4k_pixels_a_side_is_refused_before_decoding() {
        // Fuzzing: such headers made the decoder allocate hundreds of MB (the Pi 4 has 1-8 GB).
        let img = RgbImage::new(16, 8);
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut jpeg)
            .encode_image(&img)
            .unwrap();
        let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        // SOF0: length (2), precision (1), height (2), width (2).
        jpeg[sof + 5..sof + 7].copy_from_slice(&8000u16.to_be_bytes());
        let mut out = RgbImage::new(0, 0);
        let err = mjpeg_to_rgb(&jpeg, &mut out).unwrap_err();
        assert!(err.to_string().contains("limit"), "{err}");
    }

    #[test]
    fn a_frame_that_makes_the_jpeg_decoder_panic_is_an_error() {
        // Found by fuzzing: zune-jpeg 0.5.15 panics in its AVX2 IDCT on this frame.
        let input = include_bytes!("../../../fuzz/regressions/frame/zune_jpeg_avx2_idct_panic");
        let mut out = RgbImage::new(0, 0);
        // An error where that IDCT runs (x86 with AVX2); other kernels may decode it: no panic.
        let _ = mjpeg_to_rgb(&input[1..], &mut out);
    }

    #[test]
    fn mjpeg_frames_without_huffman_tables_decode() {
        let img = RgbImage::from_fn(64, 48, |x, y| {
            image::Rgb([(x * 4) as u8, (y * 5) as u8, 128])
        });
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
            .encode_image(&img)
            .unwrap();
        // Drop every DHT segment (FF C4 + 2-byte length), as a UVC camera's frame lacks them.
        let mut mjpeg = Vec::new();
        let mut i = 0;
        let mut dropped = 0;
        while i < jpeg.len() {
            if jpeg[i] == 0xFF && jpeg.get(i + 1) == Some(&0xC4) {
                let len = u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]) as usize;
                i += 2 + len;
                dropped += 1;
            } else if jpeg[i] == 0xFF && jpeg.get(i + 1) == Some(&0xDA) {
                mjpeg.extend_from_slice(&jpeg[i..]);
                break;
            } else {
                mjpeg.push(jpeg[i]);
                i += 1;
            }
        }
        assert!(dropped > 0, "the encoder wrote no DHT to drop");
        let mut full = RgbImage::new(0, 0);
        let mut bare = RgbImage::new(0, 0);
        mjpeg_to_rgb(&jpeg, &mut full).unwrap();
        mjpeg_to_rgb(&mjpeg, &mut bare).unwrap();
        assert_eq!(full.dimensions(), (64, 48));
        let diff = full
            .as_raw()
            .iter()
            .zip(bare.as_raw())
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        assert!(diff <= 2, "max pixel difference {diff}");
    }
}
