//! Renders a normalised timeline document ([`vidpipe_domain::edit::Edit`]) in one ffmpeg pass:
//! a background canvas, each visual layer fitted (cover, blur-padded contain, crop), moved (Ken
//! Burns), faded to its opacity, brought in and out with an xfade against transparency, and
//! overlaid in its time window; captions on top. The sound: the audio clips and each video
//! clip's own sound in its window, the soundtrack ducked under them, and the mix levelled to the
//! delivery loudness. The output is exactly `edit.total_frames` long.
//!
//! Layers carry alpha (yuva420p) from their fit onwards, so a transition is an xfade from a
//! transparent frame: a wipe reveals the layer over whatever is beneath it, not over black.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use vidpipe_domain::edit::{Edit, EditJob, Fit, Layer, LayerTransition, Visual};
use vidpipe_domain::media::ProbeInfo;
use vidpipe_domain::ports::MediaError;

use crate::captions;
use crate::compose::{AUDIO_RATE, MIX_LUFS, MIX_TRUE_PEAK, h264_aac_output_args};
use crate::filtergraph::{Chain, Filter, Graph, Pad, Xfade, blur_pad, fmt_num};
use crate::run::{self, Progress, os};
use crate::tools::Tools;

/// The ducking compressor keyed on the voice, as the generation composer sets it: a fast attack
/// so the first syllable is clear, a slow release so the music does not pump between words.
fn duck() -> Filter {
    Filter::new("sidechaincompress")
        .num("threshold", 0.003)
        .num("ratio", 20.0)
        .num("attack", 15.0)
        .num("release", 450.0)
        .num("knee", 4.0)
}

/// The loudness range `loudnorm` is allowed before it compresses. Within half of it either side
/// of the running integrated loudness its gain is one slowly moving level, so the balance the
/// edit sets (clip volumes, ducking, a quiet passage before a loud one) survives the levelling;
/// its default of 7 LU would squeeze a 6 dB volume step.
const LEVEL_LRA: f64 = 20.0;

/// `loudnorm`'s look-ahead: its first gain is set from this much of the mix.
const LEVEL_WINDOW_SECONDS: f64 = 3.0;

/// The mix (`duration` long, silent for its first `lead` seconds) levelled by [`level`], still
/// `duration` long.
///
/// `loudnorm` sets its first gain from its first 3 s and, while the level is low, moves it only
/// slowly after; so the silence before the first sound is cut off for the levelling and put back
/// after it (a quiet clip after a 3 s silent title card came out 34 LU short). A mix shorter than
/// the window is looped to fill it, then cut back: a steady short mix gets its own level's gain,
/// and a silent one stays silent (`loudnorm` gives a silent stream shorter than its window an
/// infinite gain, and the encoder refuses the NaNs).
fn levelled(g: &mut Graph, mixed: Chain, lead: f64, duration: f64) -> Chain {
    let span = duration - lead;
    let mut c = mixed;
    if lead > 0.0 {
        c = c
            .then(Filter::new("atrim").num("start", lead))
            .then(Filter::new("asetpts").arg("PTS-STARTPTS"));
    }
    // A little over the window, so its first block is a whole one.
    let fill = LEVEL_WINDOW_SECONDS + 0.1;
    let short = span < fill;
    if short {
        c = c
            .then(delivery_format())
            .then(
                Filter::new("aloop")
                    .opt("loop", -1)
                    .opt("size", (span * AUDIO_RATE as f64).floor() as u64),
            )
            .then(Filter::new("atrim").num("end", fill));
    }
    // `loudnorm` leaves its first frame without a timestamp: count them from the samples.
    c = c.then(level()).then(Filter::new("asetpts").arg("N/SR/TB"));
    if short {
        c = c.then(Filter::new("atrim").num("end", span));
    }
    c = c.then(delivery_format());
    if lead <= 0.0 {
        return c;
    }
    // Put back by a silent head joined on, not by `adelay`, which takes its start from the
    // first frame's (missing) timestamp and so delays nothing.
    let (head, body) = (Pad::new("leadsilence"), Pad::new("levelled"));
    g.push(c.to([body.clone()]));
    g.push(
        Chain::new(std::iter::empty::<Pad>())
            .then(
                Filter::new("anullsrc")
                    .opt("channel_layout", "stereo")
                    .opt("sample_rate", AUDIO_RATE),
            )
            .then(Filter::new("atrim").num("end", lead))
            .then(delivery_format())
            .to([head.clone()]),
    );
    Chain::new([head, body]).then(Filter::new("concat").opt("n", 2).opt("v", 0).opt("a", 1))
}

/// Levels the finished mix to the delivery target of the generation composer (`MIX_LUFS`, true
/// peak under `MIX_TRUE_PEAK`) inside the one pass. The composer levels with plain gains from
/// figures measured when its inputs were made; a timeline's uploaded videos and generated clips
/// carry no such figures, and measuring them first would be a second decode of every input, so
/// the mix is levelled as it plays: `loudnorm` reads 3 s ahead and steers a smoothed gain to the
/// running integrated loudness (see [`levelled`] for its first 3 s). Blocks quieter than -70 LUFS
/// hold the gain, so silence stays silent and a noise floor under that is not lifted. It works at
/// 192 kHz (about 0.8 s of CPU per 30 s of stereo); the delivery format brings it back to 48 kHz.
fn level() -> Filter {
    Filter::new("loudnorm")
        .num("I", MIX_LUFS)
        .num("TP", MIX_TRUE_PEAK)
        .num("LRA", LEVEL_LRA)
}

/// Renders `job.edit` from its files in one ffmpeg run.
pub async fn render_edit(
    tools: &Tools,
    job: &EditJob,
    progress: &(dyn Fn(f64) + Send + Sync),
) -> Result<(), MediaError> {
    let edit = &job.edit;
    if job.layer_files.len() != edit.layers.len() || job.audio_files.len() != edit.audio.len() {
        return Err(MediaError::InvalidInput(format!(
            "the edit has {} layers and {} audio clips but {} and {} files were given",
            edit.layers.len(),
            edit.audio.len(),
            job.layer_files.len(),
            job.audio_files.len()
        )));
    }
    if edit.soundtrack.is_some() != job.soundtrack_file.is_some() {
        return Err(MediaError::InvalidInput(
            "the soundtrack and its file must come together".into(),
        ));
    }
    tokio::fs::create_dir_all(&job.work_dir).await?;
    for p in [&job.final_path, &job.thumbnail_path] {
        if let Some(parent) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent).await?;
        }
    }
    let mut sources = Vec::with_capacity(edit.layers.len());
    for (i, (layer, file)) in edit.layers.iter().zip(&job.layer_files).enumerate() {
        sources.push(prepare_source(tools, edit, i, layer, file.as_deref(), &job.work_dir).await?);
    }
    let captions = prepare_captions(edit, &job.work_dir).await?;
    let args = graph_args(edit, &sources, &captions, job);
    let _ = tokio::fs::remove_file(&job.thumbnail_path).await;
    run::ffmpeg(
        tools,
        args,
        Some(Progress {
            total_seconds: edit.duration_seconds,
            report: progress,
        }),
    )
    .await?;
    progress(1.0);
    Ok(())
}

/// A layer's input as ffmpeg reads it.
#[derive(Debug, Clone)]
struct Source {
    pre: Vec<OsString>,
    path: PathBuf,
    /// Display size.
    width: u32,
    height: u32,
    /// One picture (an image or a title) to be held, not a moving clip.
    still: bool,
    /// A title: placed at its own size, never fitted.
    natural: bool,
    /// A video clip whose file has sound: it plays in the clip's window.
    sound: bool,
}

async fn prepare_source(
    tools: &Tools,
    edit: &Edit,
    i: usize,
    layer: &Layer,
    file: Option<&Path>,
    work_dir: &Path,
) -> Result<Source, MediaError> {
    let missing = || MediaError::InvalidInput(format!("{}: no file was given", layer.path));
    match &layer.visual {
        Visual::Title { text, style } => {
            let (text, style) = (text.clone(), *style);
            let (w, h) = (edit.output.width, edit.output.height);
            let dest = work_dir.join(format!("title_{i:02}.pam"));
            let d = dest.clone();
            let size = tokio::task::spawn_blocking(move || -> Result<_, MediaError> {
                let img = captions::render_caption(&text, &style, None, w, h)
                    .ok_or_else(|| MediaError::InvalidInput("blank title".into()))?;
                captions::write_pam(&img, &d)?;
                Ok((img.width(), img.height()))
            })
            .await
            .map_err(|e| MediaError::Io(std::io::Error::other(e)))??;
            Ok(Source {
                pre: Vec::new(),
                path: dest,
                width: size.0,
                height: size.1,
                still: true,
                natural: true,
                sound: false,
            })
        }
        Visual::Image { .. } => {
            let file = file.ok_or_else(missing)?;
            let dest = work_dir.join(format!("image_{i:02}.pam"));
            match decode_image(file, &dest).await? {
                Some((width, height)) => Ok(Source {
                    pre: Vec::new(),
                    path: dest,
                    width,
                    height,
                    still: true,
                    natural: false,
                    sound: false,
                }),
                None => {
                    let info = crate::probe::probe(tools, file).await?;
                    let (width, height) = display_size(&info, file)?;
                    Ok(Source {
                        // A `%` in the name is no frame-number pattern.
                        pre: vec![os("-f"), os("image2"), os("-pattern_type"), os("none")],
                        path: file.to_owned(),
                        width,
                        height,
                        still: true,
                        natural: false,
                        sound: false,
                    })
                }
            }
        }
        Visual::Video { .. } | Visual::Generate { .. } => {
            let file = file.ok_or_else(missing)?;
            let info = crate::probe::probe(tools, file).await?;
            let (width, height) = display_size(&info, file)?;
            Ok(Source {
                pre: Vec::new(),
                path: file.to_owned(),
                width,
                height,
                still: false,
                natural: false,
                // A generated clip is picture only, as a generation's compose takes its clips. A
                // video without an audio stream is silent in its window.
                sound: matches!(layer.visual, Visual::Video { .. }) && info.audio().is_some(),
            })
        }
    }
}

fn display_size(info: &ProbeInfo, file: &Path) -> Result<(u32, u32), MediaError> {
    let v = info
        .video()
        .ok_or_else(|| MediaError::InvalidInput(format!("{} has no picture", file.display())))?;
    let (w, h) = (v.width.unwrap_or(0), v.height.unwrap_or(0));
    if w == 0 || h == 0 {
        return Err(MediaError::InvalidInput(format!(
            "{} has no frame size",
            file.display()
        )));
    }
    // ffmpeg autorotates on decode.
    Ok(if v.rotation.rem_euclid(180) == 90 {
        (h, w)
    } else {
        (w, h)
    })
}

/// PNG and JPEG are decoded here (upright, alpha kept) into a PAM, which every ffmpeg build
/// reads; `None` for other formats, left to ffmpeg.
async fn decode_image(src: &Path, dest: &Path) -> Result<Option<(u32, u32)>, MediaError> {
    let (src, dest) = (src.to_owned(), dest.to_owned());
    tokio::task::spawn_blocking(move || {
        let reader = image::ImageReader::open(&src)
            .and_then(|r| r.with_guessed_format())
            .map_err(MediaError::Io)?;
        if !matches!(
            reader.format(),
            Some(image::ImageFormat::Png | image::ImageFormat::Jpeg)
        ) {
            return Ok(None);
        }
        let bad = |e: image::ImageError| {
            MediaError::InvalidInput(format!("{} does not decode: {e}", src.display()))
        };
        let mut decoder = reader.into_decoder().map_err(bad)?;
        let orientation = image::ImageDecoder::orientation(&mut decoder).map_err(bad)?;
        let mut img = image::DynamicImage::from_decoder(decoder).map_err(bad)?;
        img.apply_orientation(orientation);
        let rgba = img.to_rgba8();
        captions::write_pam(&rgba, &dest)?;
        Ok(Some((rgba.width(), rgba.height())))
    })
    .await
    .map_err(|e| MediaError::Io(std::io::Error::other(e)))?
}

/// A caption line drawn by the caption engine, and where it goes.
struct CaptionInput {
    path: PathBuf,
    x: u32,
    y: u32,
    start_frame: u32,
    frames: u32,
}

async fn prepare_captions(edit: &Edit, work_dir: &Path) -> Result<Vec<CaptionInput>, MediaError> {
    let lines = edit.captions.clone();
    let (w, h, opts) = (edit.output.width, edit.output.height, edit.caption_style);
    let dir = work_dir.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for (k, line) in lines.iter().enumerate() {
            let Some(img) = captions::render_caption(&line.text, &opts, None, w, h) else {
                continue;
            };
            let (x, y) = captions::caption_position(&opts, img.width(), img.height(), w, h);
            let path = dir.join(format!("caption_{k:03}.pam"));
            captions::write_pam(&img, &path)?;
            out.push(CaptionInput {
                path,
                x,
                y,
                start_frame: line.start_frame,
                frames: line.frames,
            });
        }
        Ok(out)
    })
    .await
    .map_err(|e| MediaError::Io(std::io::Error::other(e)))?
}

fn even(v: f64) -> u32 {
    ((v / 2.0).round() as u32 * 2).max(2)
}

/// The size a layer occupies on the frame: the frame times its scale, or a title's own size
/// times its scale.
fn box_size(edit: &Edit, layer: &Layer, src: &Source) -> (u32, u32) {
    let (w, h) = if src.natural {
        (src.width as f64, src.height as f64)
    } else {
        (edit.output.width as f64, edit.output.height as f64)
    };
    (even(w * layer.scale), even(h * layer.scale))
}

/// The ffmpeg arguments: inputs, the video and audio graphs, the final file and the thumbnail.
fn graph_args(
    edit: &Edit,
    sources: &[Source],
    captions: &[CaptionInput],
    job: &EditJob,
) -> Vec<OsString> {
    let (fw, fh, fps) = (edit.output.width, edit.output.height, edit.output.fps);
    let seconds = |frames: u32| frames as f64 / fps as f64;
    let duration = edit.duration_seconds;
    let mut args: Vec<OsString> = Vec::new();
    let mut inputs = 0usize;
    let mut input = |args: &mut Vec<OsString>, pre: &[OsString], path: OsString| {
        args.extend(pre.iter().cloned());
        args.extend([os("-i"), path]);
        inputs += 1;
        inputs - 1
    };
    // The canvas runs a second past the end; `-frames:v` cuts the output exactly.
    let canvas = Filter::new("color")
        .opt("c", &edit.output.background)
        .opt("s", format!("{fw}x{fh}"))
        .opt("r", fps)
        .num("d", duration + 1.0);
    let canvas_input = input(&mut args, &[os("-f"), os("lavfi")], os(canvas.to_string()));
    let layer_inputs: Vec<usize> = sources
        .iter()
        .map(|s| input(&mut args, &s.pre, os(&s.path)))
        .collect();
    let caption_inputs: Vec<usize> = captions
        .iter()
        .map(|c| input(&mut args, &[], os(&c.path)))
        .collect();
    let bed_input = job
        .soundtrack_file
        .as_ref()
        .map(|p| input(&mut args, &[os("-stream_loop"), os("-1")], os(p)));
    let voice_inputs: Vec<usize> = job
        .audio_files
        .iter()
        .map(|p| input(&mut args, &[], os(p)))
        .collect();
    // Video clips whose sound is heard: an audio stream at a gain above nothing.
    let clip_sounds: Vec<(&Layer, f64, usize)> = edit
        .layers
        .iter()
        .zip(sources)
        .zip(&layer_inputs)
        .filter_map(|((layer, src), &inp)| match layer.visual {
            Visual::Video { volume, .. } if src.sound && volume > 0.0 => Some((layer, volume, inp)),
            _ => None,
        })
        .collect();
    let heard = bed_input.is_some() || !voice_inputs.is_empty() || !clip_sounds.is_empty();
    let silence_input = (!heard).then(|| {
        let silence = Filter::new("anullsrc")
            .opt("channel_layout", "stereo")
            .opt("sample_rate", AUDIO_RATE);
        input(&mut args, &[os("-f"), os("lavfi")], os(silence.to_string()))
    });

    let mut g = Graph::new();
    let mut video = Pad::new("canvas");
    g.push(
        Chain::new([Pad::video(canvas_input)])
            .then(Filter::new("format").arg("yuv420p"))
            .to([video.clone()]),
    );
    for (i, ((layer, src), &inp)) in edit
        .layers
        .iter()
        .zip(sources)
        .zip(&layer_inputs)
        .enumerate()
    {
        let (bw, bh) = box_size(edit, layer, src);
        let pad = layer_chain(&mut g, edit, i, layer, src, inp, (bw, bh));
        let (x, y) = layer.position.origin((fw, fh), (bw, bh));
        let next = Pad::new(format!("over{i}"));
        g.push(
            Chain::new([video, pad])
                .then(
                    Filter::new("overlay")
                        .opt("x", x)
                        .opt("y", y)
                        .opt("eof_action", "pass")
                        .opt("format", "yuv420")
                        .opt(
                            "enable",
                            window(seconds(layer.start_frame), seconds(layer.end_frame())),
                        ),
                )
                .to([next.clone()]),
        );
        video = next;
    }
    for (k, (cap, &inp)) in captions.iter().zip(&caption_inputs).enumerate() {
        let img = Pad::new(format!("capimg{k}"));
        g.push(
            Chain::new([Pad::video(inp)])
                .then(Filter::new("format").arg("yuva420p"))
                .then(hold(cap.frames))
                // In frames of the edit's rate: exact, whatever rate the picture was read at.
                .then(Filter::new("settb").arg(format!("1/{fps}")))
                .then(Filter::new("setpts").arg(format!("N+{}", cap.start_frame)))
                .to([img.clone()]),
        );
        let next = Pad::new(format!("cap{k}"));
        g.push(
            Chain::new([video, img])
                .then(
                    Filter::new("overlay")
                        .opt("x", cap.x)
                        .opt("y", cap.y)
                        .opt("eof_action", "pass")
                        .opt("format", "yuv420")
                        .opt(
                            "enable",
                            window(
                                seconds(cap.start_frame),
                                seconds(cap.start_frame + cap.frames),
                            ),
                        ),
                )
                .to([next.clone()]),
        );
        video = next;
    }
    let (vout, thumb_src, thumb) = (Pad::new("vout"), Pad::new("thumbsrc"), Pad::new("thumb"));
    g.push(
        Chain::new([video])
            .then(Filter::new("format").arg("yuv420p"))
            .then(Filter::new("split").arg(2))
            .to([vout.clone(), thumb_src.clone()]),
    );
    // The middle frame: past any opening title card or fade-in.
    let th = fh.min(360);
    let tw = even(fw as f64 * th as f64 / fh as f64);
    g.push(
        Chain::new([thumb_src])
            .then(Filter::new("select").arg(format!("eq(n,{})", edit.total_frames / 2)))
            .then(Filter::new("scale").opt("w", tw).opt("h", th))
            .then(Filter::new("setsar").arg(1))
            .to([thumb.clone()]),
    );

    let mut ga = Graph::new();
    let aout = Pad::new("aout");
    let mut voices = Vec::new();
    for (k, (clip, &inp)) in edit.audio.iter().zip(&voice_inputs).enumerate() {
        let pad = Pad::new(format!("voice{k}"));
        ga.push(
            Chain::new([Pad::audio(inp)])
                .then(Filter::new("atrim").num("end", seconds(clip.frames)))
                .then(Filter::new("asetpts").arg("PTS-STARTPTS"))
                .then(delivery_format())
                .then(Filter::new("volume").num("volume", clip.volume))
                .then(
                    Filter::new("adelay")
                        .opt(
                            "delays",
                            (seconds(clip.start_frame) * 1000.0).round() as u64,
                        )
                        .opt("all", 1),
                )
                .to([pad.clone()]),
        );
        voices.push(pad);
    }
    for (k, &(layer, volume, inp)) in clip_sounds.iter().enumerate() {
        let pad = Pad::new(format!("clipsound{k}"));
        ga.push(clip_sound(inp, layer, volume, fps).to([pad.clone()]));
        voices.push(pad);
    }
    // The foreground the soundtrack ducks under: the audio clips and the video clips' own sound.
    // A clip's sound is kept because the editor chose to hear it (a muted clip has volume 0 and
    // is no key): speech or a product's sound in the footage is as hard to follow under a
    // full-level bed as a voice-over is. An edit that wants the bed over ambient footage says
    // `ducking: false` or turns the clip down to 0.
    let voice = (!voices.is_empty()).then(|| {
        let pad = Pad::new("voice");
        ga.push(crate::filtergraph::voice_stem(voices, duration).to([pad.clone()]));
        pad
    });
    let bed = bed_input.zip(edit.soundtrack.as_ref()).map(|(inp, s)| {
        let pad = Pad::new("bed");
        let mut c = Chain::new([Pad::audio(inp)])
            .then(Filter::new("atrim").num("end", duration))
            .then(Filter::new("asetpts").arg("PTS-STARTPTS"))
            .then(delivery_format())
            .then(Filter::new("volume").num("volume", s.volume));
        let fade_in = s.fade_in_seconds.min(duration);
        if fade_in > 0.0 {
            c = c.then(
                Filter::new("afade")
                    .opt("t", "in")
                    .num("st", 0.0)
                    .num("d", fade_in),
            );
        }
        let fade_out = s.fade_out_seconds.min(duration);
        if fade_out > 0.0 {
            c = c.then(
                Filter::new("afade")
                    .opt("t", "out")
                    .num("st", duration - fade_out)
                    .num("d", fade_out),
            );
        }
        ga.push(c.to([pad.clone()]));
        (pad, s.ducking)
    });
    let mixed = match (bed, voice) {
        (Some((bed, ducking)), Some(voice)) => {
            let over = Pad::new("voiceover");
            let under = if ducking {
                let key = Pad::new("voicekey");
                ga.push(
                    Chain::new([voice])
                        .then(Filter::new("asplit").arg(2))
                        .to([key.clone(), over.clone()]),
                );
                let ducked = Pad::new("ducked");
                ga.push(Chain::new([bed, key]).then(duck()).to([ducked.clone()]));
                ducked
            } else {
                ga.push(
                    Chain::new([voice])
                        .then(Filter::new("anull"))
                        .to([over.clone()]),
                );
                bed
            };
            Chain::new([under, over]).then(
                Filter::new("amix")
                    .opt("inputs", 2)
                    .opt("duration", "first")
                    .opt("normalize", 0),
            )
        }
        (Some((bed, _)), None) => Chain::new([bed]),
        (None, Some(voice)) => Chain::new([voice]),
        (None, None) => Chain::new([Pad::audio(silence_input.expect("silence when no audio"))]),
    };
    let mixed = if heard {
        // The silence before the first sound: none under a soundtrack.
        let lead = edit
            .soundtrack
            .as_ref()
            .map(|_| 0)
            .into_iter()
            .chain(edit.audio.iter().map(|a| a.start_frame))
            .chain(clip_sounds.iter().map(|(l, ..)| l.start_frame))
            .min()
            .map_or(0.0, seconds);
        levelled(&mut ga, mixed, lead, duration)
    } else {
        // Silence is left as it is: no source, nothing to level.
        mixed
    };
    ga.push(
        mixed
            .then(delivery_format())
            .then(Filter::new("apad").num("whole_dur", duration))
            .then(Filter::new("atrim").num("end", duration))
            .to([aout.clone()]),
    );

    args.extend([
        os("-filter_complex"),
        os(g.to_string()),
        os("-filter_complex"),
        os(ga.to_string()),
        os("-map"),
        os(vout.map_arg()),
        os("-map"),
        os(aout.map_arg()),
    ]);
    args.extend(h264_aac_output_args());
    args.extend([
        os("-frames:v"),
        os(edit.total_frames.to_string()),
        os(&job.final_path),
        os("-map"),
        os(thumb.map_arg()),
        os("-frames:v"),
        os("1"),
        os("-update"),
        os("1"),
        os("-q:v"),
        os("3"),
        os(&job.thumbnail_path),
    ]);
    args
}

/// A video clip's own sound: the start of its audio for the clip's length, at its volume, faded in
/// and out over its transitions (the picture's xfade from and to transparency, heard), placed at
/// the clip's start. Like the picture it starts from the file's first sample.
fn clip_sound(input: usize, layer: &Layer, volume: f64, fps: u32) -> Chain {
    let seconds = |frames: u32| frames as f64 / fps as f64;
    let length = seconds(layer.frames);
    let mut c = Chain::new([Pad::audio(input)])
        .then(Filter::new("asetpts").arg("PTS-STARTPTS"))
        .then(Filter::new("atrim").num("end", length))
        .then(delivery_format())
        .then(Filter::new("volume").num("volume", volume));
    if let Some(t) = layer.transition_in {
        c = c.then(
            Filter::new("afade")
                .opt("t", "in")
                .num("st", 0.0)
                .num("d", seconds(t.frames)),
        );
    }
    if let Some(t) = layer.transition_out {
        c = c.then(
            Filter::new("afade")
                .opt("t", "out")
                .num("st", length - seconds(t.frames))
                .num("d", seconds(t.frames)),
        );
    }
    c.then(
        Filter::new("adelay")
            .opt(
                "delays",
                (seconds(layer.start_frame) * 1000.0).round() as u64,
            )
            .opt("all", 1),
    )
}

/// Half-open: at a handover frame exactly one of two back-to-back layers shows.
fn window(start: f64, end: f64) -> String {
    format!("gte(t,{})*lt(t,{})", fmt_num(start), fmt_num(end))
}

fn delivery_format() -> Filter {
    Filter::new("aformat")
        .opt("sample_fmts", "fltp")
        .opt("sample_rates", AUDIO_RATE)
        .opt("channel_layouts", "stereo")
}

/// One picture repeated to `frames` frames (timestamps are set after).
fn hold(frames: u32) -> Filter {
    Filter::new("loop")
        .opt("loop", frames.saturating_sub(1))
        .opt("size", 1)
        .opt("start", 0)
}

/// A layer from its input to a `bw`x`bh` yuva420p stream exactly `layer.frames` long, whose
/// timestamps start at the layer's start. Returns its pad.
fn layer_chain(
    g: &mut Graph,
    edit: &Edit,
    i: usize,
    layer: &Layer,
    src: &Source,
    input: usize,
    (bw, bh): (u32, u32),
) -> Pad {
    let fps = edit.output.fps;
    let frames = layer.frames;
    let tb = format!("1/{fps}");
    let mut head = Chain::new([Pad::video(input)]);
    if !src.still {
        // The clip's first `frames` frames at the edit's rate; the early trim spares the scalers.
        head = head
            .then(Filter::new("setpts").arg("PTS-STARTPTS"))
            .then(Filter::new("fps").arg(fps))
            .then(Filter::new("trim").opt("end_frame", frames));
    }
    let fitted = if src.natural {
        if (bw, bh) == (src.width, src.height) {
            head.then(Filter::new("null"))
        } else {
            head.then(Filter::new("scale").opt("w", bw).opt("h", bh))
        }
    } else {
        match layer.fit {
            Fit::Cover => head
                .then(
                    Filter::new("scale")
                        .opt("w", bw)
                        .opt("h", bh)
                        .opt("force_original_aspect_ratio", "increase"),
                )
                .then(Filter::new("crop").opt("w", bw).opt("h", bh)),
            Fit::Contain => {
                let s = (bw as f64 / src.width as f64).min(bh as f64 / src.height as f64);
                let cw = even(src.width as f64 * s).min(bw);
                let ch = even(src.height as f64 * s).min(bh);
                blur_pad(g, head, &format!("l{i}"), (bw, bh), (cw, ch))
            }
            Fit::Crop => head
                .then(Filter::new("format").arg("yuva420p"))
                .then(
                    Filter::new("crop")
                        .opt("w", format!("min(iw,{bw})"))
                        .opt("h", format!("min(ih,{bh})")),
                )
                // A source smaller than its box keeps its pixels at 1:1, bordered by nothing.
                .then(
                    Filter::new("pad")
                        .opt("w", bw)
                        .opt("h", bh)
                        .opt("x", "(ow-iw)/2")
                        .opt("y", "(oh-ih)/2")
                        .opt("color", "black@0"),
                ),
        }
    };
    let mut c = fitted
        .then(Filter::new("setsar").arg(1))
        .then(Filter::new("format").arg("yuva420p"));
    c = if src.still {
        // Fitted once, then repeated: the loop copies finished frames.
        c.then(hold(frames))
            .then(Filter::new("settb").arg(&tb))
            .then(Filter::new("setpts").arg("N"))
    } else {
        // A short clip holds its last frame.
        c.then(
            Filter::new("tpad")
                .opt("stop_mode", "clone")
                .opt("stop", frames),
        )
        .then(Filter::new("trim").opt("end_frame", frames))
        .then(Filter::new("setpts").arg("PTS-STARTPTS"))
    };
    c = c.then(Filter::new("settb").arg(&tb));
    if let Some(effect) = layer.effect {
        c = c
            .then(crate::motion::view_filter(effect.motion(), frames))
            .then(Filter::new("format").arg("yuva420p"));
    }
    if layer.opacity < 1.0 {
        c = c.then(Filter::new("lut").opt("a", format!("val*{}", fmt_num(layer.opacity))));
    }
    let body = Pad::new(format!("layer{i}"));
    g.push(c.to([body.clone()]));
    let joined = transitions(g, edit, i, body, layer, (bw, bh));
    let out = Pad::new(format!("placed{i}"));
    g.push(
        Chain::new([joined])
            .then(Filter::new("settb").arg(format!("1/{}", edit.output.fps)))
            .then(Filter::new("setpts").arg(format!("PTS-STARTPTS+{}", layer.start_frame)))
            .to([out.clone()]),
    );
    out
}

/// The layer's in and out transitions: its first (last) frames xfaded from (to) transparency,
/// cut out and joined back to the untouched middle, so only the transition frames pass
/// through xfade.
fn transitions(
    g: &mut Graph,
    edit: &Edit,
    i: usize,
    body: Pad,
    layer: &Layer,
    (bw, bh): (u32, u32),
) -> Pad {
    let (tin, tout) = (layer.transition_in, layer.transition_out);
    if tin.is_none() && tout.is_none() {
        return body;
    }
    let fps = edit.output.fps;
    let frames = layer.frames;
    let in_frames = tin.map_or(0, |t| t.frames);
    let out_frames = tout.map_or(0, |t| t.frames);
    let mid_frames = frames - in_frames - out_frames;
    let parts: Vec<(&str, u32, u32)> = [
        ("in", 0, in_frames),
        ("mid", in_frames, in_frames + mid_frames),
        ("out", in_frames + mid_frames, frames),
    ]
    .into_iter()
    .filter(|(_, a, b)| b > a)
    .collect();
    let srcs: Vec<Pad> = parts
        .iter()
        .map(|(n, ..)| Pad::new(format!("{n}src{i}")))
        .collect();
    g.push(
        Chain::new([body])
            .then(if srcs.len() == 1 {
                Filter::new("null")
            } else {
                Filter::new("split").arg(srcs.len())
            })
            .to(srcs.clone()),
    );
    let clear = |g: &mut Graph, name: String, n: u32| {
        let pad = Pad::new(name);
        g.push(
            Chain::new(std::iter::empty::<Pad>())
                .then(
                    Filter::new("color")
                        .opt("c", "black@0")
                        .opt("s", format!("{bw}x{bh}"))
                        .opt("r", fps),
                )
                .then(Filter::new("format").arg("yuva420p"))
                .then(Filter::new("trim").opt("end_frame", n))
                .then(Filter::new("settb").arg(format!("1/{fps}")))
                .to([pad.clone()]),
        );
        pad
    };
    let blend = |g: &mut Graph, a: Pad, b: Pad, t: LayerTransition, name: String| {
        let pad = Pad::new(name);
        g.push(
            Chain::new([a, b])
                .then(Xfade {
                    kind: t.kind,
                    duration: t.frames as f64 / fps as f64,
                    offset: 0.0,
                })
                .then(Filter::new("trim").opt("end_frame", t.frames))
                .then(Filter::new("format").arg("yuva420p"))
                .to([pad.clone()]),
        );
        pad
    };
    let mut seq = Vec::new();
    for ((name, a, b), src) in parts.into_iter().zip(srcs) {
        let seg = Pad::new(format!("{name}seg{i}"));
        g.push(
            Chain::new([src])
                .then(
                    Filter::new("trim")
                        .opt("start_frame", a)
                        .opt("end_frame", b),
                )
                .then(Filter::new("setpts").arg("PTS-STARTPTS"))
                .to([seg.clone()]),
        );
        seq.push(match (name, tin, tout) {
            ("in", Some(t), _) => {
                let from = clear(g, format!("clearin{i}"), t.frames);
                blend(g, from, seg, t, format!("inmix{i}"))
            }
            ("out", _, Some(t)) => {
                let to = clear(g, format!("clearout{i}"), t.frames);
                blend(g, seg, to, t, format!("outmix{i}"))
            }
            _ => seg,
        });
    }
    if seq.len() == 1 {
        return seq.pop().expect("one part");
    }
    let joined = Pad::new(format!("joined{i}"));
    let n = seq.len();
    g.push(
        Chain::new(seq)
            .then(Filter::new("concat").opt("n", n).opt("v", 1).opt("a", 0))
            .to([joined.clone()]),
    );
    joined
}
