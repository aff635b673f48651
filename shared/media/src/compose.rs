//! `FfmpegEngine`: the domain's `MediaEngine` on ffmpeg. A composition (clips, transitions,
//! captions, logo, music, thumbnail) is one ffmpeg invocation whose graph is built from the
//! timeline's numbers, so the output is exactly `timeline.total_frames` long.

use async_trait::async_trait;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use vidpipe_domain::loudness::Loudness;
use vidpipe_domain::media::{ClipSpec, CompositionJob, Motion, ProbeInfo, ToolVersions};
use vidpipe_domain::ports::{MediaEngine, MediaError};
use vidpipe_domain::{ClipFit, Corner, Timeline, TransitionKind};

use crate::captions;
use crate::filtergraph::{Chain, Filter, Graph, Pad, Xfade, blur_pad, cover, fmt_num};
use crate::loudness::MixModel;
use crate::run::{self, Progress, os};
use crate::tools::Tools;

/// Encoder settings shared by the composer and anything that must match it (the benchmark's
/// bare encode). `veryfast` at CRF 21 is visually clean for social video at a fraction of
/// `medium`'s time, which matters on Lambda's few vCPUs.
pub const X264_PRESET: &str = "veryfast";
pub const X264_CRF: u32 = 21;
pub const AUDIO_RATE: u32 = 48_000;
pub const AUDIO_BITRATE: &str = "160k";

/// The logo's margin from the frame edges, as a fraction of the short side.
const LOGO_MARGIN: f64 = 0.03;

/// ffmpeg-backed media engine.
#[derive(Debug, Clone)]
pub struct FfmpegEngine {
    tools: Tools,
}

impl FfmpegEngine {
    pub fn new(tools: Tools) -> FfmpegEngine {
        FfmpegEngine { tools }
    }

    pub fn tools(&self) -> &Tools {
        &self.tools
    }
}

#[async_trait]
impl MediaEngine for FfmpegEngine {
    async fn probe(&self, path: &Path) -> Result<ProbeInfo, MediaError> {
        crate::probe::probe(&self.tools, path).await
    }

    async fn compose(
        &self,
        job: &CompositionJob,
        progress: &(dyn Fn(f64) + Send + Sync),
    ) -> Result<(), MediaError> {
        compose(&self.tools, job, progress).await
    }

    async fn versions(&self) -> Result<ToolVersions, MediaError> {
        crate::run::versions(&self.tools).await
    }

    async fn loudness(&self, path: &Path) -> Result<Loudness, MediaError> {
        crate::loudness::measure(&self.tools, path).await
    }

    async fn animate_still(
        &self,
        image: &Path,
        spec: &ClipSpec,
        motion: Motion,
        output: &Path,
    ) -> Result<(), MediaError> {
        crate::motion::animate_still(&self.tools, image, spec, motion, output).await
    }

    async fn fit_clip(
        &self,
        input: &Path,
        spec: &ClipSpec,
        output: &Path,
    ) -> Result<(), MediaError> {
        crate::motion::fit_clip(&self.tools, input, spec, output).await
    }

    fn renders_edits(&self) -> bool {
        true
    }

    async fn render_edit(
        &self,
        job: &vidpipe_domain::edit::EditJob,
        progress: &(dyn Fn(f64) + Send + Sync),
    ) -> Result<(), MediaError> {
        crate::edit_render::render_edit(&self.tools, job, progress).await
    }

    async fn still_frame(
        &self,
        input: &Path,
        at_seconds: f64,
        size: (u32, u32),
        output: &Path,
    ) -> Result<(), MediaError> {
        let source = vidpipe_domain::media::MediaSource {
            key: "clip.mp4".into(),
            location: vidpipe_domain::media::MediaLocation::Path(input.to_owned()),
        };
        crate::process::thumbnail(&self.tools, &source, at_seconds, size, output).await
    }
}

/// The common output options for an H.264/AAC MP4 as the product publishes it.
pub fn h264_aac_output_args() -> Vec<OsString> {
    [
        "-c:v",
        "libx264",
        "-preset",
        X264_PRESET,
        "-crf",
        &X264_CRF.to_string(),
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-b:a",
        AUDIO_BITRATE,
        "-ar",
        &AUDIO_RATE.to_string(),
        "-ac",
        "2",
        "-movflags",
        "+faststart",
    ]
    .into_iter()
    .map(os)
    .collect()
}

async fn compose(
    tools: &Tools,
    job: &CompositionJob,
    progress: &(dyn Fn(f64) + Send + Sync),
) -> Result<(), MediaError> {
    let tl = &job.timeline;
    if tl.clips.is_empty() {
        return Err(MediaError::InvalidInput("the timeline has no clips".into()));
    }
    if job.narration.len() != tl.narration.len() {
        return Err(MediaError::InvalidInput(format!(
            "the timeline has {} narration cues but {} files were given",
            tl.narration.len(),
            job.narration.len()
        )));
    }
    if job.clips.len() != tl.clips.len() {
        return Err(MediaError::InvalidInput(format!(
            "the timeline has {} clips but {} files were given",
            tl.clips.len(),
            job.clips.len()
        )));
    }
    tokio::fs::create_dir_all(&job.work_dir).await?;
    for p in [&job.final_path, &job.thumbnail_path] {
        if let Some(parent) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent).await?;
        }
    }

    // Probing the clips, rasterising the captions and fitting the logo are independent: done
    // at once, they cost the longest of them before ffmpeg starts rather than their sum.
    let logo = async {
        match (&job.logo, &tl.logo) {
            (Some(path), Some(overlay)) => {
                prepare_logo(tools, path, overlay.spec.scale, tl.width, &job.work_dir)
                    .await
                    .map(Some)
            }
            _ => Ok(None),
        }
    };
    let (sources, captions, logo) = tokio::try_join!(
        probe_clips(tools, &job.clips, &job.work_dir),
        render_captions(tl, &job.work_dir),
        logo
    )?;
    let levels = AudioLevels::of(job);
    let narration: Vec<&Path> = job.narration.iter().map(|n| n.path.as_path()).collect();
    let plan = ComposePlan {
        timeline: tl,
        sources: &sources,
        logo: logo.as_ref(),
        music: job.music.as_ref().map(|m| m.path.as_path()),
        narration: &narration,
        captions: &captions,
        levels: &levels,
    };
    let args = plan.args(&job.final_path, &job.thumbnail_path);
    let report = Progress {
        total_seconds: tl.duration_seconds,
        report: progress,
    };
    // A stale thumbnail from an earlier attempt must not pass for this run's.
    let _ = tokio::fs::remove_file(&job.thumbnail_path).await;
    run::ffmpeg(tools, args, Some(report)).await?;
    if !is_nonempty(&job.thumbnail_path).await {
        tracing::warn!("thumbnail missing after compose; taking it from the final file");
        thumbnail_from(tools, &job.final_path, tl, &job.thumbnail_path).await?;
    }
    progress(1.0);
    Ok(())
}

/// Each clip's display size (after rotation), every clip probed at once.
/// A still clip (a PNG or JPEG standing in for a scene) is decoded first, see [`still_clip`].
async fn probe_clips(
    tools: &Tools,
    clips: &[PathBuf],
    work_dir: &Path,
) -> Result<Vec<ClipSource>, MediaError> {
    let mut clips = clips.to_vec();
    for (i, path) in clips.iter_mut().enumerate() {
        if let Some(pam) = still_clip(path, &work_dir.join(format!("still_{i:03}.pam"))).await? {
            *path = pam;
        }
    }
    let clips = &clips;
    let mut probes = tokio::task::JoinSet::new();
    for (i, path) in clips.iter().enumerate() {
        let (tools, path) = (tools.clone(), path.clone());
        probes.spawn(async move { (i, crate::probe::probe(&tools, &path).await) });
    }
    let mut sources: Vec<Option<ClipSource>> = clips.iter().map(|_| None).collect();
    while let Some(done) = probes.join_next().await {
        let (i, info) = done.map_err(|e| MediaError::Io(std::io::Error::other(e)))?;
        let path = &clips[i];
        let info = info?;
        let v = info.video().ok_or_else(|| {
            MediaError::InvalidInput(format!("{} has no video stream", path.display()))
        })?;
        let (w, h) = (v.width.unwrap_or(0), v.height.unwrap_or(0));
        if w == 0 || h == 0 {
            return Err(MediaError::InvalidInput(format!(
                "{} has no frame size",
                path.display()
            )));
        }
        // ffmpeg autorotates on decode, so a quarter-turned clip arrives with its sides swapped.
        let quarter = v.rotation.rem_euclid(180) == 90;
        sources[i] = Some(ClipSource {
            path: path.clone(),
            width: if quarter { h } else { w },
            height: if quarter { w } else { h },
        });
    }
    Ok(sources.into_iter().flatten().collect())
}

/// A clip named `.png`, `.jpg` or `.jpeg` (an image asset replacing a scene) decoded, upright,
/// into a PAM at `dest`: the layer's ffmpeg has no PNG decoder, and every build reads PAM. The
/// one frame is then held for the clip's length by the same pad that holds a short clip's last.
async fn still_clip(path: &Path, dest: &Path) -> Result<Option<PathBuf>, MediaError> {
    let still = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| ["png", "jpg", "jpeg"].contains(&e.to_ascii_lowercase().as_str()));
    if !still {
        return Ok(None);
    }
    let (src, dest) = (path.to_owned(), dest.to_owned());
    tokio::task::spawn_blocking(move || {
        let bad = |e: image::ImageError| {
            MediaError::InvalidInput(format!("{} does not decode: {e}", src.display()))
        };
        let reader = image::ImageReader::open(&src)
            .and_then(|r| r.with_guessed_format())
            .map_err(MediaError::Io)?;
        let mut decoder = reader.into_decoder().map_err(bad)?;
        let orientation = image::ImageDecoder::orientation(&mut decoder).map_err(bad)?;
        let mut img = image::DynamicImage::from_decoder(decoder).map_err(bad)?;
        img.apply_orientation(orientation);
        crate::captions::write_pam(&img.to_rgba8(), &dest)?;
        Ok(Some(dest))
    })
    .await
    .map_err(|e| MediaError::Io(std::io::Error::other(e)))?
}

/// The loudness of the audio inputs as the compose plays them, from the figures measured when
/// each was made or first seen: the compose levels them with plain gains.
#[derive(Debug, Clone, Default, PartialEq)]
struct AudioLevels {
    /// The music bed as played (looped or cut to the video's length); `None` when silent or absent.
    music_lufs: Option<f64>,
    /// Each narration file, in the timeline's order.
    speech_lufs: Vec<Option<f64>>,
}

impl AudioLevels {
    fn of(job: &CompositionJob) -> AudioLevels {
        let tl = &job.timeline;
        AudioLevels {
            music_lufs: job
                .music
                .as_ref()
                .filter(|_| tl.music.is_some())
                .and_then(|m| m.loudness.played_for(tl.duration_seconds)),
            speech_lufs: job
                .narration
                .iter()
                .map(|n| n.loudness.integrated_lufs)
                .collect(),
        }
    }
}

/// The gain that brings a measured level to `target`; none for silence, and never more than
/// a sane amount either way (a near-silent file is not to be boosted into noise).
fn gain_db(measured: Option<f64>, target: f64) -> f64 {
    measured.map_or(0.0, |m| (target - m).clamp(-40.0, 40.0))
}

/// Takes the thumbnail by seeking into a rendered video: the fallback when the composing run
/// did not write it.
pub async fn thumbnail_from(
    tools: &Tools,
    video: &Path,
    tl: &Timeline,
    dest: &Path,
) -> Result<(), MediaError> {
    let source = vidpipe_domain::media::MediaSource {
        key: "final.mp4".into(),
        location: vidpipe_domain::media::MediaLocation::Path(video.to_owned()),
    };
    crate::process::thumbnail(
        tools,
        &source,
        tl.thumbnail_seconds,
        tl.thumbnail_size(),
        dest,
    )
    .await
}

async fn is_nonempty(p: &Path) -> bool {
    tokio::fs::metadata(p)
        .await
        .map(|m| m.len() > 0)
        .unwrap_or(false)
}

/// The caption images of a composition, packed into sheets: a karaoke caption is an image per
/// word, and as separate inputs each cost ffmpeg a demuxer, a decoder and two threads, and the
/// run a start-up probe (about 0.2 s for twenty words). A sheet is one input; each image is
/// cropped back out of it in the graph, which moves no pixels.
struct Captions {
    sheets: Vec<PathBuf>,
    overlays: Vec<CaptionOverlay>,
}

/// A sheet grows downwards to at most this many rows (far under ffmpeg's image size limits).
const SHEET_MAX_HEIGHT: u32 = 8192;

/// One caption image: where it is in its sheet (its left edge at 0), where it goes on the
/// frame, and when it shows.
struct CaptionOverlay {
    sheet: usize,
    top: u32,
    width: u32,
    height: u32,
    x: u32,
    y: u32,
    start: f64,
    end: f64,
}

async fn render_captions(tl: &Timeline, work_dir: &Path) -> Result<Captions, MediaError> {
    let cues = tl.captions.clone();
    let (w, h) = (tl.width, tl.height);
    let opts = tl.caption_style;
    let dir = work_dir.to_owned();
    // Rasterising is CPU work measured in milliseconds per caption; keep it off the reactor anyway.
    tokio::task::spawn_blocking(move || {
        let mut shown = Vec::new();
        for cue in &cues {
            for frame in caption_frames(cue, &opts, w, h) {
                let text = &cue.text[frame.text.clone()];
                if let Some(image) = captions::render_caption(text, &opts, frame.highlight, w, h) {
                    shown.push((image, frame.start, frame.end));
                }
            }
        }
        let heights: Vec<u32> = shown.iter().map(|(image, ..)| image.height()).collect();
        let sheets = pack_sheets(&heights, SHEET_MAX_HEIGHT);
        let mut overlays = Vec::with_capacity(shown.len());
        let mut paths = Vec::with_capacity(sheets.len());
        for (s, members) in sheets.iter().enumerate() {
            let width = members
                .iter()
                .map(|&k| shown[k].0.width())
                .max()
                .unwrap_or(1);
            let height = members.iter().map(|&k| shown[k].0.height()).sum();
            let mut sheet = image::RgbaImage::new(width, height);
            let mut top = 0;
            for &k in members {
                let (image, start, end) = &shown[k];
                image::imageops::replace(&mut sheet, image, 0, i64::from(top));
                let (x, y) = captions::caption_position(&opts, image.width(), image.height(), w, h);
                overlays.push(CaptionOverlay {
                    sheet: s,
                    top,
                    width: image.width(),
                    height: image.height(),
                    x,
                    y,
                    start: *start,
                    end: *end,
                });
                top += image.height();
            }
            let path = dir.join(format!("captions_{s:02}.pam"));
            captions::write_pam(&sheet, &path)?;
            paths.push(path);
        }
        Ok(Captions {
            sheets: paths,
            overlays,
        })
    })
    .await
    .map_err(|e| MediaError::Io(std::io::Error::other(e)))?
}

/// Images (by height, in order) onto sheets at most `max` tall: a new sheet whenever the next
/// image would make this one taller (an image taller than `max` alone on its own).
fn pack_sheets(heights: &[u32], max: u32) -> Vec<Vec<usize>> {
    let mut sheets: Vec<Vec<usize>> = Vec::new();
    let mut height = 0;
    for (k, &h) in heights.iter().enumerate() {
        match sheets.last_mut() {
            Some(sheet) if height + h <= max => sheet.push(k),
            _ => {
                sheets.push(vec![k]);
                height = 0;
            }
        }
        height += h;
    }
    sheets
}

/// One caption image to show: which part of the cue's text, which word of it highlighted
/// (byte range within that part), and when.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptionFrame {
    pub text: std::ops::Range<usize>,
    pub highlight: Option<std::ops::Range<usize>>,
    pub start: f64,
    pub end: f64,
}

/// The images a cue shows. A scene caption is one image for its window. A narrated cue is paged
/// so each page fits two lines: a page shows from its first word (the first page from the window's
/// start) until the next page's first word. In karaoke each page is one image per word, the
/// word highlighted from when it is said until the next one is.
pub fn caption_frames(
    cue: &vidpipe_domain::timeline::CaptionCue,
    opts: &captions::CaptionOptions,
    frame_width: u32,
    frame_height: u32,
) -> Vec<CaptionFrame> {
    if cue.words.is_empty() {
        return vec![CaptionFrame {
            text: 0..cue.text.len(),
            highlight: None,
            start: cue.start_seconds,
            end: cue.end_seconds,
        }];
    }
    let ranges: Vec<(usize, usize)> = cue.words.iter().map(|w| (w.start, w.end)).collect();
    let pages = captions::paginate(&cue.text, &ranges, opts, frame_width, frame_height);
    let karaoke = opts.style == captions::CaptionStyle::Karaoke;
    let first_word_at = |page: &std::ops::Range<usize>| {
        cue.words
            .iter()
            .find(|w| w.start >= page.start)
            .map_or(cue.end_seconds, |w| w.start_seconds)
    };
    let mut frames = Vec::new();
    for (p, page) in pages.iter().enumerate() {
        let start = if p == 0 {
            cue.start_seconds
        } else {
            first_word_at(page)
        };
        let end = pages.get(p + 1).map_or(cue.end_seconds, first_word_at);
        if end <= start {
            continue;
        }
        if !karaoke {
            frames.push(CaptionFrame {
                text: page.clone(),
                highlight: None,
                start,
                end,
            });
            continue;
        }
        let words: Vec<&vidpipe_domain::timeline::CueWord> = cue
            .words
            .iter()
            .filter(|w| w.start >= page.start && w.end <= page.end)
            .collect();
        for (j, word) in words.iter().enumerate() {
            let from = if j == 0 {
                start
            } else {
                word.start_seconds.max(start)
            };
            let to = words.get(j + 1).map_or(end, |n| n.start_seconds.min(end));
            if to > from {
                frames.push(CaptionFrame {
                    text: page.clone(),
                    highlight: Some(word.start - page.start..word.end - page.start),
                    start: from,
                    end: to,
                });
            }
        }
    }
    frames
}

struct ClipSource {
    path: PathBuf,
    /// Display size (after rotation).
    width: u32,
    height: u32,
}

/// Everything the graph depends on, so argument building is a pure function (and testable).
struct ComposePlan<'a> {
    timeline: &'a Timeline,
    sources: &'a [ClipSource],
    logo: Option<&'a LogoInput>,
    music: Option<&'a Path>,
    narration: &'a [&'a Path],
    captions: &'a Captions,
    levels: &'a AudioLevels,
}

impl ComposePlan<'_> {
    fn args(&self, final_path: &Path, thumbnail_path: &Path) -> Vec<OsString> {
        let tl = self.timeline;
        let mut args: Vec<OsString> = Vec::new();
        let mut next_input = 0usize;
        let mut input = |args: &mut Vec<OsString>, pre: &[OsString], path: OsString| {
            args.extend(pre.iter().cloned());
            args.push(os("-i"));
            args.push(path);
            next_input += 1;
            next_input - 1
        };

        // Decoded with ffmpeg's default frame threads: one thread a clip saves about 0.3 s of
        // CPU (fewer frame pools to fault in) but lost wall time in every paired run on a
        // shared machine, where a decoder's threads take their share of the cores.
        let clip_inputs: Vec<usize> = self
            .sources
            .iter()
            .map(|s| input(&mut args, &[], os(&s.path)))
            .collect();
        let logo_input = self.logo.map(|l| input(&mut args, &[], os(&l.path)));
        let duration = tl.duration_seconds;
        let audio_input = match self.music {
            Some(p) => input(&mut args, &[os("-stream_loop"), os("-1")], os(p)),
            None => {
                let silence = Filter::new("anullsrc")
                    .opt("channel_layout", "stereo")
                    .opt("sample_rate", AUDIO_RATE);
                input(&mut args, &[os("-f"), os("lavfi")], os(silence.to_string()))
            }
        };
        let narration_inputs: Vec<usize> = self
            .narration
            .iter()
            .map(|p| input(&mut args, &[], os(p)))
            .collect();
        let sheet_inputs: Vec<usize> = self
            .captions
            .sheets
            .iter()
            .map(|p| input(&mut args, &[], os(p)))
            .collect();

        let mut g = Graph::new();
        let clip_pads: Vec<Pad> = clip_inputs
            .iter()
            .zip(self.sources)
            .zip(&tl.clips)
            .enumerate()
            .map(|(i, ((&input, src), clip))| normalise_clip(&mut g, tl, i, input, src, clip))
            .collect();

        let mut video = join_clips(&mut g, tl, clip_pads);

        let overlays = &self.captions.overlays;
        // Each sheet split once per image on it, each copy cropped to its image.
        for (s, &input) in sheet_inputs.iter().enumerate() {
            let on_sheet: Vec<usize> = (0..overlays.len())
                .filter(|&k| overlays[k].sheet == s)
                .collect();
            let copies: Vec<Pad> = on_sheet
                .iter()
                .map(|k| Pad::new(format!("sheet{k}")))
                .collect();
            let split = Chain::new([Pad::video(input)]);
            g.push(
                match copies.len() {
                    1 => split.then(Filter::new("null")),
                    n => split.then(Filter::new("split").arg(n)),
                }
                .to(copies.clone()),
            );
            for (&k, copy) in on_sheet.iter().zip(copies) {
                let cap = &overlays[k];
                g.push(
                    Chain::new([copy])
                        .then(
                            Filter::new("crop")
                                .opt("w", cap.width)
                                .opt("h", cap.height)
                                .opt("x", 0)
                                .opt("y", cap.top),
                        )
                        .to([Pad::new(format!("capimg{k}"))]),
                );
            }
        }
        for (k, cap) in overlays.iter().enumerate() {
            // Half-open window: at a handover frame exactly one caption shows.
            let enable = format!("gte(t,{})*lt(t,{})", fmt_num(cap.start), fmt_num(cap.end));
            let out = Pad::new(format!("cap{k}"));
            g.push(
                Chain::new([video, Pad::new(format!("capimg{k}"))])
                    .then(
                        Filter::new("overlay")
                            .opt("x", cap.x)
                            .opt("y", cap.y)
                            .opt("enable", enable),
                    )
                    .to([out.clone()]),
            );
            video = out;
        }

        if let (Some(input), Some(logo), Some(overlay)) = (logo_input, self.logo, tl.logo.as_ref())
        {
            let spec = &overlay.spec;
            let mut chain = Chain::new([Pad::video(input)]);
            if !logo.prescaled {
                chain = chain.then(
                    Filter::new("scale")
                        .opt("w", logo.width)
                        .opt("h", logo.height),
                );
            }
            chain = chain.then(Filter::new("format").arg("rgba"));
            if spec.opacity < 1.0 {
                chain = chain
                    .then(Filter::new("colorchannelmixer").num("aa", spec.opacity.clamp(0.0, 1.0)));
            }
            g.push(chain.to([Pad::new("logo")]));
            let (x, y) = logo_position(spec.position, tl.width, tl.height, logo.width, logo.height);
            g.push(
                Chain::new([video, Pad::new("logo")])
                    .then(Filter::new("overlay").opt("x", x).opt("y", y))
                    .to([Pad::new("branded")]),
            );
            video = Pad::new("branded");
        }

        let (vout, thumb) = (Pad::new("vout"), Pad::new("thumb"));
        let thumb_src = Pad::new("thumbsrc");
        g.push(
            Chain::new([video])
                .then(yuv420p())
                .then(Filter::new("split").arg(2))
                .to([vout.clone(), thumb_src.clone()]),
        );
        let (tw, th) = tl.thumbnail_size();
        let frame = ((tl.thumbnail_seconds * tl.fps as f64).round() as u32)
            .min(tl.total_frames.saturating_sub(1));
        g.push(
            Chain::new([thumb_src])
                // Select before scaling, so only the one chosen frame is scaled.
                .then(Filter::new("select").arg(format!("eq(n,{frame})")))
                .then(Filter::new("scale").opt("w", tw).opt("h", th))
                .then(Filter::new("setsar").arg(1))
                .to([thumb.clone()]),
        );

        // The audio is a graph of its own: ffmpeg runs each graph on its own thread, so the
        // mix no longer waits its turn behind the video filters.
        let mut ga = Graph::new();
        let aout = Pad::new("aout");
        let mut audio = Chain::new([Pad::audio(audio_input)]);
        if let (Some(_), Some(bed)) = (self.music, tl.music.as_ref()) {
            let spec = &bed.spec;
            audio = audio
                .then(Filter::new("atrim").num("end", duration))
                .then(Filter::new("asetpts").arg("PTS-STARTPTS"))
                // Measured beforehand, levelled by a plain gain: the bed at MUSIC_LUFS, then
                // the user's volume.
                .then(volume_db(gain_db(self.levels.music_lufs, MUSIC_LUFS)))
                .then(Filter::new("volume").num("volume", spec.volume.clamp(0.0, 1.0)));
            let fade_in = spec.fade_in_seconds.clamp(0.0, duration);
            if fade_in > 0.0 {
                audio = audio.then(
                    Filter::new("afade")
                        .opt("t", "in")
                        .num("st", 0.0)
                        .num("d", fade_in),
                );
            }
            let fade_out = spec.fade_out_seconds.clamp(0.0, duration);
            if fade_out > 0.0 {
                audio = audio.then(
                    Filter::new("afade")
                        .opt("t", "out")
                        .num("st", duration - fade_out)
                        .num("d", fade_out),
                );
            }
        }
        if !narration_inputs.is_empty() {
            audio = self.mix_narration(&mut ga, audio, &narration_inputs);
        }
        if self.music.is_some() || !narration_inputs.is_empty() {
            audio = audio.then(limiter());
        }
        // Pad then trim: whatever the source, the track is exactly the video's length.
        audio = audio
            .then(
                Filter::new("aformat")
                    .opt("sample_fmts", "fltp")
                    .opt("sample_rates", AUDIO_RATE)
                    .opt("channel_layouts", "stereo"),
            )
            .then(Filter::new("apad").num("whole_dur", duration))
            .then(Filter::new("atrim").num("end", duration));
        ga.push(audio.to([aout.clone()]));

        args.extend([
            os("-filter_complex"),
            os(g.to_string()),
            os("-filter_complex"),
            os(ga.to_string()),
        ]);
        args.extend([
            os("-map"),
            os(vout.map_arg()),
            os("-map"),
            os(aout.map_arg()),
        ]);
        args.extend(h264_aac_output_args());
        args.extend([
            os("-frames:v"),
            os(tl.total_frames.to_string()),
            os(final_path),
        ]);
        args.extend([
            os("-map"),
            os(thumb.map_arg()),
            os("-frames:v"),
            os("1"),
            os("-update"),
            os("1"),
            os("-q:v"),
            os("3"),
            os(thumbnail_path),
        ]);
        args
    }
}

impl ComposePlan<'_> {
    /// The voice-over: each scene's speech at its tempo and place, levelled to the speech
    /// target; music (when there is any) ducked under it by a sidechain compressor keyed on the
    /// voice; the mix levelled to the delivery target with its true peak limited. Returns the
    /// chain that continues to the output format.
    fn mix_narration(&self, g: &mut Graph, bed: Chain, inputs: &[usize]) -> Chain {
        let tl = self.timeline;
        let duration = tl.duration_seconds;
        let mut voices = Vec::with_capacity(inputs.len());
        for (k, (&input, cue)) in inputs.iter().zip(&tl.narration).enumerate() {
            let mut chain = Chain::new([Pad::audio(input)]);
            if (cue.tempo - 1.0).abs() > 1e-6 {
                chain = chain.then(Filter::new("atempo").num("tempo", cue.tempo));
            }
            let pad = Pad::new(format!("voice{k}"));
            let level = self.levels.speech_lufs.get(k).copied().flatten();
            g.push(
                chain
                    .then(delivery_format())
                    .then(volume_db(gain_db(level, SPEECH_LUFS)))
                    .then(
                        Filter::new("adelay")
                            .opt("delays", (cue.start_seconds * 1000.0).round() as u64)
                            .opt("all", 1),
                    )
                    .to([pad.clone()]),
            );
            voices.push(pad);
        }
        let voice = Pad::new("voice");
        g.push(crate::filtergraph::voice_stem(voices, duration).to([voice.clone()]));

        let mixed = Pad::new("mixed");
        if self.music.is_some() && tl.music.is_some() {
            let (bed_pad, key, over) =
                (Pad::new("bed"), Pad::new("voicekey"), Pad::new("voiceover"));
            g.push(bed.then(delivery_format()).to([bed_pad.clone()]));
            g.push(
                Chain::new([voice])
                    .then(Filter::new("asplit").arg(2))
                    .to([key.clone(), over.clone()]),
            );
            let ducked = Pad::new("ducked");
            g.push(
                Chain::new([bed_pad, key])
                    // Keyed on the voice: a fast attack so the first syllable is clear, a slow
                    // release so the music does not pump between words.
                    .then(
                        Filter::new("sidechaincompress")
                            .num("threshold", 0.003)
                            .num("ratio", 20.0)
                            .num("attack", 15.0)
                            .num("release", 450.0)
                            .num("knee", 4.0),
                    )
                    .to([ducked.clone()]),
            );
            g.push(
                Chain::new([ducked, over])
                    .then(
                        Filter::new("amix")
                            .opt("inputs", 2)
                            .opt("duration", "first")
                            .opt("normalize", 0),
                    )
                    .to([mixed.clone()]),
            );
        } else {
            g.push(
                Chain::new([voice])
                    .then(Filter::new("anull"))
                    .to([mixed.clone()]),
            );
        }
        Chain::new([mixed]).then(volume_db(gain_db(self.predicted_mix_lufs(), MIX_LUFS)))
    }

    /// The mix's integrated loudness before its final gain, predicted from the levels the
    /// parts were given: every spoken clip at SPEECH_LUFS, the bed at MUSIC_LUFS times its
    /// volume where no one speaks.
    fn predicted_mix_lufs(&self) -> Option<f64> {
        let tl = self.timeline;
        let speech = tl
            .narration
            .iter()
            .zip(&self.levels.speech_lufs)
            .filter(|(_, level)| level.is_some())
            .map(|(cue, _)| (cue.start_seconds, cue.duration_seconds))
            .collect();
        let bed = tl.music.as_ref().filter(|_| self.music.is_some());
        let music_lufs = bed
            .filter(|b| b.spec.volume > 0.0 && self.levels.music_lufs.is_some())
            .map(|b| MUSIC_LUFS + 20.0 * b.spec.volume.clamp(0.0, 1.0).log10());
        MixModel {
            duration_seconds: tl.duration_seconds,
            speech,
            speech_lufs: SPEECH_LUFS,
            music_lufs,
            music_fade_in_seconds: bed.map_or(0.0, |b| b.spec.fade_in_seconds),
            music_fade_out_seconds: bed.map_or(0.0, |b| b.spec.fade_out_seconds),
        }
        .predicted_lufs()
    }
}

/// A gain in dB.
fn volume_db(db: f64) -> Filter {
    Filter::new("volume").opt("volume", format!("{}dB", fmt_num(db)))
}

/// The true-peak ceiling: a look-ahead limiter on samples, set 1 dB under MIX_TRUE_PEAK for the
/// peaks between samples and the AAC encoder's overshoot. `level=0`: no make-up gain;
/// `latency=1`: the look-ahead delay is compensated, so speech stays where the timeline puts it.
fn limiter() -> Filter {
    Filter::new("alimiter")
        .num("limit", 10f64.powf((MIX_TRUE_PEAK - 1.0) / 20.0))
        .num("attack", 5.0)
        .num("release", 50.0)
        .opt("level", 0)
        .opt("latency", 1)
}

/// Loudness targets: speech levelled on its own, then the whole mix for delivery (the platforms
/// play at about -14 LUFS), with headroom under -1 dBTP for lossy encoders.
pub const SPEECH_LUFS: f64 = -16.0;
/// The music bed's level before the user's volume (and under speech, the ducking).
pub const MUSIC_LUFS: f64 = -16.0;
pub const MIX_LUFS: f64 = -14.0;
pub const MIX_TRUE_PEAK: f64 = -1.5;

fn delivery_format() -> Filter {
    Filter::new("aformat")
        .opt("sample_fmts", "fltp")
        .opt("sample_rates", AUDIO_RATE)
        .opt("channel_layouts", "stereo")
}

/// One clip at the timeline's size, rate and timebase, exactly `frames` long. A clip that
/// already matches is not scaled at all: scaling 1080p frames is most of a compose's filter cost.
/// A clip of another shape is fitted as the timeline says, here in the one pass (a recompose to
/// another aspect decodes each stored clip once, with no fitting run before it).
fn normalise_clip(
    g: &mut Graph,
    tl: &Timeline,
    i: usize,
    input: usize,
    src: &ClipSource,
    clip: &vidpipe_domain::TimelineClip,
) -> Pad {
    let frames = clip.frames;
    let (w, h) = (tl.width, tl.height);
    // `fps` gives every clip the same 1/fps timebase, which xfade requires; the early trim
    // keeps the scalers from touching frames that would be thrown away.
    let head = Chain::new([Pad::video(input)])
        .then(Filter::new("setpts").arg("PTS-STARTPTS"))
        .then(Filter::new("fps").arg(tl.fps))
        .then(Filter::new("trim").opt("end_frame", frames));
    let tail = |c: Chain| {
        c.then(Filter::new("setsar").arg(1))
            // A short clip holds its last frame; every clip ends on exactly its planned frame.
            .then(
                Filter::new("tpad")
                    .opt("stop_mode", "clone")
                    .opt("stop", frames),
            )
            .then(Filter::new("trim").opt("end_frame", frames))
            .then(Filter::new("setpts").arg("PTS-STARTPTS"))
            .then(yuv420p())
    };
    let out = Pad::new(format!("v{i}"));
    let same_aspect = (src.width as u64 * h as u64).abs_diff(src.height as u64 * w as u64) * 100
        <= (w as u64 * src.height as u64);
    if src.width == w && src.height == h {
        g.push(tail(head).to([out.clone()]));
    } else if same_aspect {
        g.push(tail(head.then(Filter::new("scale").opt("w", w).opt("h", h))).to([out.clone()]));
    } else if clip.fit == ClipFit::Cover {
        g.push(tail(cover(head, (src.width, src.height), (w, h))).to([out.clone()]));
    } else {
        let s = (w as f64 / src.width as f64).min(h as f64 / src.height as f64);
        let fw = even(((src.width as f64 * s).round() as u32).min(w));
        let fh = even(((src.height as f64 * s).round() as u32).min(h));
        let padded = blur_pad(g, head, &i.to_string(), (w, h), (fw, fh));
        g.push(tail(padded).to([out.clone()]));
    }
    out
}

/// Joins the normalised clips: a concat for cuts; for transitions, each clip's parts outside
/// any transition are concatenated with short xfades made only of the overlapping frames.
///
/// Cross-fading just the overlaps is what keeps compose near the cost of a bare encode: a chain
/// of whole-stream xfades sends every frame of the video through every xfade, and ffmpeg 8's
/// format negotiation then tends to pick yuv444p for those links, converting every 1080p frame
/// twice. The chained form is kept for the rare timeline whose clip is shorter than its two
/// transitions together (long transitions on short scenes), where the overlaps themselves overlap.
fn join_clips(g: &mut Graph, tl: &Timeline, pads: Vec<Pad>) -> Pad {
    if pads.len() == 1 {
        return pads.into_iter().next().expect("one pad");
    }
    let out = Pad::new("joined");
    let n = pads.len();
    if tl.transition.kind == TransitionKind::Cut || tl.overlap_frames == 0 {
        g.push(
            Chain::new(pads)
                .then(Filter::new("concat").opt("n", n).opt("v", 1).opt("a", 0))
                .to([out.clone()]),
        );
        return out;
    }
    let overlap = tl.overlap_frames;
    let duration = tl.transition_seconds();
    let bodies_fit = tl.clips.iter().enumerate().all(|(i, c)| {
        let shared = overlap * (u32::from(i > 0) + u32::from(i + 1 < n));
        c.frames > shared
    });
    if !bodies_fit {
        let mut iter = pads.into_iter();
        let mut acc = iter.next().expect("at least two pads");
        for (k, (pad, offset)) in iter.zip(tl.xfade_offsets()).enumerate() {
            let next = Pad::new(format!("x{k}"));
            let xfade = Xfade {
                kind: tl.transition.kind,
                duration,
                offset,
            };
            g.push(
                Chain::new([acc, pad])
                    .then(xfade)
                    .then(yuv420p())
                    .to([next.clone()]),
            );
            acc = next;
        }
        return acc;
    }

    let segment = |g: &mut Graph, src: Pad, name: String, start: u32, end: u32| {
        let pad = Pad::new(name);
        g.push(
            Chain::new([src])
                .then(
                    Filter::new("trim")
                        .opt("start_frame", start)
                        .opt("end_frame", end),
                )
                .then(Filter::new("setpts").arg("PTS-STARTPTS"))
                .then(yuv420p())
                .to([pad.clone()]),
        );
        pad
    };
    let mut sequence = Vec::with_capacity(2 * n - 1);
    let mut pending_tail: Option<Pad> = None;
    for (i, (pad, clip)) in pads.into_iter().zip(&tl.clips).enumerate() {
        let (has_head, has_tail) = (i > 0, i + 1 < n);
        let parts: Vec<Pad> = [("head", has_head), ("body", true), ("tail", has_tail)]
            .into_iter()
            .filter(|(_, on)| *on)
            .map(|(part, _)| Pad::new(format!("{part}src{i}")))
            .collect();
        g.push(
            Chain::new([pad])
                .then(Filter::new("split").arg(parts.len()))
                .to(parts.clone()),
        );
        let mut parts = parts.into_iter();
        let body_start = if has_head { overlap } else { 0 };
        let body_end = if has_tail {
            clip.frames - overlap
        } else {
            clip.frames
        };
        if has_head {
            let head = segment(
                g,
                parts.next().expect("head"),
                format!("head{i}"),
                0,
                overlap,
            );
            let tail = pending_tail.take().expect("previous clip has a tail");
            let mixed = Pad::new(format!("mix{i}"));
            let blended = if tl.transition.kind == TransitionKind::Fade {
                cross_fade(g, tail, head, i, duration)
            } else {
                Chain::new([tail, head]).then(Xfade {
                    kind: tl.transition.kind,
                    duration,
                    offset: 0.0,
                })
            };
            // Exactly `overlap` frames whatever the blend's rounding: the total must stay exact.
            g.push(
                blended
                    .then(Filter::new("trim").opt("end_frame", overlap))
                    .then(yuv420p())
                    .to([mixed.clone()]),
            );
            sequence.push(mixed);
        }
        sequence.push(segment(
            g,
            parts.next().expect("body"),
            format!("body{i}"),
            body_start,
            body_end,
        ));
        if has_tail {
            pending_tail = Some(segment(
                g,
                parts.next().expect("tail"),
                format!("tail{i}"),
                clip.frames - overlap,
                clip.frames,
            ));
        }
    }
    let count = sequence.len();
    g.push(
        Chain::new(sequence)
            .then(
                Filter::new("concat")
                    .opt("n", count)
                    .opt("v", 1)
                    .opt("a", 0),
            )
            .then(yuv420p())
            .to([out.clone()]),
    );
    out
}

/// A fade from `from` to `to` (both starting at 0, as long as the transition): the incoming
/// clip's alpha ramps 0→1 over `duration` and it is overlaid on the outgoing one, which is
/// xfade's `fade` pixel for pixel (frame k weighs k/n of the incoming clip). xfade accepts no
/// subsampled format, so it costs two yuv420p↔yuv444p conversions and a float mix per 1080p
/// frame (about 8 ms); overlay blends yuv420p with its SIMD rows in about a third of that.
fn cross_fade(g: &mut Graph, from: Pad, to: Pad, i: usize, duration: f64) -> Chain {
    let faded = Pad::new(format!("fadein{i}"));
    g.push(
        Chain::new([to])
            .then(Filter::new("format").arg("yuva420p"))
            .then(
                Filter::new("fade")
                    .opt("t", "in")
                    .num("st", 0.0)
                    .num("d", duration)
                    .opt("alpha", 1),
            )
            .to([faded.clone()]),
    );
    Chain::new([from, faded]).then(Filter::new("overlay").opt("format", "yuv420"))
}

/// Pins a link to yuv420p so negotiation cannot route 1080p frames through another format.
fn yuv420p() -> Filter {
    Filter::new("format").arg("yuv420p")
}

/// The logo as ffmpeg will read it, and its size on the frame.
struct LogoInput {
    path: PathBuf,
    width: u32,
    height: u32,
    /// Already at `width`×`height` (decoded and resized in Rust).
    prescaled: bool,
}

/// Brings the logo to `scale` × frame width (even sides, aspect kept). PNG and JPEG are decoded
/// and resized here, because the layer's ffmpeg cannot decode PNG (no zlib); other formats ffmpeg
/// reads (WebP, GIF, TIFF, BMP) are scaled in the graph instead.
async fn prepare_logo(
    tools: &Tools,
    path: &Path,
    scale: f64,
    frame_width: u32,
    work_dir: &Path,
) -> Result<LogoInput, MediaError> {
    let width = even((scale * frame_width as f64).round() as u32);
    let height_for =
        move |w: u32, h: u32| even((width as f64 * h as f64 / w.max(1) as f64).round() as u32);
    let src = path.to_owned();
    let dest = work_dir.join("logo.pam");
    let decoded = tokio::task::spawn_blocking(move || -> Result<Option<LogoInput>, MediaError> {
        // Sniff the content, not the name: a logo stored without its extension is still a PNG.
        let reader = image::ImageReader::open(&src)
            .and_then(|r| r.with_guessed_format())
            .map_err(MediaError::Io)?;
        let img = match reader.decode() {
            Ok(img) => img,
            Err(image::ImageError::IoError(e)) => return Err(MediaError::Io(e)),
            Err(_) => return Ok(None),
        };
        let height = height_for(img.width(), img.height());
        let resized = image::imageops::resize(
            &img.to_rgba8(),
            width,
            height,
            image::imageops::FilterType::Lanczos3,
        );
        crate::captions::write_pam(&resized, &dest)?;
        Ok(Some(LogoInput {
            path: dest,
            width,
            height,
            prescaled: true,
        }))
    })
    .await
    .map_err(|e| MediaError::Io(std::io::Error::other(e)))??;
    if let Some(logo) = decoded {
        return Ok(logo);
    }
    let info = crate::probe::probe(tools, path).await.map_err(|e| {
        MediaError::InvalidInput(format!(
            "logo {} is not a readable image: {e}",
            path.display()
        ))
    })?;
    let v = info
        .video()
        .ok_or_else(|| MediaError::InvalidInput(format!("logo {} has no image", path.display())))?;
    Ok(LogoInput {
        path: path.to_owned(),
        width,
        height: height_for(v.width.unwrap_or(1), v.height.unwrap_or(1)),
        prescaled: false,
    })
}

/// Top-left corner of a `w`×`h` logo in a corner, inset by 3% of the short side.
fn logo_position(corner: Corner, frame_w: u32, frame_h: u32, w: u32, h: u32) -> (u32, u32) {
    let m = (LOGO_MARGIN * frame_w.min(frame_h) as f64).round() as u32;
    let right = frame_w.saturating_sub(w + m);
    let bottom = frame_h.saturating_sub(h + m);
    match corner {
        Corner::TopLeft => (m, m),
        Corner::TopRight => (right, m),
        Corner::BottomLeft => (m, bottom),
        Corner::BottomRight => (right, bottom),
    }
}

fn even(v: u32) -> u32 {
    (v & !1).max(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caption_images_are_packed_in_order_onto_sheets_no_taller_than_the_limit() {
        assert_eq!(pack_sheets(&[], 100), Vec::<Vec<usize>>::new());
        assert_eq!(pack_sheets(&[40, 40, 20], 100), vec![vec![0, 1, 2]]);
        assert_eq!(
            pack_sheets(&[40, 40, 30, 60, 50], 100),
            vec![vec![0, 1], vec![2, 3], vec![4]]
        );
        assert_eq!(pack_sheets(&[150, 10], 100), vec![vec![0], vec![1]]);
    }
}
