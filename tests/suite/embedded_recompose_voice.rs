//! Narration edits of a recompose on one machine: another voice speaks the lines again with no
//! clip-provider call, its captions follow the new speech, an unknown voice is refused by field,
//! and narration turned off leaves no voice in the mix (each judged by ebur128). A version
//! rendered late renews the job's clips it plays.

use async_trait::async_trait;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use vidpipe_domain::composition::RecomposeEdits;
use vidpipe_domain::media::ClipSpec;
use vidpipe_domain::narration::{Speech, SpeechSpec};
use vidpipe_domain::ports::{ClipProvider, Narrator, ProviderError};
use vidpipe_domain::request::{GenerationRequestBody, NarrationBody, NarratorKind};
use vidpipe_domain::{JobStatus, Timeline, keys};
use vidpipe_media::{EspeakNarrator, ProceduralProvider};
use vidpipe_pipeline::generation::narration::Narrators;
use vidpipe_pipeline::generation::recompose::{self, RecomposeError};
use vidpipe_pipeline::local::{LocalOptions, LocalStack};
use vidpipe_tests::*;

const OWNER: &str = "local";

struct CountedClips(ProceduralProvider, AtomicU32);

#[async_trait]
impl ClipProvider for CountedClips {
    fn name(&self) -> &str {
        "counted"
    }
    async fn generate(&self, spec: &ClipSpec, dest: &Path) -> Result<(), ProviderError> {
        self.1.fetch_add(1, Ordering::SeqCst);
        self.0.generate(spec, dest).await
    }
}

struct CountedVoice(EspeakNarrator, AtomicU32);

#[async_trait]
impl Narrator for CountedVoice {
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
    async fn voices(&self) -> Result<Option<Vec<String>>, ProviderError> {
        self.0.voices().await
    }
}

fn timeline(stack: &LocalStack, composition: &vidpipe_domain::CompositionId) -> Timeline {
    serde_json::from_slice(&std::fs::read(stack.blob_path(&keys::timeline(composition))).unwrap())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_voice_speaks_again_without_clips_and_no_narration_is_silent() {
    let home = tempfile::tempdir().unwrap();
    let clips = Arc::new(CountedClips(
        ProceduralProvider::new(tools()),
        AtomicU32::new(0),
    ));
    let voice = Arc::new(CountedVoice(
        EspeakNarrator::locate(tools()).expect("scripts/setup.sh installs espeak-ng"),
        AtomicU32::new(0),
    ));
    let options = LocalOptions {
        narrators: Some(Narrators::new(
            NarratorKind::Espeak,
            vec![(NarratorKind::Espeak, voice.clone() as Arc<dyn Narrator>)],
        )),
        max_concurrency: 2,
        ..LocalOptions::default()
    };
    let stack = stack_with_options(home.path(), options, Some(clips.clone())).await;
    let body = GenerationRequestBody {
        prompt: Some("Boats come home at dusk. The harbour lights glow.".into()),
        duration_seconds: Some(8.0),
        aspect_ratio: Some("16:9".into()),
        resolution: Some("720p".into()),
        clip_count: Some(2),
        narration: Some(NarrationBody::default()),
        ..Default::default()
    };
    let job = run_job(&stack, OWNER, &body).await;
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
    let (made, spoken) = (
        clips.1.load(Ordering::SeqCst),
        voice.1.load(Ordering::SeqCst),
    );
    assert_eq!(made, 2);
    assert!(spoken >= 1, "the job was narrated");
    let deps = stack.deps();
    let first = vidpipe_domain::CompositionId::first_of(&job.id);
    let parent_tl = timeline(&stack, &first);
    assert!(!parent_tl.narration.is_empty());

    // An unknown voice is refused by its field before anything is recorded.
    let bad = RecomposeEdits {
        voice: Some("xx-nobody".into()),
        ..Default::default()
    };
    match recompose::prepare(deps, OWNER, &job.id, &bad).await {
        Err(RecomposeError::Invalid(v)) => assert!(v.names("voice"), "{v:?}"),
        other => panic!("an unknown voice: {other:?}"),
    }

    // The job's clips made 100 days ago, as far as the store's age goes: a version rendered now
    // renews them, so `generations/`'s 90-day expiry cannot take them from under it.
    let day = std::time::Duration::from_secs(86_400);
    let aged = std::time::SystemTime::now() - 100 * day;
    let clip_files: Vec<_> = parent_tl
        .clips
        .iter()
        .map(|c| stack.blob_path(&c.key))
        .collect();
    for f in &clip_files {
        std::fs::File::options()
            .write(true)
            .open(f)
            .unwrap()
            .set_modified(aged)
            .unwrap();
    }

    // Another voice: spoken again, no clip made, the captions on the new speech.
    let edits = RecomposeEdits {
        voice: Some("fr".into()),
        ..Default::default()
    };
    let prepared = recompose::prepare(deps, OWNER, &job.id, &edits)
        .await
        .unwrap();
    let voiced = recompose::render(deps, &prepared, &|_| {}).await.unwrap();
    for f in &clip_files {
        let age = std::fs::metadata(f)
            .unwrap()
            .modified()
            .unwrap()
            .elapsed()
            .unwrap_or_default();
        assert!(age < day, "{} renewed: {age:?} old", f.display());
    }
    assert_eq!(
        clips.1.load(Ordering::SeqCst),
        made,
        "0 clip-provider calls"
    );
    assert!(
        voice.1.load(Ordering::SeqCst) > spoken,
        "the lines were spoken again"
    );
    let tl = timeline(&stack, &voiced.id);
    assert_eq!(tl.narration.len(), parent_tl.narration.len());
    for (cue, old) in tl.narration.iter().zip(&parent_tl.narration) {
        assert!(
            cue.key
                .starts_with(&format!("compositions/{}/narration/", voiced.id)),
            "{}",
            cue.key
        );
        assert!(
            (cue.duration_seconds - old.duration_seconds).abs() > 0.05,
            "another voice, another length: {} vs {}",
            cue.duration_seconds,
            old.duration_seconds
        );
        // The caption's words are this speech's, as heard: they end inside it, near its end
        // (espeak-ng leaves a little silence after the last word), and not where the old did.
        let caption = tl.captions.iter().find(|c| c.index == cue.index).unwrap();
        let old_caption = parent_tl
            .captions
            .iter()
            .find(|c| c.index == cue.index)
            .unwrap();
        let last = caption.words.last().expect("karaoke words");
        let speech_end = cue.start_seconds + cue.duration_seconds;
        assert!(
            last.end_seconds <= speech_end + 0.01
                && last.end_seconds >= cue.start_seconds + 0.6 * cue.duration_seconds,
            "caption ends {} but speech runs {}..{speech_end}",
            last.end_seconds,
            cue.start_seconds
        );
        let ends = |c: &vidpipe_domain::CaptionCue| -> Vec<f64> {
            c.words.iter().map(|w| w.end_seconds).collect()
        };
        assert_ne!(
            ends(caption),
            ends(old_caption),
            "the words follow the new voice"
        );
    }
    let final_path = stack.blob_path(&voiced.outputs.clone().unwrap().final_key);
    let r = ebur128(&final_path);
    assert!(
        (-20.0..=-10.0).contains(&r.integrated),
        "the voice-over is mixed at the delivery level: {r:?}"
    );
    // The parent's own speech files are untouched: it still plays its first voice.
    for cue in &parent_tl.narration {
        assert!(stack.blob_path(&cue.key).is_file());
        assert!(cue.key.starts_with(&format!("generations/{}/", job.id)));
    }

    // No narration, from the voiced version: the voice is gone.
    let edits = RecomposeEdits {
        narration: Some(false),
        parent_composition_id: Some(voiced.id.to_string()),
        ..Default::default()
    };
    let prepared = recompose::prepare(deps, OWNER, &job.id, &edits)
        .await
        .unwrap();
    let silent = recompose::render(deps, &prepared, &|_| {}).await.unwrap();
    assert_eq!(
        clips.1.load(Ordering::SeqCst),
        made,
        "0 clip-provider calls"
    );
    assert!(timeline(&stack, &silent.id).narration.is_empty());
    let final_path = stack.blob_path(&silent.outputs.clone().unwrap().final_key);
    if probe(&final_path).audio_codec.is_some() {
        let r = ebur128(&final_path);
        assert!(r.integrated < -60.0, "no voice left: {r:?}");
    }
}
