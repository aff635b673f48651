//! Blob keys. One function per kind of object, so the S3 layout of the design lives in one place
//! and the filesystem store mirrors it exactly.

use crate::asset::AssetId;
use crate::composition::CompositionId;
use crate::job::JobId;

pub fn upload(owner: &str, asset: &AssetId, ext: &str) -> String {
    format!("uploads/{owner}/{asset}/original.{ext}")
}

pub fn clip(job: &JobId, index: u32) -> String {
    format!("generations/{job}/clips/clip_{index:03}.mp4")
}

/// A scene a recompose replaced: the composition's own clip, beside its outputs.
pub fn composition_clip(composition: &CompositionId, index: u32) -> String {
    format!("compositions/{composition}/clips/clip_{index:03}.mp4")
}

pub fn generation_thumbnail(job: &JobId, index: u32) -> String {
    format!("generations/{job}/thumbnails/clip_{index:03}.jpg")
}

/// A replaced scene's clip picture, beside the composition's own clip.
pub fn composition_clip_thumbnail(composition: &CompositionId, index: u32) -> String {
    format!("compositions/{composition}/thumbnails/clip_{index:03}.jpg")
}

/// A job's compositions each have their own folder (its first is [`CompositionId::first_of`]).
pub fn final_video(composition: &CompositionId) -> String {
    format!("compositions/{composition}/final.mp4")
}

pub fn thumbnail(composition: &CompositionId) -> String {
    format!("compositions/{composition}/thumbnail.jpg")
}

pub fn timeline(composition: &CompositionId) -> String {
    format!("compositions/{composition}/timeline.json")
}

pub fn metadata(composition: &CompositionId) -> String {
    format!("compositions/{composition}/metadata.json")
}

/// A recomposed version's own speech (another voice than the job's): the job's speech files stay
/// those its earlier versions play.
pub fn composition_speech(composition: &CompositionId, index: u32, ext: &str) -> String {
    format!("compositions/{composition}/narration/scene_{index:03}.{ext}")
}

pub fn plan(job: &JobId) -> String {
    format!("generations/{job}/plan.json")
}

pub fn temp(job: &JobId, name: &str) -> String {
    format!("temp/{job}/{name}")
}

/// Content-addressed clip cache. Kept under its own prefix so a cached clip outlives the job
/// that first rendered it; jobs get their own copy under `generations/`.
pub fn cached_clip(provider: &str, digest: &str) -> String {
    format!("cache/clips/{provider}/{digest}.mp4")
}

/// Content-addressed narration cache: one scene's speech, and beside it (`.json`) its measured
/// length, word times and loudness.
pub fn cached_speech(narrator: &str, digest: &str, ext: &str) -> String {
    format!("cache/narration/{narrator}/{digest}.{ext}")
}

/// Content-addressed loudness measurements (a music asset's, by the SHA-256 of its bytes), so
/// a file is listened to once however many jobs use it.
pub fn cached_loudness(digest: &str) -> String {
    format!("cache/loudness/{digest}.json")
}

pub fn speech(job: &JobId, index: u32, ext: &str) -> String {
    format!("generations/{job}/narration/scene_{index:03}.{ext}")
}
