//! Synthetic presentation attacks for the simulator: a photo turned into what a camera sees when
//! someone holds up that photo printed on paper or shown on a phone. Deterministic, so scenarios
//! and the liveness evaluation are reproducible.
//!
//! What they model: the medium's border in view (white paper, black bezel), the reduced contrast
//! and tint of a print or an emissive screen, perspective (the picture is held tilted), a glare
//! spot, and for a screen the moiré of its pixel grid against the camera's. What they cannot
//! model: real paper texture and ink dots, a real screen's refresh and sub-pixel pattern, a
//! curved or moving print, and the camera's own noise; passing them is no proof against real
//! attacks (see docs/security.md, "Presentation attacks").

use image::{Rgb, RgbImage};
use serde::Deserialize;

/// The kind of presentation attack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Attack {
    /// A photo printed on paper, held up: white border, washed-out ink, tilt, glare.
    Print,
    /// A photo on a phone screen: black bezel, bluish backlight, moiré, glare.
    Screen,
}

/// Bilinear sample of `img` at (x, y), clamped to its edges.
fn sample(img: &RgbImage, x: f32, y: f32) -> [f32; 3] {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let (x, y) = (x.clamp(0.0, (w - 1) as f32), y.clamp(0.0, (h - 1) as f32));
    let (x0, y0) = (x.floor() as i64, y.floor() as i64);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let p = |x: i64, y: i64| img.get_pixel(x as u32, y as u32).0;
    let (a, b, c, d) = (p(x0, y0), p(x1, y0), p(x0, y1), p(x1, y1));
    let mut out = [0.0; 3];
    for (k, o) in out.iter_mut().enumerate() {
        let top = f32::from(a[k]) * (1.0 - fx) + f32::from(b[k]) * fx;
        let bot = f32::from(c[k]) * (1.0 - fx) + f32::from(d[k]) * fx;
        *o = top * (1.0 - fy) + bot * fy;
    }
    out
}

/// `photo` as the camera sees it presented by `attack`: the medium (with its border) tilted
/// back by a keystone, on a background of the simulator's grey.
pub fn present(photo: &RgbImage, attack: Attack) -> RgbImage {
    render(photo, attack, false)
}

/// Grey rendering of a colour image as a near-infrared camera with an 850 nm illuminator sees
/// it: skin reflects strongly there, about like red light, so red weighs most (a simple model,
/// not a measured spectral response).
pub fn infrared(img: &RgbImage) -> RgbImage {
    RgbImage::from_fn(img.width(), img.height(), |x, y| {
        let [r, g, b] = img.get_pixel(x, y).0.map(f32::from);
        let v = (0.65 * r + 0.3 * g + 0.05 * b).round().clamp(0.0, 255.0) as u8;
        Rgb([v, v, v])
    })
}

/// What the NIR camera sees where the colour camera sees `photo` as it is (a live person,
/// `None`) or presented by `attack`; the same size and geometry as the colour view, so the two
/// cameras line up. A print reflects infrared (the grey rendering of the print: carbon ink
/// shows the face, so NIR does not stop a print); a phone screen emits none, so its whole
/// medium is dark, with no face.
pub fn present_nir(photo: &RgbImage, attack: Option<Attack>) -> RgbImage {
    match attack {
        None => infrared(photo),
        Some(a) => infrared(&render(photo, a, true)),
    }
}

/// The medium `attack` holding `photo`, as the colour camera sees it, or (`ir`) as the NIR
/// camera does before the grey rendering.
fn render(photo: &RgbImage, attack: Attack, ir: bool) -> RgbImage {
    let (pw, ph) = (photo.width() as f32, photo.height() as f32);
    // The medium: the photo plus its border.
    let border = match attack {
        Attack::Print => 0.08,
        Attack::Screen => 0.06,
    } * pw.max(ph);
    let (mw, mh) = (pw + 2.0 * border, ph + 2.0 * border);
    // The output leaves room around the tilted medium.
    let pad = 0.1 * mw.max(mh);
    let (ow, oh) = ((mw + 2.0 * pad) as u32, (mh + 2.0 * pad) as u32);
    // Keystone: the top edge is `squeeze` narrower than the bottom (held tilted back).
    let squeeze = 0.12;
    let glare = (0.68 * mw, 0.3 * mh, 0.22 * mw.min(mh));
    RgbImage::from_fn(ow, oh, |x, y| {
        let (u, v) = (x as f32 - pad, y as f32 - pad);
        let t = (v / mh).clamp(0.0, 1.0);
        let half = mw / 2.0 * (1.0 - squeeze * (1.0 - t));
        let mu = mw / 2.0 + (u - mw / 2.0) * (mw / 2.0) / half;
        if !(0.0..mw).contains(&mu) || !(0.0..mh).contains(&v) {
            return Rgb([118, 118, 118]);
        }
        let (px, py) = (mu - border, v - border);
        let inside = (0.0..pw).contains(&px) && (0.0..ph).contains(&py);
        let dark_screen = ir && attack == Attack::Screen;
        let mut c = if dark_screen {
            // No infrared from the screen, nor from its bezel.
            [14.0, 14.0, 16.0]
        } else if inside {
            sample(photo, px, py)
        } else {
            match attack {
                Attack::Print => [236.0, 234.0, 228.0],
                Attack::Screen => [14.0, 14.0, 16.0],
            }
        };
        if inside && !dark_screen {
            match attack {
                Attack::Print => {
                    // Ink on paper: no true black or white, a warm cast.
                    for (k, tint) in [1.0, 0.98, 0.92].iter().enumerate() {
                        c[k] = (40.0 + c[k] * 0.72) * tint;
                    }
                }
                Attack::Screen => {
                    // Backlit, bluish, and the screen's pixel grid beating against the camera's.
                    let moire =
                        1.0 + 0.12 * ((mu * 0.9 + v * 0.35) * std::f32::consts::TAU / 3.1).sin();
                    for (k, tint) in [0.92, 0.97, 1.08].iter().enumerate() {
                        c[k] = (20.0 + c[k] * 0.85) * tint * moire;
                    }
                }
            }
        }
        // A glare spot of the room's light on the glossy surface.
        let (gx, gy, gr) = glare;
        let d2 = ((mu - gx).powi(2) + (v - gy).powi(2)) / (gr * gr);
        let g = 90.0 * (-d2).exp();
        Rgb(c.map(|v| (v + g).round().clamp(0.0, 255.0) as u8))
    })
}

/// A frame of the motion of a held-up picture: `frame` (a whole camera frame showing the
/// medium) turned by `yaw` degrees about the vertical axis through its centre, as a pinhole
/// camera of focal length `focal` pixels sees a flat plane turned so. A sequence of these with
/// changing `yaw` is the medium waved in front of the camera; every point of it moves as one
/// plane (what the motion cue looks for). The rim left uncovered is the simulator's grey.
pub fn tilt(frame: &RgbImage, yaw: f32, focal: f32) -> RgbImage {
    let (w, h) = (frame.width() as f32, frame.height() as f32);
    let (cx, cy) = (w / 2.0, h / 2.0);
    let (s, c) = yaw.to_radians().sin_cos();
    RgbImage::from_fn(frame.width(), frame.height(), |u, v| {
        // Invert the projection: the plane's point (x, y) that lands on pixel (u, v).
        let (uu, vv) = (u as f32 - cx, v as f32 - cy);
        let den = c - uu * s / focal;
        if den <= 1e-3 {
            return Rgb([118, 118, 118]);
        }
        let x = uu / den;
        let y = vv * (1.0 + x * s / focal);
        let (sx, sy) = (x + cx, y + cy);
        if !(0.0..=w - 1.0).contains(&sx) || !(0.0..=h - 1.0).contains(&sy) {
            return Rgb([118, 118, 118]);
        }
        Rgb(sample(frame, sx, sy).map(|v| v.round().clamp(0.0, 255.0) as u8))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_medium_shows_its_border_and_washed_out_tones() {
        let photo = RgbImage::from_pixel(100, 100, Rgb([0, 0, 0]));
        let print = present(&photo, Attack::Print);
        assert!(print.width() > 100 && print.height() > 100);
        // The centre is the photo's black, lifted by the paper.
        let c = print
            .get_pixel(print.width() / 2, print.height() / 2 + 10)
            .0;
        assert!(c[0] >= 35 && c[0] < 80, "{c:?}");
        // Near the bottom edge of the medium: the white paper border.
        let pad = (0.1 * 116.0) as u32;
        let b = print.get_pixel(print.width() / 2, pad + 116 - 3).0;
        assert!(b[0] > 200, "{b:?}");
        let screen = present(&photo, Attack::Screen);
        let b = screen
            .get_pixel(screen.width() / 2, screen.height() - pad - 3)
            .0;
        assert!(b[0] < 40, "bezel {b:?}");
    }

    #[test]
    fn a_tilted_frame_is_foreshortened_about_its_centre() {
        // A white square in the middle of a black frame.
        let frame = RgbImage::from_fn(200, 100, |x, y| {
            if (80..120).contains(&x) && (30..70).contains(&y) {
                Rgb([255, 255, 255])
            } else {
                Rgb([0, 0, 0])
            }
        });
        assert_eq!(tilt(&frame, 0.0, 500.0), frame);
        let t = tilt(&frame, 40.0, 500.0);
        let width = (0..200).filter(|&x| t.get_pixel(x, 50)[0] > 128).count();
        assert!((25..38).contains(&width), "foreshortened to {width}");
        assert!(t.get_pixel(100, 50)[0] > 128, "the centre stays");
    }

    #[test]
    fn in_infrared_a_screen_is_dark_and_a_print_keeps_its_picture() {
        // A photo with structure: left half dark, right half bright.
        let photo = RgbImage::from_fn(100, 100, |x, _| {
            if x < 50 {
                Rgb([30, 30, 30])
            } else {
                Rgb([220, 200, 180])
            }
        });
        let centre = |img: &RgbImage, dx: i32| {
            img.get_pixel((img.width() as i32 / 2 + dx) as u32, img.height() / 2 + 10)
                .0
        };
        let screen = present_nir(&photo, Some(Attack::Screen));
        assert_eq!(
            screen.dimensions(),
            present(&photo, Attack::Screen).dimensions()
        );
        assert!(centre(&screen, -20)[0] < 50 && centre(&screen, 20)[0] < 50);
        let print = present_nir(&photo, Some(Attack::Print));
        assert!(
            centre(&print, 20)[0] > centre(&print, -20)[0] + 80,
            "the picture shows"
        );
        let live = present_nir(&photo, None);
        assert_eq!(live.dimensions(), photo.dimensions());
        let p = live.get_pixel(75, 50).0;
        assert!(p[0] == p[1] && p[1] == p[2] && p[0] > 150, "{p:?}");
    }
}
