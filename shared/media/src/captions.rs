//! Captions rendered to small RGBA images in Rust, because the layer's ffmpeg has no freetype
//! (no drawtext/subtitles). The image is cropped to the caption's box so the composer overlays
//! a few thousand pixels per frame rather than a full transparent frame.
//!
//! The layer's ffmpeg has no zlib either, so it can neither decode nor encode PNG: stills handed
//! to it are written as PAM (uncompressed RGBA, which its `pam` decoder reads). PNG stays
//! available for people and previews.

use ab_glyph::{Font, FontRef, GlyphId, PxScale, ScaleFont, point};
use image::{Rgba, RgbaImage};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use vidpipe_domain::ports::MediaError;

/// Text wraps so that the box is at most this fraction of the frame width.
const MAX_BOX_WIDTH: f32 = 0.86;
/// Font size as a fraction of the frame's short side.
const FONT_FRACTION: f32 = 0.05;
/// Below this the text stops being legible, whatever the frame.
const MIN_FONT_PX: f32 = 12.0;
/// The box never grows past this fraction of the frame height; extra lines are cut with `…`.
const MAX_BOX_HEIGHT: f32 = 0.4;
const BOX_ALPHA: f32 = 0.5;

/// A rendered caption on disk and its size, for placing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptionImage {
    pub path: PathBuf,
    pub width: u32,
    pub height: u32,
}

impl CaptionImage {
    /// Top-left corner that puts the caption bottom-centre, [`bottom_margin`] above the edge.
    pub fn position(&self, frame_width: u32, frame_height: u32) -> (u32, u32) {
        let x = frame_width.saturating_sub(self.width) / 2;
        let y = frame_height.saturating_sub(self.height + bottom_margin(frame_height));
        (x, y)
    }
}

/// Gap between a caption and the bottom edge: about 7% of the height, clear of players' controls.
pub fn bottom_margin(frame_height: u32) -> u32 {
    (frame_height as f32 * 0.07).round() as u32
}

/// Font size in pixels for a frame.
pub fn font_px(frame_width: u32, frame_height: u32) -> f32 {
    (frame_width.min(frame_height) as f32 * FONT_FRACTION).max(MIN_FONT_PX)
}

/// Renders `text` and writes it at `dest` in the format its extension names: `.pam` (what the
/// layer's ffmpeg can read) or `.png`. `None` when the text is blank.
pub fn write_caption(
    text: &str,
    frame_width: u32,
    frame_height: u32,
    dest: &Path,
) -> Result<Option<CaptionImage>, MediaError> {
    let Some(img) = render_caption(text, frame_width, frame_height) else {
        return Ok(None);
    };
    let is_pam = dest
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("pam"));
    if is_pam {
        write_pam(&img, dest)?;
    } else {
        img.save_with_format(dest, image::ImageFormat::Png)
            .map_err(|e| match e {
                image::ImageError::IoError(io) => MediaError::Io(io),
                other => MediaError::Io(std::io::Error::other(other)),
            })?;
    }
    Ok(Some(CaptionImage {
        path: dest.to_owned(),
        width: img.width(),
        height: img.height(),
    }))
}

/// Renders `text` as white type with a soft dark shadow on a translucent rounded box, sized for
/// a `frame_width`×`frame_height` video. `None` when the text is blank.
pub fn render_caption(text: &str, frame_width: u32, frame_height: u32) -> Option<RgbaImage> {
    if text.trim().is_empty() {
        return None;
    }
    let px = font_px(frame_width, frame_height);
    let fonts = Fonts::get();
    let pad_x = (px * 0.6).round();
    let pad_y = (px * 0.35).round();
    let max_text_w = (frame_width as f32 * MAX_BOX_WIDTH - 2.0 * pad_x).max(px);
    let line_h = fonts.line_height(px);
    let max_lines = (((frame_height as f32 * MAX_BOX_HEIGHT) - 2.0 * pad_y) / line_h)
        .floor()
        .max(1.0) as usize;
    let lines = wrap(fonts, px, text, max_text_w, max_lines);
    let text_w = lines
        .iter()
        .map(|l| fonts.width(px, l))
        .fold(0.0f32, f32::max);

    let w = (text_w + 2.0 * pad_x).ceil().min(frame_width as f32) as u32;
    let h = ((lines.len() as f32) * line_h + 2.0 * pad_y)
        .ceil()
        .min(frame_height as f32) as u32;
    let (w, h) = (w.max(2) & !1, h.max(2) & !1);

    let mut mask = Mask::new(w, h);
    let ascent = fonts.ascent(px);
    for (i, line) in lines.iter().enumerate() {
        let x0 = (w as f32 - fonts.width(px, line)) / 2.0;
        let baseline = pad_y + ascent + i as f32 * line_h;
        fonts.draw(px, line, x0, baseline, &mut mask);
    }
    // Ubuntu Light is thin for video; a slight horizontal dilation makes it read like a regular weight.
    let text_mask = mask.dilate_x((px / 28.0).round().max(1.0) as i32);
    let shadow = text_mask.blurred((px / 10.0).round().max(1.0) as usize);
    let offset = (px / 24.0).round().max(1.0) as i32;

    let radius = px * 0.35;
    let mut img = RgbaImage::new(w, h);
    for y in 0..h {
        for x in 0..w {
            // Premultiplied "over", back to front: box, shadow, text.
            let mut acc = [0.0f32; 4];
            let over = |acc: &mut [f32; 4], rgb: f32, a: f32| {
                for c in acc.iter_mut().take(3) {
                    *c = rgb * a + *c * (1.0 - a);
                }
                acc[3] = a + acc[3] * (1.0 - a);
            };
            over(
                &mut acc,
                0.0,
                BOX_ALPHA
                    * rounded_box_coverage(
                        x as f32 + 0.5,
                        y as f32 + 0.5,
                        w as f32,
                        h as f32,
                        radius,
                    ),
            );
            let s = shadow.at(x as i32 - offset, y as i32 - offset);
            over(&mut acc, 0.0, (s * 2.2).min(1.0) * 0.85);
            over(&mut acc, 1.0, text_mask.at(x as i32, y as i32));
            let a = acc[3];
            let to_u8 = |v: f32| (v * 255.0).round().clamp(0.0, 255.0) as u8;
            let rgb = if a > 0.0 { acc[0] / a } else { 0.0 };
            img.put_pixel(x, y, Rgba([to_u8(rgb), to_u8(rgb), to_u8(rgb), to_u8(a)]));
        }
    }
    Some(img)
}

/// Writes RGBA pixels as a PAM (`P7`, `RGB_ALPHA`) file: a still with alpha that any ffmpeg can
/// decode, zlib or not.
pub fn write_pam(img: &RgbaImage, dest: &Path) -> Result<(), MediaError> {
    let header = format!(
        "P7\nWIDTH {}\nHEIGHT {}\nDEPTH 4\nMAXVAL 255\nTUPLTYPE RGB_ALPHA\nENDHDR\n",
        img.width(),
        img.height()
    );
    let mut bytes = Vec::with_capacity(header.len() + img.as_raw().len());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(img.as_raw());
    std::fs::write(dest, bytes)?;
    Ok(())
}

/// Anti-aliased coverage of a rounded rectangle filling the canvas.
fn rounded_box_coverage(x: f32, y: f32, w: f32, h: f32, r: f32) -> f32 {
    let r = r.min(w / 2.0).min(h / 2.0);
    let dx = (r - x).max(x - (w - r)).max(0.0);
    let dy = (r - y).max(y - (h - r)).max(0.0);
    if dx == 0.0 || dy == 0.0 {
        return 1.0;
    }
    let d = (dx * dx + dy * dy).sqrt();
    (r - d + 0.5).clamp(0.0, 1.0)
}

/// Greedy word wrap; a word wider than a line is broken between characters. Explicit newlines
/// are kept. Lines past `max_lines` are dropped and the last kept line ends with `…`.
fn wrap(fonts: &Fonts, px: f32, text: &str, max_w: f32, max_lines: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for paragraph in text.lines() {
        let mut line = String::new();
        for word in paragraph.split_whitespace() {
            let candidate = if line.is_empty() {
                word.to_owned()
            } else {
                format!("{line} {word}")
            };
            if fonts.width(px, &candidate) <= max_w {
                line = candidate;
                continue;
            }
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            for c in word.chars() {
                let mut next = line.clone();
                next.push(c);
                if !line.is_empty() && fonts.width(px, &next) > max_w {
                    lines.push(std::mem::take(&mut line));
                    line.push(c);
                } else {
                    line = next;
                }
            }
        }
        if !line.is_empty() {
            lines.push(line);
        }
    }
    if lines.len() > max_lines {
        lines.truncate(max_lines);
        let last = lines.last_mut().expect("max_lines >= 1");
        while !last.is_empty() && fonts.width(px, &format!("{last}…")) > max_w {
            last.pop();
        }
        last.push('…');
    }
    lines
}

/// The embedded fonts in fallback order: Ubuntu for text, Hack for symbols Ubuntu lacks, then
/// the two emoji fonts.
struct Fonts {
    faces: Vec<FontRef<'static>>,
}

impl Fonts {
    fn get() -> &'static Fonts {
        static FONTS: OnceLock<Fonts> = OnceLock::new();
        FONTS.get_or_init(|| Fonts {
            faces: [
                epaint_default_fonts::UBUNTU_LIGHT,
                epaint_default_fonts::HACK_REGULAR,
                epaint_default_fonts::NOTO_EMOJI_REGULAR,
                epaint_default_fonts::EMOJI_ICON,
            ]
            .into_iter()
            .map(|bytes| FontRef::try_from_slice(bytes).expect("embedded fonts parse"))
            .collect(),
        })
    }

    /// The first face that has a glyph for `c`; the primary face's "missing" box otherwise.
    fn glyph(&self, c: char) -> (usize, GlyphId) {
        self.faces
            .iter()
            .enumerate()
            .map(|(i, f)| (i, f.glyph_id(c)))
            .find(|(_, g)| g.0 != 0)
            .unwrap_or((0, self.faces[0].glyph_id(c)))
    }

    fn ascent(&self, px: f32) -> f32 {
        self.faces[0].as_scaled(PxScale::from(px)).ascent()
    }

    fn line_height(&self, px: f32) -> f32 {
        let f = self.faces[0].as_scaled(PxScale::from(px));
        (f.ascent() - f.descent() + f.line_gap()).ceil()
    }

    /// Pen positions of each visible character, and the line's advance width.
    fn layout(&self, px: f32, text: &str) -> (Vec<(usize, GlyphId, f32)>, f32) {
        let scale = PxScale::from(px);
        let mut x = 0.0;
        let mut prev: Option<(usize, GlyphId)> = None;
        let mut out = Vec::new();
        for c in text.chars().filter(|c| !c.is_control()) {
            let (fi, id) = self.glyph(c);
            let face = self.faces[fi].as_scaled(scale);
            if let Some((_, pid)) = prev.filter(|(pf, _)| *pf == fi) {
                x += face.kern(pid, id);
            }
            out.push((fi, id, x));
            x += face.h_advance(id);
            prev = Some((fi, id));
        }
        (out, x)
    }

    fn width(&self, px: f32, text: &str) -> f32 {
        self.layout(px, text).1
    }

    fn draw(&self, px: f32, text: &str, x0: f32, baseline: f32, mask: &mut Mask) {
        let scale = PxScale::from(px);
        for (fi, id, x) in self.layout(px, text).0 {
            let glyph = id.with_scale_and_position(scale, point(x0 + x, baseline));
            if let Some(outline) = self.faces[fi].outline_glyph(glyph) {
                let b = outline.px_bounds();
                outline.draw(|gx, gy, c| {
                    mask.add(b.min.x as i32 + gx as i32, b.min.y as i32 + gy as i32, c)
                });
            }
        }
    }
}

/// A coverage map in 0..=1.
struct Mask {
    w: i32,
    h: i32,
    data: Vec<f32>,
}

impl Mask {
    fn new(w: u32, h: u32) -> Mask {
        Mask {
            w: w as i32,
            h: h as i32,
            data: vec![0.0; (w * h) as usize],
        }
    }

    fn at(&self, x: i32, y: i32) -> f32 {
        if x < 0 || y < 0 || x >= self.w || y >= self.h {
            0.0
        } else {
            self.data[(y * self.w + x) as usize]
        }
    }

    fn add(&mut self, x: i32, y: i32, c: f32) {
        if x >= 0 && y >= 0 && x < self.w && y < self.h {
            let v = &mut self.data[(y * self.w + x) as usize];
            *v = (*v + c).min(1.0);
        }
    }

    fn dilate_x(&self, r: i32) -> Mask {
        let mut out = Mask {
            data: self.data.clone(),
            ..*self
        };
        for y in 0..self.h {
            for x in 0..self.w {
                let m = (-r..=r).map(|d| self.at(x + d, y)).fold(0.0f32, f32::max);
                out.data[(y * self.w + x) as usize] = m;
            }
        }
        out
    }

    /// Two passes of a separable box blur: close enough to a Gaussian for a shadow.
    fn blurred(&self, r: usize) -> Mask {
        let mut m = Mask {
            data: self.data.clone(),
            ..*self
        };
        for _ in 0..2 {
            m = m.box_pass(r as i32, true).box_pass(r as i32, false);
        }
        m
    }

    fn box_pass(&self, r: i32, horizontal: bool) -> Mask {
        let mut out = Mask {
            data: vec![0.0; self.data.len()],
            ..*self
        };
        let n = (2 * r + 1) as f32;
        for y in 0..self.h {
            for x in 0..self.w {
                let sum: f32 = (-r..=r)
                    .map(|d| {
                        if horizontal {
                            self.at(x + d, y)
                        } else {
                            self.at(x, y + d)
                        }
                    })
                    .sum();
                out.data[(y * self.w + x) as usize] = sum / n;
            }
        }
        out
    }
}

/// vidpipe's own watermark, for one-machine runs that configure none: the word "vidpipe" drawn
/// as a caption would be, encoded as PNG like an uploaded watermark.
pub fn default_watermark_png() -> Result<Vec<u8>, MediaError> {
    let img = render_caption("vidpipe", 1920, 1080)
        .ok_or_else(|| MediaError::InvalidInput("the built-in watermark is blank".into()))?;
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| match e {
            image::ImageError::IoError(io) => MediaError::Io(io),
            other => MediaError::Io(std::io::Error::other(other)),
        })?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_text_renders_nothing() {
        assert!(render_caption("  \n ", 1920, 1080).is_none());
    }

    #[test]
    fn long_text_wraps_within_the_frame() {
        let text =
            "A very long caption that certainly does not fit on a single line of a portrait frame";
        let one_line = render_caption("short", 1080, 1920).unwrap();
        let img = render_caption(text, 1080, 1920).unwrap();
        assert!(
            img.width() as f32 <= 1080.0 * MAX_BOX_WIDTH + 1.0,
            "{}",
            img.width()
        );
        assert!(
            img.height() >= 2 * one_line.height() - 10,
            "should wrap: {}",
            img.height()
        );
        assert_eq!(img.width() % 2, 0);
        assert_eq!(img.height() % 2, 0);
    }

    #[test]
    fn text_is_white_on_a_translucent_box() {
        let img = render_caption("Hello", 1280, 720).unwrap();
        let white = img.pixels().filter(|p| p[0] > 240 && p[3] > 240).count();
        assert!(white > 50, "white pixels: {white}");
        let corner = img.get_pixel(0, 0);
        assert!(
            corner[3] < 128,
            "rounded corner should be mostly transparent: {corner:?}"
        );
        let mid_left = img.get_pixel(2, img.height() / 2);
        assert!(
            mid_left[3] > 100 && mid_left[0] < 30,
            "box edge should be dark and translucent: {mid_left:?}"
        );
    }

    #[test]
    fn missing_glyphs_fall_back_to_the_next_font() {
        let f = Fonts::get();
        assert_eq!(f.glyph('a').0, 0);
        let (face, id) = f.glyph('😀');
        assert!(
            face > 0 && id.0 != 0,
            "emoji should come from a fallback face"
        );
    }
}
