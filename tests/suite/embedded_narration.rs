//! Narration on one machine, through the whole pipeline with espeak-ng: the plan gives each
//! scene room for its line, the composed video speaks each line inside its scene's window, a
//! repeated request is narrated from the cache, and speech that cannot fit fails the job saying
//! why.

use async_trait::async_trait;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use vidpipe_domain::asset::AssetKind;
use vidpipe_domain::names;
use vidpipe_domain::narration::{Speech, SpeechSpec};
use vidpipe_domain::ports::{Narrator, ProviderError};
use vidpipe_domain::request::{
    BrandBody, GenerationRequestBody, MusicBody, NarrationBody, NarratorKind,
};
use vidpipe_domain::{JobStatus, Timeline};
use vidpipe_media::EspeakNarrator;
use vidpipe_pipeline::generation::narration::Narrators;
use vidpipe_pipeline::local::LocalOptions;
use vidpipe_tests::*;

const OWNER: &str = "local";

/// espeak-ng, counted.
struct Counted(EspeakNarrator, AtomicU32);

#[async_trait]
impl Narrator for Counted {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn cache_identity(&self) -> String {
        self.0.cache_identity()
    }
    async fn speak(&self, spec: &SpeechSpec, dest: &Path) -> Result<Speech, ProviderError> {
        self.1.fetch_add(1, Ordering::SeqCst);
        self.0.speak(spec, dest).await
    }
}

fn narrated(prompt: &str, seconds: f64, clips: i64) -> GenerationRequestBody {
    GenerationRequestBody {
        prompt: Some(prompt.into()),
        duration_seconds: Some(seconds),
        aspect_ratio: Some("9:16".into()),
        resolution: Some("720p".into()),
        clip_count: Some(clips),
        narration: Some(NarrationBody::default()),
        ..Default::default()
    }
}

async fn counted_stack(home: &Path) -> (vidpipe_pipeline::local::LocalStack, Arc<Counted>) {
    let narrator = Arc::new(Counted(
        EspeakNarrator::locate(tools()).expect("scripts/setup.sh installs espeak-ng"),
        AtomicU32::new(0),
    ));
    let options = LocalOptions {
        narrators: Some(Narrators::new(
            NarratorKind::Espeak,
            vec![(NarratorKind::Espeak, narrator.clone() as Arc<dyn Narrator>)],
        )),
        max_concurrency: 2,
        ..LocalOptions::default()
    };
    (stack_with_options(home, options, None).await, narrator)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_scene_speaks_its_line_inside_its_window_and_a_repeat_comes_from_the_cache() {
    let home = tempfile::tempdir().unwrap();
    let (stack, narrator) = counted_stack(home.path()).await;
    let body = narrated(
        "A lighthouse stands on the cliff at dusk, its white tower glowing. The lamp turns on. Ships pass safely.",
        10.0,
        3,
    );
    let job = run_job(&stack, OWNER, &body).await;
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
    assert_eq!(narrator.1.load(Ordering::SeqCst), 3);

    let plan = job.plan.as_ref().unwrap();
    let narration = plan.narration.as_ref().unwrap();
    assert_eq!(narration.narrator, "espeak");
    // The long first line got more than the rules' hook share (4 of 15 weights).
    let weights_share = plan.total_frames as f64 * 4.0 / 15.0;
    assert!(plan.scenes[0].frames as f64 > weights_share, "{plan:?}");
    assert_eq!(plan.composed_frames(), 10 * 30);

    let outputs = job.outputs.as_ref().unwrap();
    let video = stack.blob_path(&outputs.final_key);
    let facts = probe(&video);
    assert_eq!(facts.audio_codec.as_deref(), Some("aac"));
    assert!((facts.duration - 10.0).abs() < 0.05, "{facts:?}");
    let tl: Timeline =
        serde_json::from_slice(&std::fs::read(stack.blob_path(&outputs.timeline_key)).unwrap())
            .unwrap();
    assert_eq!(tl.narration.len(), 3);
    let heard = sounding(&video, "anull", -45.0);
    for (cue, caption) in tl.narration.iter().zip(&tl.captions) {
        let mine: Vec<&(f64, f64)> = heard
            .iter()
            .filter(|(a, b)| *b > caption.start_seconds && *a < caption.end_seconds)
            .collect();
        assert!(!mine.is_empty(), "scene {} is silent: {heard:?}", cue.index);
        let (onset, end) = (mine[0].0, mine.last().unwrap().1);
        assert!(
            onset >= caption.start_seconds - 0.1 && end <= caption.end_seconds + 0.1,
            "scene {}: speech {onset:.3}..{end:.3} outside {:.3}..{:.3}",
            cue.index,
            caption.start_seconds,
            caption.end_seconds
        );
        // Captions follow the narration word by word.
        assert_eq!(caption.text, plan.scenes[cue.index as usize].narration);
        assert!(!caption.words.is_empty());
    }

    // Each line was measured when it was spoken: the cache keeps its loudness beside it, and
    // the plan the figure the compose levels it with.
    let records = speech_records(&stack);
    assert_eq!(records.len(), 3);
    for (_, record) in &records {
        let lufs = record["loudness"]["integrated_lufs"].as_f64();
        assert!(lufs.is_some_and(|l| (-40.0..0.0).contains(&l)), "{record}");
        assert!(!record["loudness"]["blocks"].as_array().unwrap().is_empty());
    }
    for scene in &plan.scenes {
        let speech = scene.speech.as_ref().unwrap();
        assert!(
            speech.loudness.as_ref().unwrap().blocks.is_empty(),
            "the plan keeps the figure"
        );
    }
    // An entry cached before speech was measured there: the next use measures it and keeps it.
    let (old_path, mut old) = records[0].clone();
    let measured = old["loudness"].take();
    old.as_object_mut().unwrap().remove("loudness");
    std::fs::write(&old_path, serde_json::to_vec(&old).unwrap()).unwrap();

    // The same lines again, under another seed (so new clips) and over a music bed: every line
    // comes from the cache, and the bed is measured once, where the job first sees it.
    let media = tempfile::tempdir().unwrap();
    let bed = write_music(&media.path().join("bed.m4a"), 3.0);
    let music = stack
        .service()
        .ingest_asset(OWNER, AssetKind::Music, &bed, "music")
        .await
        .unwrap();
    let again = GenerationRequestBody {
        seed: Some(1),
        brand: Some(BrandBody {
            music: Some(MusicBody {
                asset_id: Some(music.id.to_string()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..body
    };
    let job = run_job(&stack, OWNER, &again).await;
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
    assert_eq!(narrator.1.load(Ordering::SeqCst), 3, "no line spoken twice");
    let remeasured: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&old_path).unwrap()).unwrap();
    let (was, now) = (
        measured["integrated_lufs"].as_f64().unwrap(),
        remeasured["loudness"]["integrated_lufs"].as_f64().unwrap(),
    );
    assert!((was - now).abs() < 0.05, "{was} then {now}");
    let beds = std::fs::read_dir(stack.blob_path("cache/loudness"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    assert_eq!(beds.len(), 1, "one bed, measured once by its bytes");
    let bed: vidpipe_domain::loudness::Loudness =
        serde_json::from_slice(&std::fs::read(beds[0].path()).unwrap()).unwrap();
    assert!(
        bed.integrated_lufs.is_some() && bed.blocks.len() >= 20,
        "{bed:?}"
    );
    let video = stack.blob_path(&job.outputs.as_ref().unwrap().final_key);
    let r = ebur128(&video);
    assert!((r.integrated - (-14.0)).abs() <= 1.5, "{r:?}");
    assert!(r.true_peak <= -1.0, "{r:?}");
}

/// The narration cache's metadata records (path, JSON), in a stable order.
fn speech_records(
    stack: &vidpipe_pipeline::local::LocalStack,
) -> Vec<(PathBuf, serde_json::Value)> {
    let dir = stack.blob_path("cache/narration/espeak");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let v = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            (p, v)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speech_that_cannot_fit_fails_the_job_with_the_reason() {
    let home = tempfile::tempdir().unwrap();
    let (stack, _) = counted_stack(home.path()).await;
    let long =
        "This sentence goes on and on, with many words that take a long while to say. ".repeat(5);
    let job = run_job(&stack, OWNER, &narrated(&long, 5.0, 1)).await;
    assert_eq!(job.status, JobStatus::Failed);
    let error = job.error.unwrap();
    assert_eq!(error.code, names::PLAN_FAILED);
    assert!(error.message.contains("lengthen the video"), "{error:?}");
    assert!(job.outputs.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_narrator_the_machine_does_not_offer_is_named() {
    let home = tempfile::tempdir().unwrap();
    let (stack, _) = counted_stack(home.path()).await;
    let mut body = narrated("A quiet lake.", 5.0, 1);
    body.narration = Some(NarrationBody {
        provider: Some("polly".into()),
        ..Default::default()
    });
    let job = run_job(&stack, OWNER, &body).await;
    assert_eq!(job.status, JobStatus::Failed);
    let error = job.error.unwrap();
    assert_eq!(error.code, names::CONFIGURATION);
    assert!(error.message.contains("polly"), "{error:?}");
}

#[tokio::test]
async fn espeak_passes_the_narrator_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let espeak = EspeakNarrator::locate(tools()).expect("scripts/setup.sh installs espeak-ng");
    let spec = SpeechSpec {
        text: "The harbour wakes. Gulls call over the water.".into(),
        voice: None,
        engine: None,
    };
    vidpipe_pipeline::conformance::narrator::run_all(&espeak, &spec, dir.path()).await;
}
