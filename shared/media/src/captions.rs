//! Captions rendered to small RGBA images in Rust, because the layer's ffmpeg has no freetype
//! (no drawtext/subtitles). The image is cropped to the caption's box so the composer overlays
//! a few thousand pixels per frame rather than a full transparent frame.
//!
//! Text goes through cosmic-text: bidi ordering, shaping (Arabic joins, Devanagari conjuncts),
//! line breaking (at words, and between CJK characters) and font fallback over the Noto fonts
//! of the fonts layer (see [`fonts_dir`]). Without that folder the fonts embedded in the binary
//! still render a Latin caption. A glyph no font has is left out rather than drawn as a box.
//!
//! The layer's ffmpeg has no zlib either, so it can neither decode nor encode PNG: stills handed
//! to it are written as PAM (uncompressed RGBA, which its `pam` decoder reads). PNG stays
//! available for people and previews.

use cosmic_text::{
    Align, Attrs, Buffer, Family, FontSystem, Metrics, Shaping, SwashCache, SwashContent, Weight,
    Wrap,
};
use image::{Rgba, RgbaImage};
use std::ffi::OsString;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
pub use vidpipe_domain::captions::{CaptionOptions, CaptionPosition, CaptionSize, CaptionStyle};
use vidpipe_domain::ports::MediaError;

/// Environment variable naming a folder of caption fonts (`.ttf`, `.otf`, `.ttc`).
pub const FONTS_ENV: &str = "VIDPIPE_FONTS_DIR";
/// Where the fonts layer unpacks on Lambda.
pub const LAYER_FONTS_DIR: &str = "/opt/fonts";

/// The caption box is at most this fraction of the frame width.
const MAX_BOX_WIDTH: f32 = 0.86;
/// Font size as a fraction of the frame's short side.
const FONT_FRACTION: f32 = 0.05;
/// Below this the text stops being legible, whatever the frame.
const MIN_FONT_PX: f32 = 12.0;
/// The box never grows past this fraction of the frame height.
const MAX_BOX_HEIGHT: f32 = 0.4;
/// A caption is read at a glance: more than two lines is a paragraph, so the rest is cut with
/// `…` (karaoke text is paged with [`paginate`] instead).
pub const MAX_LINES: usize = 2;
/// Line pitch in font sizes: room for Devanagari's head marks and Arabic's dots.
const LINE_SPACING: f32 = 1.3;
const BOX_ALPHA: f32 = 0.5;
/// The karaoke word's colour.
pub const HIGHLIGHT_RGB: [u8; 3] = [255, 214, 0];
/// `Attrs::metadata` tag of highlighted glyphs.
const HIGHLIGHTED: usize = 1;

/// A rendered caption on disk, its size, and the options it was rendered with, for placing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptionImage {
    pub path: PathBuf,
    pub width: u32,
    pub height: u32,
    pub options: CaptionOptions,
}

impl CaptionImage {
    /// Top-left corner of the caption on a `frame_width`×`frame_height` frame, as
    /// [`caption_position`] places it.
    pub fn position(&self, frame_width: u32, frame_height: u32) -> (u32, u32) {
        caption_position(
            &self.options,
            self.width,
            self.height,
            frame_width,
            frame_height,
        )
    }
}

/// Gap between a caption and the bottom edge outside 9:16: about 7% of the height, clear of
/// players' controls.
pub fn bottom_margin(frame_height: u32) -> u32 {
    (frame_height as f32 * 0.07).round() as u32
}

/// Insets from each edge that captions stay out of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SafeArea {
    pub left: u32,
    pub top: u32,
    pub right: u32,
    pub bottom: u32,
}

/// The frame's caption-safe area. Tall (9:16) frames are watched in Reels, Shorts and TikTok,
/// whose UI covers the bottom fifth (description, music), a column on the right (buttons) and
/// the top tenth; other frames only need clearing of players' controls at the bottom.
pub fn safe_area(frame_width: u32, frame_height: u32) -> SafeArea {
    let (w, h) = (frame_width as f32, frame_height as f32);
    let px = |v: f32| v.round() as u32;
    if h >= w * 1.5 {
        SafeArea {
            left: px(w * 0.06),
            top: px(h * 0.10),
            right: px(w * 0.12),
            bottom: px(h * 0.20),
        }
    } else {
        let side = px(w * (1.0 - MAX_BOX_WIDTH) / 2.0);
        SafeArea {
            left: side,
            top: bottom_margin(frame_height),
            right: side,
            bottom: bottom_margin(frame_height),
        }
    }
}

/// Top-left corner of a `width`×`height` caption: centred across the safe area, and at its
/// bottom, centre or top edge as `opts.position` says. A caption larger than the safe area is
/// centred on the frame instead, since it cannot avoid the UI anyway.
pub fn caption_position(
    opts: &CaptionOptions,
    width: u32,
    height: u32,
    frame_width: u32,
    frame_height: u32,
) -> (u32, u32) {
    let s = safe_area(frame_width, frame_height);
    let avail_w = frame_width.saturating_sub(s.left + s.right);
    let x = if width <= avail_w {
        s.left + (avail_w - width) / 2
    } else {
        frame_width.saturating_sub(width) / 2
    };
    let avail_h = frame_height.saturating_sub(s.top + s.bottom);
    let y = match opts.position {
        CaptionPosition::Bottom => frame_height.saturating_sub(height + s.bottom),
        CaptionPosition::Top => s.top.min(frame_height.saturating_sub(height)),
        CaptionPosition::Center if height <= avail_h => s.top + (avail_h - height) / 2,
        CaptionPosition::Center => frame_height.saturating_sub(height) / 2,
    };
    (x, y)
}

/// Medium font size in pixels for a frame.
pub fn font_px(frame_width: u32, frame_height: u32) -> f32 {
    (frame_width.min(frame_height) as f32 * FONT_FRACTION).max(MIN_FONT_PX)
}

fn size_scale(size: CaptionSize) -> f32 {
    match size {
        CaptionSize::Small => 0.8,
        CaptionSize::Medium => 1.0,
        CaptionSize::Large => 1.3,
    }
}

/// Renders `text` with `opts` (and `highlight`, a byte range of `text`, in the highlight
/// colour) and writes it at `dest` in the format its extension names: `.pam` (what the layer's
/// ffmpeg can read) or `.png`. `None` when the text is blank.
pub fn write_caption(
    text: &str,
    opts: &CaptionOptions,
    highlight: Option<Range<usize>>,
    frame_width: u32,
    frame_height: u32,
    dest: &Path,
) -> Result<Option<CaptionImage>, MediaError> {
    let Some(img) = render_caption(text, opts, highlight, frame_width, frame_height) else {
        return Ok(None);
    };
    let is_pam = dest
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("pam"));
    if is_pam {
        write_pam(&img, dest)?;
    } else {
        img.save_with_format(dest, image::ImageFormat::Png)
            .map_err(image_error)?;
    }
    Ok(Some(CaptionImage {
        path: dest.to_owned(),
        width: img.width(),
        height: img.height(),
        options: *opts,
    }))
}

fn image_error(e: image::ImageError) -> MediaError {
    match e {
        image::ImageError::IoError(io) => MediaError::Io(io),
        other => MediaError::Io(std::io::Error::other(other)),
    }
}

/// Renders `text` for a `frame_width`×`frame_height` video in `opts`' style and size, at most
/// [`MAX_LINES`] lines wrapped at words (or between characters where a script has no spaces)
/// and cut with `…` past that. `highlight` is a byte range of `text` (the karaoke word) drawn in
/// [`HIGHLIGHT_RGB`]; a range that is out of bounds or splits a character is ignored. `None`
/// when the text is blank.
pub fn render_caption(
    text: &str,
    opts: &CaptionOptions,
    highlight: Option<Range<usize>>,
    frame_width: u32,
    frame_height: u32,
) -> Option<RgbaImage> {
    if text.trim().is_empty() {
        return None;
    }
    let highlight = highlight.filter(|r| valid_range(text, r));
    let g = Geometry::new(opts, frame_width, frame_height);
    let mut engine = engine();
    let laid = engine.fit(text, highlight, opts.style, &g);
    if laid.text.len() != text.len() {
        tracing::debug!(shown = %laid.text, "caption cut to {MAX_LINES} lines");
    }
    let glyphs = engine.rasterise(&laid.buffer);
    drop(engine);
    Some(compose(&glyphs, opts.style, &g, frame_width, frame_height))
}

/// Splits a text's words into pages that each render within [`MAX_LINES`] at these options, for
/// karaoke captions that follow narration through a long text. `word_ranges` are the words'
/// byte ranges `(start, end)` in `text`, in order; each page runs from its first word's start to
/// its last word's end. A word too long for a page by itself gets a page of its own (and is cut
/// when rendered). Ranges that are out of bounds, reversed or split a character are skipped.
pub fn paginate(
    text: &str,
    word_ranges: &[(usize, usize)],
    opts: &CaptionOptions,
    frame_width: u32,
    frame_height: u32,
) -> Vec<Range<usize>> {
    let words: Vec<Range<usize>> = word_ranges
        .iter()
        .map(|&(s, e)| s..e)
        .filter(|r| valid_range(text, r))
        .collect();
    let g = Geometry::new(opts, frame_width, frame_height);
    let mut engine = engine();
    let mut pages = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let start = words[i].start;
        let mut last = i;
        while last + 1 < words.len() {
            let candidate = &text[start..words[last + 1].end];
            let buffer = engine.shape(candidate, None, opts.style, &g);
            if line_count(&buffer) > g.max_lines {
                break;
            }
            last += 1;
        }
        pages.push(start..words[last].end);
        i = last + 1;
    }
    pages
}

fn valid_range(text: &str, r: &Range<usize>) -> bool {
    r.start <= r.end
        && r.end <= text.len()
        && text.is_char_boundary(r.start)
        && text.is_char_boundary(r.end)
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

/// The folder of caption fonts, looked for in this order: `VIDPIPE_FONTS_DIR`, the Lambda
/// layer's `/opt/fonts`, then `layers/fonts/build/fonts` under the workspace this crate was
/// compiled in and under each ancestor of the running executable (so a binary copied next to a
/// checkout still finds the layer build). The first that holds a font wins; `None` when none
/// does, and captions fall back to the embedded Latin fonts.
///
/// Unlike ffmpeg's directory, a `VIDPIPE_FONTS_DIR` without fonts falls through (with a
/// warning): a caption in the fallback font beats a failed render.
pub fn fonts_dir() -> Option<PathBuf> {
    let env = std::env::var_os(FONTS_ENV).filter(|v| !v.is_empty());
    let found = font_dir_candidates(env.clone())
        .into_iter()
        .find(|d| has_fonts(d));
    if let Some(env) = env
        && found.as_deref() != Some(Path::new(&env))
    {
        tracing::warn!(
            dir = %Path::new(&env).display(),
            "{FONTS_ENV} holds no fonts; using the next fonts folder"
        );
    }
    found
}

fn font_dir_candidates(env: Option<OsString>) -> Vec<PathBuf> {
    let layer = Path::new("layers")
        .join("fonts")
        .join("build")
        .join("fonts");
    let mut dirs: Vec<PathBuf> = env.into_iter().map(PathBuf::from).collect();
    dirs.push(PathBuf::from(LAYER_FONTS_DIR));
    dirs.push(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(&layer),
    );
    if let Ok(exe) = std::env::current_exe() {
        dirs.extend(exe.ancestors().skip(1).map(|a| a.join(&layer)));
    }
    dirs
}

fn has_fonts(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            let p = e.path();
            p.extension().and_then(|x| x.to_str()).is_some_and(|x| {
                ["ttf", "otf", "ttc", "otc"].contains(&x.to_ascii_lowercase().as_str())
            })
        })
    })
}

/// Sizes of one caption layout, from the options and the frame.
struct Geometry {
    px: f32,
    line_h: f32,
    max_text_w: f32,
    max_lines: usize,
    pad_x: f32,
    pad_y: f32,
    /// Outline width in pixels; 0 for the boxed style.
    outline: f32,
}

impl Geometry {
    fn new(opts: &CaptionOptions, frame_width: u32, frame_height: u32) -> Geometry {
        let px = (font_px(frame_width, frame_height) * size_scale(opts.size)).round();
        let outline = match opts.style {
            CaptionStyle::Boxed => 0.0,
            CaptionStyle::BoldOutline | CaptionStyle::Karaoke => (px * 0.09).max(1.5),
        };
        let (pad_x, pad_y) = if outline > 0.0 {
            let pad = (outline + 2.0).ceil();
            (pad, pad)
        } else {
            ((px * 0.6).round(), (px * 0.35).round())
        };
        let s = safe_area(frame_width, frame_height);
        let box_w = (frame_width as f32 * MAX_BOX_WIDTH)
            .min(frame_width.saturating_sub(s.left + s.right) as f32);
        let line_h = (px * LINE_SPACING).ceil();
        let max_lines = ((frame_height as f32 * MAX_BOX_HEIGHT - 2.0 * pad_y) / line_h)
            .floor()
            .clamp(1.0, MAX_LINES as f32) as usize;
        Geometry {
            px,
            line_h,
            max_text_w: (box_w - 2.0 * pad_x).max(px),
            max_lines,
            pad_x,
            pad_y,
            outline,
        }
    }
}

/// A caption's text after fitting, and its layout.
struct Laid {
    buffer: Buffer,
    /// The text laid out: the caption's, or a prefix of it ending in `…`.
    text: String,
}

/// One rasterised glyph, positioned relative to the layout's origin (top-left of the first
/// line box).
struct GlyphInk {
    x: i32,
    y: i32,
    w: u32,
    h: u32,
    /// Coverage (one byte a pixel) or straight RGBA (four) for colour glyphs.
    data: Vec<u8>,
    color: bool,
    highlighted: bool,
}

/// Everything drawn for one layout: its glyphs and the advance box of its lines.
struct Glyphs {
    ink: Vec<GlyphInk>,
    /// Horizontal extent of the lines' advances, and the height of the line boxes.
    min_x: f32,
    max_x: f32,
    height: f32,
    /// The primary face is the embedded Ubuntu Light, to be thickened when drawn.
    light: bool,
}

/// Fonts loaded once per process (parsing a CJK collection is not free), behind a mutex
/// because shaping and the glyph cache need `&mut`.
struct Engine {
    fonts: FontSystem,
    swash: SwashCache,
    /// The family captions ask for first; fallback finds the rest per script.
    family: &'static str,
    /// The weight every style uses when the family has only one (the embedded fallback).
    fixed_weight: Option<Weight>,
}

/// The family of the fonts layer's Latin/Cyrillic/Greek face.
const LAYER_FAMILY: &str = "Noto Sans";
/// The embedded text face's family (Ubuntu Light).
const EMBEDDED_FAMILY: &str = "Ubuntu";
/// The swash cache keys on size and sub-pixel offset too; past this many images it is dropped
/// rather than grown, so a long-lived worker does not accumulate every size it ever drew.
const GLYPH_CACHE_LIMIT: usize = 8192;

fn engine() -> MutexGuard<'static, Engine> {
    static ENGINE: OnceLock<Mutex<Engine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| Mutex::new(Engine::load(fonts_dir().as_deref())))
        .lock()
        // A panic mid-render leaves nothing half-written that the next caption depends on.
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Engine {
    fn load(dir: Option<&Path>) -> Engine {
        let mut db = fontdb::Database::new();
        match dir {
            Some(dir) => db.load_fonts_dir(dir),
            None => tracing::warn!(
                "no caption fonts folder (run layers/fonts/build.sh or set {FONTS_ENV}); \
                 captions outside Latin script will miss glyphs"
            ),
        }
        // Always there, last: Ubuntu for text, Hack for symbols, the monochrome Noto Emoji (for
        // when the folder's Noto Color Emoji is missing), and egui's icon font.
        for bytes in [
            epaint_default_fonts::UBUNTU_LIGHT,
            epaint_default_fonts::HACK_REGULAR,
            epaint_default_fonts::NOTO_EMOJI_REGULAR,
            epaint_default_fonts::EMOJI_ICON,
        ] {
            let data: Arc<dyn AsRef<[u8]> + Send + Sync> = Arc::new(bytes);
            db.load_font_source(fontdb::Source::Binary(data));
        }
        let has = |family: &str| {
            db.faces()
                .find(|f| f.families.iter().any(|(name, _)| name == family))
                .map(|f| f.weight)
        };
        let (family, fixed_weight) = match has(LAYER_FAMILY) {
            Some(_) => (LAYER_FAMILY, None),
            // cosmic-text only takes a family's face at the exact weight asked for, and Ubuntu
            // Light is the only weight embedded.
            None => (
                EMBEDDED_FAMILY,
                Some(has(EMBEDDED_FAMILY).unwrap_or(Weight::LIGHT)),
            ),
        };
        Engine {
            // A fixed locale: the system's would make Han glyph variants differ between machines.
            fonts: FontSystem::new_with_locale_and_db("en-US".into(), db),
            swash: SwashCache::new(),
            family,
            fixed_weight,
        }
    }

    fn attrs(&self, style: CaptionStyle) -> Attrs<'static> {
        let weight = self.fixed_weight.unwrap_or(match style {
            CaptionStyle::Boxed => Weight::NORMAL,
            CaptionStyle::BoldOutline | CaptionStyle::Karaoke => Weight::BOLD,
        });
        Attrs::new()
            .family(Family::Name(self.family))
            .weight(weight)
    }

    /// Shapes and lays out `text` centred in lines of the geometry's width.
    fn shape(
        &mut self,
        text: &str,
        highlight: Option<Range<usize>>,
        style: CaptionStyle,
        g: &Geometry,
    ) -> Buffer {
        let attrs = self.attrs(style);
        let mut buffer = Buffer::new(&mut self.fonts, Metrics::new(g.px, g.line_h));
        buffer.set_wrap(Wrap::WordOrGlyph);
        buffer.set_size(Some(g.max_text_w), None);
        let spans: Vec<(&str, Attrs)> = match highlight {
            Some(r) => vec![
                (&text[..r.start], attrs.clone()),
                (&text[r.clone()], attrs.clone().metadata(HIGHLIGHTED)),
                (&text[r.end..], attrs.clone()),
            ],
            None => vec![(text, attrs.clone())],
        };
        buffer.set_rich_text(
            spans.into_iter().filter(|(s, _)| !s.is_empty()),
            &attrs,
            Shaping::Advanced,
            Some(Align::Center),
        );
        buffer.shape_until_scroll(&mut self.fonts, false);
        buffer
    }

    /// Lays `text` out within the line limit, cutting it at the longest prefix that fits with
    /// `…` appended when it does not fit whole.
    fn fit(
        &mut self,
        text: &str,
        highlight: Option<Range<usize>>,
        style: CaptionStyle,
        g: &Geometry,
    ) -> Laid {
        let buffer = self.shape(text, highlight.clone(), style, g);
        if line_count(&buffer) <= g.max_lines {
            return Laid {
                buffer,
                text: text.to_owned(),
            };
        }
        let cut = |end: usize| {
            let kept = text[..end].trim_end();
            let clipped = highlight.as_ref().and_then(|r| {
                let r = r.start.min(kept.len())..r.end.min(kept.len());
                (!r.is_empty()).then_some(r)
            });
            (format!("{kept}…"), clipped)
        };
        // Fitting is monotonic in the prefix's length, so binary search over cut points.
        let ends: Vec<usize> = text.char_indices().map(|(i, _)| i).skip(1).collect();
        let (mut lo, mut hi) = (0usize, ends.len());
        let mut best: Option<(String, Buffer)> = None;
        while lo < hi {
            let mid = (lo + hi) / 2;
            let (candidate, hl) = cut(ends[mid]);
            let buffer = self.shape(&candidate, hl, style, g);
            if line_count(&buffer) <= g.max_lines {
                best = Some((candidate, buffer));
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let (text, buffer) = best.unwrap_or_else(|| {
            let text = "…".to_owned();
            let buffer = self.shape(&text, None, style, g);
            (text, buffer)
        });
        Laid { buffer, text }
    }

    /// Rasterises every glyph of a layout. Glyph id 0 (`.notdef`, what shaping leaves when no
    /// font has a character) is skipped: a gap reads better than a box.
    fn rasterise(&mut self, buffer: &Buffer) -> Glyphs {
        if self.swash.image_cache.len() > GLYPH_CACHE_LIMIT {
            self.swash.image_cache.clear();
        }
        let mut out = Glyphs {
            ink: Vec::new(),
            min_x: f32::MAX,
            max_x: f32::MIN,
            height: 0.0,
            light: self.fixed_weight.is_some(),
        };
        for run in buffer.layout_runs() {
            out.height = out.height.max(run.line_top + run.line_height);
            for glyph in run.glyphs {
                out.min_x = out.min_x.min(glyph.x);
                out.max_x = out.max_x.max(glyph.x + glyph.w);
                if glyph.glyph_id == 0 {
                    tracing::debug!(
                        text = &run.text[glyph.start..glyph.end],
                        "no font has a glyph"
                    );
                    continue;
                }
                let physical = glyph.physical((0.0, run.line_y), 1.0);
                let Some(image) = self.swash.get_image(&mut self.fonts, physical.cache_key) else {
                    continue;
                };
                let color = match image.content {
                    SwashContent::Mask => false,
                    SwashContent::Color => true,
                    // Only produced when asked for subpixel rendering, which this never does.
                    SwashContent::SubpixelMask => continue,
                };
                if image.placement.width == 0 || image.placement.height == 0 {
                    continue;
                }
                out.ink.push(GlyphInk {
                    x: physical.x + image.placement.left,
                    y: physical.y - image.placement.top,
                    w: image.placement.width,
                    h: image.placement.height,
                    data: image.data.clone(),
                    color,
                    highlighted: glyph.metadata == HIGHLIGHTED,
                });
            }
        }
        if out.min_x > out.max_x {
            (out.min_x, out.max_x) = (0.0, 0.0);
        }
        out
    }
}

fn line_count(buffer: &Buffer) -> usize {
    buffer.layout_runs().count()
}

/// Paints a layout's glyphs in a style onto a canvas cropped to the caption.
fn compose(
    glyphs: &Glyphs,
    style: CaptionStyle,
    g: &Geometry,
    frame_width: u32,
    frame_height: u32,
) -> RgbaImage {
    // The canvas covers the line boxes and any ink that overhangs them (tall marks, descenders).
    let (mut x0, mut x1, mut y0, mut y1) = (glyphs.min_x, glyphs.max_x, 0.0f32, glyphs.height);
    for ink in &glyphs.ink {
        x0 = x0.min(ink.x as f32);
        x1 = x1.max((ink.x + ink.w as i32) as f32);
        y0 = y0.min(ink.y as f32);
        y1 = y1.max((ink.y + ink.h as i32) as f32);
    }
    let even = |v: f32, cap: u32| ((v.ceil() as u32).max(2).div_ceil(2) * 2).min(cap.max(2) & !1);
    let w = even(x1 - x0 + 2.0 * g.pad_x, frame_width);
    let h = even(y1 - y0 + 2.0 * g.pad_y, frame_height);
    let ox = ((w as f32 - (x1 - x0)) / 2.0 - x0).round() as i32;
    let oy = ((h as f32 - (y1 - y0)) / 2.0 - y0).round() as i32;

    let mut plain = Mask::new(w, h);
    let mut marked = Mask::new(w, h);
    let mut colour = vec![[0.0f32; 4]; (w * h) as usize];
    for ink in &glyphs.ink {
        for gy in 0..ink.h as i32 {
            for gx in 0..ink.w as i32 {
                let (x, y) = (ox + ink.x + gx, oy + ink.y + gy);
                let i = (gy * ink.w as i32 + gx) as usize;
                if ink.color {
                    if x < 0 || y < 0 || x >= w as i32 || y >= h as i32 {
                        continue;
                    }
                    let px = &ink.data[i * 4..i * 4 + 4];
                    let a = px[3] as f32 / 255.0;
                    let dst = &mut colour[(y * w as i32 + x) as usize];
                    for c in 0..3 {
                        dst[c] = px[c] as f32 / 255.0 * a + dst[c] * (1.0 - a);
                    }
                    dst[3] = a + dst[3] * (1.0 - a);
                } else {
                    let target = if ink.highlighted {
                        &mut marked
                    } else {
                        &mut plain
                    };
                    target.add(x, y, ink.data[i] as f32 / 255.0);
                }
            }
        }
    }
    if glyphs.light {
        // Ubuntu Light is thin for video; a horizontal dilation makes it read like a regular
        // weight, or a bold one for the outlined styles.
        let r = match style {
            CaptionStyle::Boxed => g.px / 28.0,
            CaptionStyle::BoldOutline | CaptionStyle::Karaoke => g.px / 16.0,
        };
        let r = r.round().max(1.0) as i32;
        plain = plain.dilate_x(r);
        marked = marked.dilate_x(r);
    }
    let mut all = Mask::new(w, h);
    for (i, v) in all.data.iter_mut().enumerate() {
        *v = (plain.data[i] + marked.data[i] + colour[i][3]).min(1.0);
    }

    let backdrop = match style {
        CaptionStyle::Boxed => Backdrop::Boxed {
            shadow: all.blurred((g.px / 10.0).round().max(1.0) as usize),
            offset: (g.px / 24.0).round().max(1.0) as i32,
            radius: g.px * 0.35,
        },
        CaptionStyle::BoldOutline | CaptionStyle::Karaoke => {
            Backdrop::Outline(all.dilate_disc(g.outline))
        }
    };
    let [hr, hg, hb] = HIGHLIGHT_RGB.map(|c| c as f32 / 255.0);
    let mut img = RgbaImage::new(w, h);
    for y in 0..h as i32 {
        for x in 0..w as i32 {
            // Premultiplied "over", back to front.
            let mut acc = [0.0f32; 4];
            let over = |acc: &mut [f32; 4], rgb: [f32; 3], a: f32| {
                for c in 0..3 {
                    acc[c] = rgb[c] * a + acc[c] * (1.0 - a);
                }
                acc[3] = a + acc[3] * (1.0 - a);
            };
            match &backdrop {
                Backdrop::Boxed {
                    shadow,
                    offset,
                    radius,
                } => {
                    let b = rounded_box_coverage(
                        x as f32 + 0.5,
                        y as f32 + 0.5,
                        w as f32,
                        h as f32,
                        *radius,
                    );
                    over(&mut acc, [0.0; 3], BOX_ALPHA * b);
                    let s = shadow.at(x - offset, y - offset);
                    over(&mut acc, [0.0; 3], (s * 2.2).min(1.0) * 0.85);
                }
                Backdrop::Outline(outline) => over(&mut acc, [0.0; 3], outline.at(x, y)),
            }
            over(&mut acc, [1.0; 3], plain.at(x, y));
            over(&mut acc, [hr, hg, hb], marked.at(x, y));
            let c = colour[(y * w as i32 + x) as usize];
            if c[3] > 0.0 {
                // Colour glyphs are stored premultiplied already.
                for k in 0..3 {
                    acc[k] = c[k] + acc[k] * (1.0 - c[3]);
                }
                acc[3] = c[3] + acc[3] * (1.0 - c[3]);
            }
            let a = acc[3];
            let to_u8 = |v: f32| (v * 255.0).round().clamp(0.0, 255.0) as u8;
            let straight = |v: f32| if a > 0.0 { v / a } else { 0.0 };
            img.put_pixel(
                x as u32,
                y as u32,
                Rgba([
                    to_u8(straight(acc[0])),
                    to_u8(straight(acc[1])),
                    to_u8(straight(acc[2])),
                    to_u8(a),
                ]),
            );
        }
    }
    img
}

/// What sits behind a caption's text.
enum Backdrop {
    /// A translucent rounded box filling the canvas, and the text's soft drop shadow.
    Boxed {
        shadow: Mask,
        offset: i32,
        radius: f32,
    },
    /// A dark outline around the glyphs.
    Outline(Mask),
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

impl Mask {
    /// Grows the coverage by a disc of radius `r`, anti-aliased at its rim: the outline of the
    /// bold-outline styles.
    fn dilate_disc(&self, r: f32) -> Mask {
        let reach = r.ceil() as i32 + 1;
        let mut taps = Vec::new();
        for dy in -reach..=reach {
            for dx in -reach..=reach {
                let weight = (r + 0.5 - ((dx * dx + dy * dy) as f32).sqrt()).clamp(0.0, 1.0);
                if weight > 0.0 {
                    taps.push((dx, dy, weight));
                }
            }
        }
        let mut out = Mask {
            data: vec![0.0; self.data.len()],
            ..*self
        };
        for y in 0..self.h {
            for x in 0..self.w {
                let mut m = 0.0f32;
                for &(dx, dy, weight) in &taps {
                    m = m.max(self.at(x + dx, y + dy) * weight);
                    if m >= 1.0 {
                        break;
                    }
                }
                out.data[(y * self.w + x) as usize] = m;
            }
        }
        out
    }
}

/// vidpipe's own watermark, for one-machine runs that configure none: the word "vidpipe" drawn
/// as a default caption would be, encoded as PNG like an uploaded watermark.
pub fn default_watermark_png() -> Result<Vec<u8>, MediaError> {
    let img = render_caption("vidpipe", &CaptionOptions::default(), None, 1920, 1080)
        .ok_or_else(|| MediaError::InvalidInput("the built-in watermark is blank".into()))?;
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .map_err(image_error)?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cosmic_text::{CacheKey, CacheKeyFlags};

    fn styled(style: CaptionStyle) -> CaptionOptions {
        CaptionOptions {
            style,
            ..CaptionOptions::default()
        }
    }

    /// The script tests are about the fonts layer: without it they must fail, not pass vacuously.
    fn require_fonts() {
        assert!(
            fonts_dir().is_some(),
            "no caption fonts folder: run layers/fonts/build.sh"
        );
        assert_eq!(engine().family, LAYER_FAMILY);
    }

    fn is_white(p: &Rgba<u8>) -> bool {
        p[0] > 230 && p[1] > 230 && p[2] > 230 && p[3] > 230
    }

    fn is_yellow(p: &Rgba<u8>) -> bool {
        p[0] > 200 && p[1] > 150 && p[2] < 90 && p[3] > 200
    }

    /// Mean x of the pixels that pass `pick`, and how many there are.
    fn centroid_x(img: &RgbaImage, pick: fn(&Rgba<u8>) -> bool) -> (f32, usize) {
        let xs: Vec<u32> = img
            .enumerate_pixels()
            .filter(|(_, _, p)| pick(p))
            .map(|(x, _, _)| x)
            .collect();
        let mean = xs.iter().map(|&x| x as f32).sum::<f32>() / xs.len().max(1) as f32;
        (mean, xs.len())
    }

    type Bitmap = Option<(Vec<u8>, u32, u32, i32, i32)>;

    fn bitmap(e: &mut Engine, font: fontdb::ID, id: u16, px: f32, weight: Weight) -> Bitmap {
        let (key, _, _) = CacheKey::new(font, id, px, (0.0, 0.0), weight, CacheKeyFlags::empty());
        e.swash.get_image_uncached(&mut e.fonts, key).map(|i| {
            (
                i.data,
                i.placement.width,
                i.placement.height,
                i.placement.left,
                i.placement.top,
            )
        })
    }

    /// A caption's shaped glyphs as (font, glyph id, bitmap at the origin), its line count and
    /// the text laid out.
    fn shaped(
        text: &str,
        opts: &CaptionOptions,
        w: u32,
        h: u32,
    ) -> (Vec<(fontdb::ID, u16, Bitmap)>, usize, String) {
        let g = Geometry::new(opts, w, h);
        let mut e = engine();
        let laid = e.fit(text, None, opts.style, &g);
        let glyphs: Vec<_> = laid
            .buffer
            .layout_runs()
            .flat_map(|r| r.glyphs.iter().cloned())
            .collect();
        let out = glyphs
            .iter()
            .map(|gl| {
                let bm = bitmap(
                    &mut e,
                    gl.font_id,
                    gl.glyph_id,
                    gl.font_size,
                    gl.font_weight,
                );
                (gl.font_id, gl.glyph_id, bm)
            })
            .collect();
        (out, line_count(&laid.buffer), laid.text)
    }

    /// Asserts that every glyph of `text` was found in some font (no glyph id 0) and that none
    /// is drawn like the `.notdef` box of its own font or of the primary one.
    fn assert_real_glyphs(text: &str, opts: &CaptionOptions) {
        let (glyphs, _, _) = shaped(text, opts, 1280, 720);
        assert!(!glyphs.is_empty(), "{text:?} shaped to nothing");
        let mut e = engine();
        let primary = e
            .fonts
            .db()
            .faces()
            .find(|f| f.families.iter().any(|(n, _)| n == LAYER_FAMILY))
            .map(|f| f.id)
            .expect("Noto Sans loaded");
        let px = Geometry::new(opts, 1280, 720).px;
        let primary_notdef = bitmap(&mut e, primary, 0, px, Weight::NORMAL);
        assert!(
            primary_notdef
                .as_ref()
                .is_some_and(|b| b.0.iter().any(|&c| c > 128)),
            "Noto Sans' .notdef should be a visible box, else comparing with it proves nothing"
        );
        let mut inked = 0;
        for (font, id, bm) in &glyphs {
            let face = e.fonts.db().face(*font).map(|f| f.families[0].0.clone());
            assert_ne!(*id, 0, "{text:?}: a character has no glyph (font {face:?})");
            let own_notdef = bitmap(&mut e, *font, 0, px, Weight::NORMAL);
            if let Some(b) = bm {
                inked += usize::from(b.0.iter().any(|&c| c > 0));
                assert_ne!(
                    bm, &own_notdef,
                    "{text:?}: glyph {id} of {face:?} is .notdef"
                );
                assert_ne!(
                    Some(&b.0),
                    primary_notdef.as_ref().map(|n| &n.0),
                    "{text:?}: glyph {id} of {face:?} looks like .notdef"
                );
            }
        }
        assert!(inked > 0, "{text:?}: no glyph has ink");
    }

    #[test]
    fn blank_text_renders_nothing() {
        assert!(render_caption("  \n ", &CaptionOptions::default(), None, 1920, 1080).is_none());
    }

    #[test]
    fn long_text_wraps_within_the_frame() {
        let text =
            "A very long caption that certainly does not fit on a single line of a portrait frame";
        let opts = CaptionOptions::default();
        let one_line = render_caption("short", &opts, None, 1080, 1920).unwrap();
        let img = render_caption(text, &opts, None, 1080, 1920).unwrap();
        assert!(
            img.width() as f32 <= 1080.0 * MAX_BOX_WIDTH + 1.0,
            "{}",
            img.width()
        );
        // Two lines (the most a caption has): the one-line box plus another line's pitch.
        let line_h = Geometry::new(&opts, 1080, 1920).line_h;
        assert!(
            img.height() as f32 >= one_line.height() as f32 + line_h - 2.0,
            "should wrap: {}",
            img.height()
        );
        assert_eq!(img.width() % 2, 0);
        assert_eq!(img.height() % 2, 0);
    }

    #[test]
    fn text_is_white_on_a_translucent_box() {
        let img = render_caption("Hello", &CaptionOptions::default(), None, 1280, 720).unwrap();
        let white = img.pixels().filter(|p| is_white(p)).count();
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
    fn every_script_renders_real_glyphs() {
        require_fonts();
        for text in [
            "こんにちは、世界。東京へようこそ",
            "你好，世界",
            "안녕하세요 세계",
            "مرحبا بالعالم",
            "שלום עולם",
            "नमस्ते दुनिया",
            "Привет, мир",
            "Καλημέρα κόσμε",
            "Party time 😀🎉",
        ] {
            for style in [CaptionStyle::Boxed, CaptionStyle::Karaoke] {
                assert_real_glyphs(text, &styled(style));
                let img = render_caption(text, &styled(style), None, 1280, 720).unwrap();
                let white = img.pixels().filter(|p| is_white(p)).count();
                assert!(white > 200, "{text:?} ({style}): {white} white pixels");
            }
        }
    }

    #[test]
    fn a_character_no_font_has_is_left_out_not_boxed() {
        require_fonts();
        // Ethiopic: in none of the layer's fonts nor the embedded ones.
        let (glyphs, _, _) = shaped("ሰላም", &CaptionOptions::default(), 1280, 720);
        assert!(
            glyphs.iter().any(|(_, id, _)| *id == 0),
            "the check for missing glyphs should see this one"
        );
        let img = render_caption("ሰላም", &CaptionOptions::default(), None, 1280, 720).unwrap();
        let white = img.pixels().filter(|p| is_white(p)).count();
        assert_eq!(white, 0, "a missing glyph was drawn");
    }

    #[test]
    fn emoji_are_drawn_in_colour() {
        require_fonts();
        let img = render_caption("😀", &CaptionOptions::default(), None, 1280, 720).unwrap();
        // The grinning face is yellow-orange; white text on a grey box has no such pixels.
        let warm = img
            .pixels()
            .filter(|p| p[3] > 200 && p[0] > 180 && p[0] as i32 - p[2] as i32 > 100)
            .count();
        assert!(warm > 100, "colour emoji pixels: {warm}");
        let plain = render_caption("Hello", &CaptionOptions::default(), None, 1280, 720).unwrap();
        assert!(
            !plain
                .pixels()
                .any(|p| p[3] > 200 && p[0] as i32 - p[2] as i32 > 100)
        );
    }

    #[test]
    fn emoji_come_from_a_fallback_face() {
        let (glyphs, _, _) = shaped("a😀", &CaptionOptions::default(), 1280, 720);
        assert_eq!(glyphs.len(), 2);
        assert_ne!(glyphs[0].0, glyphs[1].0, "emoji and Latin share a face");
        assert_ne!(glyphs[1].1, 0);
    }

    #[test]
    fn arabic_is_drawn_right_to_left() {
        require_fonts();
        let first = "مرحبا";
        let text = format!("{first} بالعالم");
        let img = render_caption(
            &text,
            &styled(CaptionStyle::Karaoke),
            Some(0..first.len()),
            1280,
            720,
        )
        .unwrap();
        let (yellow, ny) = centroid_x(&img, is_yellow);
        let (white, nw) = centroid_x(&img, is_white);
        assert!(ny > 100 && nw > 100, "yellow {ny}, white {nw}");
        assert!(
            yellow > white,
            "the first Arabic word should be on the right: yellow at {yellow}, white at {white}"
        );
        // The same check on English puts the first word on the left.
        let img = render_caption(
            "Hello world",
            &styled(CaptionStyle::Karaoke),
            Some(0..5),
            1280,
            720,
        )
        .unwrap();
        assert!(centroid_x(&img, is_yellow).0 < centroid_x(&img, is_white).0);
    }

    #[test]
    fn karaoke_highlight_follows_the_word() {
        let opts = styled(CaptionStyle::Karaoke);
        let text = "one two three";
        let plain = render_caption(text, &opts, None, 1280, 720).unwrap();
        assert_eq!(centroid_x(&plain, is_yellow).1, 0, "nothing is highlighted");
        let two = render_caption(text, &opts, Some(4..7), 1280, 720).unwrap();
        let three = render_caption(text, &opts, Some(8..13), 1280, 720).unwrap();
        let (x2, n2) = centroid_x(&two, is_yellow);
        let (x3, n3) = centroid_x(&three, is_yellow);
        assert!(n2 > 50 && n3 > 50, "yellow pixels: {n2}, {n3}");
        assert!(x3 > x2 + 20.0, "highlight should move right: {x2} -> {x3}");
        assert_eq!(two.dimensions(), three.dimensions());
        let white_diff = two
            .pixels()
            .zip(three.pixels())
            .filter(|(a, b)| is_white(a) != is_white(b))
            .count();
        assert!(white_diff > 50, "white pixels should change: {white_diff}");
        // A range that splits a character is ignored rather than panicking.
        assert!(render_caption("héllo", &opts, Some(2..3), 1280, 720).is_some());
    }

    #[test]
    fn text_is_cut_at_two_lines_with_an_ellipsis() {
        // Long enough to overflow two lines in any of the fonts, narrow embedded ones included.
        let long = "This caption goes on and on about nothing in particular, far longer than \
                    anyone could read in the two seconds it is on screen for"
            .repeat(2);
        let long = long.as_str();
        let (_, lines, shown) = shaped(long, &CaptionOptions::default(), 1280, 720);
        assert_eq!(lines, 2);
        assert!(shown.ends_with('…'), "{shown}");
        assert!(long.starts_with(shown.trim_end_matches('…')));
        let g = Geometry::new(&CaptionOptions::default(), 1280, 720);
        let img = render_caption(long, &CaptionOptions::default(), None, 1280, 720).unwrap();
        assert!(
            (img.height() as f32) < 3.0 * g.line_h,
            "height {} for line height {}",
            img.height(),
            g.line_h
        );
        let (_, lines, shown) = shaped("Short", &CaptionOptions::default(), 1280, 720);
        assert_eq!((lines, shown.as_str()), (1, "Short"));
    }

    #[test]
    fn cjk_wraps_between_characters() {
        require_fonts();
        // No spaces: only breaking between characters can wrap it.
        let text = "吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。";
        let opts = CaptionOptions::default();
        let (w, h) = (1080, 1920);
        let (_, lines, shown) = shaped(text, &opts, w, h);
        assert_eq!(lines, 2, "{shown}");
        let img = render_caption(text, &opts, None, w, h).unwrap();
        assert!(
            img.width() as f32 <= w as f32 * MAX_BOX_WIDTH,
            "{}",
            img.width()
        );
        let long = text.repeat(3);
        let (_, lines, shown) = shaped(&long, &opts, w, h);
        assert_eq!(lines, 2);
        assert!(shown.ends_with('…'), "{shown}");
    }

    #[test]
    fn bold_outline_rings_white_text_with_black() {
        let img =
            render_caption("Hello", &styled(CaptionStyle::BoldOutline), None, 1280, 720).unwrap();
        let g = Geometry::new(&styled(CaptionStyle::BoldOutline), 1280, 720);
        let dark = |p: &Rgba<u8>| p[3] > 200 && p[0] < 40 && p[1] < 40 && p[2] < 40;
        let reach = g.outline.ceil() as u32 + 1;
        let mut rows = 0;
        for y in 0..img.height() {
            let Some(first) = (0..img.width()).find(|&x| is_white(img.get_pixel(x, y))) else {
                continue;
            };
            rows += 1;
            assert!(
                (first.saturating_sub(reach)..first).any(|x| dark(img.get_pixel(x, y))),
                "row {y}: no dark outline left of the text at {first}"
            );
        }
        assert!(rows > 10, "white rows: {rows}");
        assert_eq!(img.get_pixel(0, 0)[3], 0, "no box behind outlined text");
        assert_eq!(img.get_pixel(0, img.height() / 2)[3], 0);
    }

    #[test]
    fn pages_each_fit_in_two_lines_and_cover_every_word() {
        let text = "Every word of this narration is spoken in turn and the captions follow it \
                    page by page so that no page ever needs more than the two lines a viewer \
                    can take in at a glance while the video keeps moving";
        let words: Vec<(usize, usize)> = text
            .split_whitespace()
            .map(|w| {
                let start = w.as_ptr() as usize - text.as_ptr() as usize;
                (start, start + w.len())
            })
            .collect();
        let opts = styled(CaptionStyle::Karaoke);
        let pages = paginate(text, &words, &opts, 1080, 1920);
        assert!(pages.len() > 1, "{pages:?}");
        assert_eq!(pages[0].start, 0);
        assert_eq!(pages.last().unwrap().end, text.len());
        for pair in pages.windows(2) {
            let gap = &text[pair[0].end..pair[1].start];
            assert!(gap.trim().is_empty(), "a word fell between pages: {gap:?}");
        }
        for page in &pages {
            let (_, lines, shown) = shaped(&text[page.clone()], &opts, 1080, 1920);
            assert!(lines <= MAX_LINES && !shown.ends_with('…'), "{shown}");
        }
        // Greedy: each page but the last would overflow with its next word.
        let next_end = words
            .iter()
            .find(|w| w.0 > pages[0].end)
            .map(|w| w.1)
            .unwrap();
        let (_, _, shown) = shaped(&text[..next_end], &opts, 1080, 1920);
        assert!(
            shown.ends_with('…'),
            "one more word would still fit: {shown}"
        );
    }

    #[test]
    fn portrait_captions_stay_clear_of_the_platform_ui() {
        let (fw, fh) = (1080, 1920);
        for style in CaptionStyle::ALL {
            for position in CaptionPosition::ALL {
                let opts = CaptionOptions {
                    style: *style,
                    position: *position,
                    size: CaptionSize::Large,
                };
                let img = render_caption("Watch this till the end", &opts, None, fw, fh).unwrap();
                let (x, y) = caption_position(&opts, img.width(), img.height(), fw, fh);
                assert!(
                    y + img.height() <= fh * 4 / 5,
                    "{opts:?}: into the bottom 20%"
                );
                assert!(y >= fh / 10, "{opts:?}: into the top 10%");
                assert!(
                    x + img.width() <= fw * 88 / 100,
                    "{opts:?}: under the buttons"
                );
            }
        }
        // Landscape keeps the old placement: centred, 7% above the bottom.
        let opts = CaptionOptions::default();
        assert_eq!(
            caption_position(&opts, 200, 40, 1280, 720),
            ((1280 - 200) / 2, 720 - 40 - bottom_margin(720))
        );
        let top = CaptionOptions {
            position: CaptionPosition::Top,
            ..opts
        };
        assert_eq!(
            caption_position(&top, 200, 40, 1280, 720).1,
            bottom_margin(720)
        );
        let center = CaptionOptions {
            position: CaptionPosition::Center,
            ..opts
        };
        assert_eq!(caption_position(&center, 200, 40, 1280, 720).1, 340);
    }

    #[test]
    fn sizes_scale_the_type() {
        let h = |size| {
            let opts = CaptionOptions {
                size,
                ..CaptionOptions::default()
            };
            render_caption("Hello", &opts, None, 1280, 720)
                .unwrap()
                .height()
        };
        assert!(h(CaptionSize::Small) < h(CaptionSize::Medium));
        assert!(h(CaptionSize::Medium) < h(CaptionSize::Large));
    }

    #[test]
    fn fonts_folder_lookup_order() {
        let dirs = font_dir_candidates(Some("/from/env".into()));
        assert_eq!(dirs[0], Path::new("/from/env"));
        assert_eq!(dirs[1], Path::new(LAYER_FONTS_DIR));
        assert!(dirs[2].ends_with("layers/fonts/build/fonts"));
        assert_eq!(font_dir_candidates(None)[0], Path::new(LAYER_FONTS_DIR));
        assert!(!has_fonts(Path::new("/definitely/not/here")));
    }

    #[test]
    fn without_the_fonts_folder_latin_still_renders() {
        let mut e = Engine::load(None);
        assert_eq!(e.family, EMBEDDED_FAMILY);
        let g = Geometry::new(&styled(CaptionStyle::BoldOutline), 1280, 720);
        let laid = e.fit("Hello, world", None, CaptionStyle::BoldOutline, &g);
        let glyphs = e.rasterise(&laid.buffer);
        assert!(glyphs.light);
        assert_eq!(glyphs.ink.len(), "Hello,world".len(), "every letter inked");
        let img = compose(&glyphs, CaptionStyle::BoldOutline, &g, 1280, 720);
        assert!(img.pixels().filter(|p| is_white(p)).count() > 200);
    }

    #[test]
    fn writes_pam_that_ffmpeg_reads() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("c.pam");
        let opts = styled(CaptionStyle::Karaoke);
        let img = write_caption("Hi there", &opts, Some(0..2), 640, 360, &dest)
            .unwrap()
            .unwrap();
        assert_eq!(img.options, opts);
        let bytes = std::fs::read(&dest).unwrap();
        let header = format!(
            "P7\nWIDTH {}\nHEIGHT {}\nDEPTH 4\nMAXVAL 255\nTUPLTYPE RGB_ALPHA\nENDHDR\n",
            img.width, img.height
        );
        assert!(bytes.starts_with(header.as_bytes()));
        assert_eq!(
            bytes.len(),
            header.len() + (img.width * img.height * 4) as usize
        );
    }
}
