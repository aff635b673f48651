//! Typed ffmpeg filtergraphs: pads, filters and chains rendered with ffmpeg's two levels of
//! escaping, so a value (a caption path, an expression, user text) can never change the graph's
//! structure.

use std::fmt::{self, Display};
use vidpipe_domain::TransitionKind;

/// A link label, written `[label]` in the graph: an input stream (`0:v`) or a named pad.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pad(String);

impl Pad {
    /// A named pad. Names are ours, never user text; anything outside `[A-Za-z0-9_]` is replaced.
    pub fn new(name: impl AsRef<str>) -> Pad {
        Pad(name
            .as_ref()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect())
    }

    /// The video stream of input `index`.
    pub fn video(index: usize) -> Pad {
        Pad(format!("{index}:v"))
    }

    /// The audio stream of input `index`.
    pub fn audio(index: usize) -> Pad {
        Pad(format!("{index}:a"))
    }

    /// The label as `-map` wants it (`[name]`).
    pub fn map_arg(&self) -> String {
        format!("[{}]", self.0)
    }
}

impl Display for Pad {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}]", self.0)
    }
}

/// One filter with its options, named (`key=value`) or positional.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    name: String,
    options: Vec<(Option<String>, String)>,
}

impl Filter {
    pub fn new(name: impl Into<String>) -> Filter {
        Filter {
            name: name.into(),
            options: Vec::new(),
        }
    }

    /// Adds `key=value`; the value is escaped when rendered.
    pub fn opt(mut self, key: &str, value: impl Display) -> Filter {
        self.options.push((Some(key.to_owned()), value.to_string()));
        self
    }

    /// Adds a number option written without float noise (`0.5`, not `0.5000000001`).
    pub fn num(self, key: &str, value: f64) -> Filter {
        self.opt(key, fmt_num(value))
    }

    /// Adds a positional value.
    pub fn arg(mut self, value: impl Display) -> Filter {
        self.options.push((None, value.to_string()));
        self
    }
}

impl Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        for (i, (key, value)) in self.options.iter().enumerate() {
            f.write_str(if i == 0 { "=" } else { ":" })?;
            if let Some(key) = key {
                write!(f, "{key}=")?;
            }
            f.write_str(&escape_value(value))?;
        }
        Ok(())
    }
}

/// `[in...] filter, filter, ... [out...]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Chain {
    inputs: Vec<Pad>,
    filters: Vec<Filter>,
    outputs: Vec<Pad>,
}

impl Chain {
    pub fn new(inputs: impl IntoIterator<Item = Pad>) -> Chain {
        Chain {
            inputs: inputs.into_iter().collect(),
            filters: Vec::new(),
            outputs: Vec::new(),
        }
    }

    pub fn then(mut self, filter: impl Into<Filter>) -> Chain {
        self.filters.push(filter.into());
        self
    }

    pub fn to(mut self, outputs: impl IntoIterator<Item = Pad>) -> Chain {
        self.outputs = outputs.into_iter().collect();
        self
    }
}

impl Display for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.inputs {
            write!(f, "{p}")?;
        }
        for (i, filter) in self.filters.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{filter}")?;
        }
        for p in &self.outputs {
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// A whole graph: chains joined with `;`, ready for `-filter_complex` or a lavfi input.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Graph {
    chains: Vec<Chain>,
}

impl Graph {
    pub fn new() -> Graph {
        Graph::default()
    }

    pub fn push(&mut self, chain: Chain) {
        self.chains.push(chain);
    }

    pub fn is_empty(&self) -> bool {
        self.chains.is_empty()
    }
}

impl Display for Graph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, chain) in self.chains.iter().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            write!(f, "{chain}")?;
        }
        Ok(())
    }
}

/// An `xfade` between the pad before it and the pad after it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Xfade {
    pub kind: TransitionKind,
    pub duration: f64,
    /// When the transition starts, in seconds of the first input.
    pub offset: f64,
}

impl From<Xfade> for Filter {
    fn from(x: Xfade) -> Filter {
        Filter::new("xfade")
            .opt("transition", x.kind.as_str())
            .num("duration", x.duration)
            .num("offset", x.offset)
    }
}

/// Escapes one option value for both levels ffmpeg applies: first the option parser
/// (`key=value:key=value`, which splits on `:` and `=` and honours `\` and `'`), then the graph
/// parser (which splits on `,` `;` `[` `]` and honours `\` and `'`). Leading and trailing
/// whitespace is escaped too, since both parsers would otherwise trim it.
pub fn escape_value(value: &str) -> String {
    escape(
        &escape(value, &['\\', '\'', ':', '=']),
        &['\\', '\'', '[', ']', ',', ';'],
    )
}

fn escape(text: &str, special: &[char]) -> String {
    let mut out = String::with_capacity(text.len() + 4);
    let last = text.chars().count().saturating_sub(1);
    for (i, c) in text.chars().enumerate() {
        let edge_space = (i == 0 || i == last) && c.is_whitespace();
        if special.contains(&c) || edge_space {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Formats a number the way ffmpeg reads it back exactly enough: up to 6 decimals, no trailing
/// zeros, never exponent notation.
pub fn fmt_num(v: f64) -> String {
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" || s.is_empty() {
        "0".into()
    } else {
        s.to_owned()
    }
}

/// Blur-pad: fits a picture into a `w`x`h` box without stretching. A blurred, cover-scaled copy
/// fills the box and the picture, contain-scaled to `fw`x`fh`, sits centred on it. The copy is
/// blurred at quarter size, where blur is 16x cheaper and looks the same once scaled up.
///
/// Pushes the split and both branches into `g` and returns the overlay chain, for the caller to
/// finish and name. `tag` keeps the pad names of several blur-pads apart.
pub fn blur_pad(
    g: &mut Graph,
    head: Chain,
    tag: &str,
    (w, h): (u32, u32),
    (fw, fh): (u32, u32),
) -> Chain {
    let (bg_in, fg_in, bg, fg) = (
        Pad::new(format!("bgsrc{tag}")),
        Pad::new(format!("fgsrc{tag}")),
        Pad::new(format!("bg{tag}")),
        Pad::new(format!("fg{tag}")),
    );
    g.push(
        head.then(Filter::new("split").arg(2))
            .to([bg_in.clone(), fg_in.clone()]),
    );
    let quarter = |v: u32| (v / 4 / 2 * 2).max(2);
    let (bw, bh) = (quarter(w), quarter(h));
    g.push(
        Chain::new([bg_in])
            .then(
                Filter::new("scale")
                    .opt("w", bw)
                    .opt("h", bh)
                    .opt("force_original_aspect_ratio", "increase"),
            )
            .then(Filter::new("crop").opt("w", bw).opt("h", bh))
            .then(Filter::new("gblur").num("sigma", (bh as f64 / 12.0).max(2.0)))
            .then(Filter::new("scale").opt("w", w).opt("h", h))
            .to([bg.clone()]),
    );
    g.push(
        Chain::new([fg_in])
            .then(
                Filter::new("scale")
                    .opt("w", fw)
                    .opt("h", fh)
                    .opt("flags", "bicubic"),
            )
            .to([fg.clone()]),
    );
    Chain::new([bg, fg]).then(
        Filter::new("overlay")
            .opt("x", (w - fw) / 2)
            .opt("y", (h - fh) / 2),
    )
}

/// Timed voice pads mixed into one stem of exactly `duration` seconds, unscaled (`amix` would
/// otherwise divide each voice by their count).
pub fn voice_stem(voices: Vec<Pad>, duration: f64) -> Chain {
    let count = voices.len();
    let mut stem = Chain::new(voices);
    if count > 1 {
        stem = stem.then(
            Filter::new("amix")
                .opt("inputs", count)
                .opt("duration", "longest")
                .opt("normalize", 0),
        );
    }
    stem.then(Filter::new("apad").num("whole_dur", duration))
        .then(Filter::new("atrim").num("end", duration))
}

/// Cover: fills a `w`x`h` box with a `sw`x`sh` picture, cropping its overflow evenly from both
/// sides. The crop comes first, so the scaler reads only the pixels that are kept (a 16:9 frame
/// into 9:16 keeps a third of its width).
pub fn cover(head: Chain, (sw, sh): (u32, u32), (w, h): (u32, u32)) -> Chain {
    let (cw, ch) = cover_crop((sw, sh), (w, h));
    let head = if (cw, ch) == (sw, sh) {
        head
    } else {
        // Without x and y, crop centres the window.
        head.then(Filter::new("crop").opt("w", cw).opt("h", ch))
    };
    // Bilinear rather than the default bicubic: in the recompose bench (30 s 1080p into 9:16)
    // it took the refitting compose from 1.13x to 1.06x a plain compose's ffmpeg CPU seconds.
    // Cheaper flags buy nothing more: swscale's per-line passes, not its taps, cost the ~2 ms a
    // 1080x1920 frame (nearest neighbour measured 0.97x bilinear's CPU, within the noise), and
    // they show: against a lossless bicubic reference, after the compose's encode, bilinear
    // keeps 41.6 dB PSNR, nearest neighbour 35.2, fast_bilinear 31.0 (the compose test
    // `covered_clip_matches_a_compose_of_the_clip_fitted_beforehand` holds the bar). Nor does
    // one scaler thread instead of the graph's slice threads: the same pixels, 4-7% less CPU for
    // decode and scale alone, but no change a paired run of the whole compose can see (0.99x,
    // range 0.94-1.08).
    head.then(
        Filter::new("scale")
            .opt("w", w)
            .opt("h", h)
            .opt("flags", "bilinear"),
    )
}

/// The centred window of a `sw`x`sh` picture with the box's shape: full height of a wider
/// picture, full width of a taller one; even sides, as yuv420p needs.
pub fn cover_crop((sw, sh): (u32, u32), (w, h): (u32, u32)) -> (u32, u32) {
    let even = |v: u64| ((v / 2 * 2).max(2)) as u32;
    let (sw64, sh64, w64, h64) = (sw as u64, sh as u64, w as u64, h as u64);
    if sw64 * h64 > sh64 * w64 {
        // Wider than the box: keep the height, the width rounded to the nearest even pixel.
        let cw = (sh64 * w64 + h64 / 2) / h64;
        (even(cw.min(sw64)), even(sh64))
    } else {
        let ch = (sw64 * h64 + w64 / 2) / w64;
        (even(sw64), even(ch.min(sh64)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_values_are_untouched() {
        assert_eq!(escape_value("fade"), "fade");
        assert_eq!(escape_value("1920"), "1920");
    }

    #[test]
    fn option_separators_are_escaped_for_both_levels() {
        // ':' → '\:' for the option parser, then the backslash is escaped for the graph parser.
        assert_eq!(escape_value("a:b"), r"a\\:b");
        assert_eq!(escape_value("k=v"), r"k\\=v");
        assert_eq!(escape_value(r"c:\dir"), r"c\\:\\\\dir");
        assert_eq!(escape_value("it's"), r"it\\\'s");
    }

    #[test]
    fn graph_separators_are_escaped() {
        assert_eq!(escape_value("between(t,1,2)"), r"between(t\,1\,2)");
        assert_eq!(escape_value("[x];[y]"), r"\[x\]\;\[y\]");
    }

    #[test]
    fn edge_whitespace_is_kept() {
        assert_eq!(escape_value(" a "), r"\\ a\\\ ");
    }

    #[test]
    fn graph_renders_pads_filters_and_chains() {
        let mut g = Graph::new();
        g.push(
            Chain::new([Pad::video(0)])
                .then(Filter::new("scale").opt("w", 640).opt("h", -2))
                .then(Filter::new("fps").arg(30))
                .to([Pad::new("v0")]),
        );
        g.push(
            Chain::new([Pad::new("v0"), Pad::new("v1")])
                .then(Xfade {
                    kind: TransitionKind::Fade,
                    duration: 0.5,
                    offset: 2.0,
                })
                .to([Pad::new("out")]),
        );
        assert_eq!(
            g.to_string(),
            "[0:v]scale=w=640:h=-2,fps=30[v0];[v0][v1]xfade=transition=fade:duration=0.5:offset=2[out]"
        );
    }

    #[test]
    fn pad_names_cannot_break_out() {
        assert_eq!(Pad::new("a];[b").to_string(), "[a___b]");
    }

    #[test]
    fn cover_crops_the_centred_window_of_the_box_shape() {
        // 16:9 into 9:16: full height, a third of the width, even.
        assert_eq!(cover_crop((1920, 1080), (1080, 1920)), (608, 1080));
        // Into 1:1 and 4:5.
        assert_eq!(cover_crop((1920, 1080), (1080, 1080)), (1080, 1080));
        assert_eq!(cover_crop((1920, 1080), (1080, 1350)), (864, 1080));
        // Taller than the box: full width.
        assert_eq!(cover_crop((1080, 1920), (1920, 1080)), (1080, 608));
        // The same shape is not cropped at all.
        assert_eq!(cover_crop((1280, 720), (1920, 1080)), (1280, 720));
        let c = cover(Chain::new([Pad::video(0)]), (1920, 1080), (1080, 1920));
        assert_eq!(
            c.to_string(),
            "[0:v]crop=w=608:h=1080,scale=w=1080:h=1920:flags=bilinear"
        );
    }

    #[test]
    fn numbers() {
        assert_eq!(fmt_num(0.5), "0.5");
        assert_eq!(fmt_num(2.0), "2");
        assert_eq!(fmt_num(1.0 / 3.0), "0.333333");
        assert_eq!(fmt_num(-0.0000001), "0");
    }
}
