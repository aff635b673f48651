//! The `ClipProvider` conformance suite: what the clip step relies on from every provider
//! (procedural, Replicate, Nova Reel, Nova Canvas, OpenAI images), each run against its own
//! local fake speaking the real API.
//!
//! - `cache_identity` starts with the provider's name and is stable, so cached clips never mix
//!   providers or configurations;
//! - `submit`, then `poll` on every `Pending` handle, reaches `Ready` with media at `dest`: a
//!   video (an ISO-BMFF or Matroska file) or a still (PNG, JPEG or WebP), as `media` says;
//! - a second `submit` of the same clip is harmless (a step retried after a lost answer);
//! - `cancel` of a call that ended is `Ok`.

use std::path::Path;
use std::time::Duration;
use vidpipe_domain::media::ClipSpec;
use vidpipe_domain::ports::{ClipMedia, ClipProgress, ClipProvider};

/// Polls allowed before a fake counts as stuck: fakes answer within a few.
const MAX_POLLS: u32 = 20;

/// Runs every check with `spec`; `dir` is a scratch folder (made if missing).
pub async fn run_all(provider: &dyn ClipProvider, spec: &ClipSpec, dir: &Path) {
    std::fs::create_dir_all(dir).expect("scratch folder");
    identity_names_the_provider_and_is_stable(provider);
    let handle = submit_then_poll_reaches_media(provider, spec, &dir.join("first")).await;
    a_second_submit_of_the_same_clip_is_harmless(provider, spec, &dir.join("second")).await;
    cancel_of_an_ended_call_is_ok(provider, handle.as_deref().unwrap_or("ended-call")).await;
}

pub fn identity_names_the_provider_and_is_stable(provider: &dyn ClipProvider) {
    let identity = provider.cache_identity();
    assert!(
        identity.starts_with(provider.name()),
        "{}: cache identity {identity:?} must start with the name",
        provider.name()
    );
    assert_eq!(
        identity,
        provider.cache_identity(),
        "{}: unstable identity",
        provider.name()
    );
}

/// Returns the last handle polled, if the call was asynchronous.
pub async fn submit_then_poll_reaches_media(
    provider: &dyn ClipProvider,
    spec: &ClipSpec,
    dest: &Path,
) -> Option<String> {
    let name = provider.name();
    let identity = super::unique("clip");
    let mut progress = provider
        .submit(spec, &identity, dest)
        .await
        .unwrap_or_else(|e| panic!("{name}: submit failed: {e}"));
    let mut handle = None;
    for _ in 0..MAX_POLLS {
        match progress {
            ClipProgress::Ready { media, .. } => {
                check_media(name, media, dest);
                return handle;
            }
            ClipProgress::Pending {
                handle: h,
                poll_after,
            } => {
                assert!(!h.is_empty(), "{name}: a pending call needs a handle");
                tokio::time::sleep(poll_after.min(Duration::from_millis(50))).await;
                progress = provider
                    .poll(&h, dest)
                    .await
                    .unwrap_or_else(|e| panic!("{name}: poll of {h} failed: {e}"));
                handle = Some(h);
            }
        }
    }
    panic!("{name}: no media after {MAX_POLLS} polls");
}

pub async fn a_second_submit_of_the_same_clip_is_harmless(
    provider: &dyn ClipProvider,
    spec: &ClipSpec,
    dest: &Path,
) {
    let identity = super::unique("again");
    for _ in 0..2 {
        provider
            .submit(spec, &identity, dest)
            .await
            .unwrap_or_else(|e| panic!("{}: a repeated submit failed: {e}", provider.name()));
    }
}

pub async fn cancel_of_an_ended_call_is_ok(provider: &dyn ClipProvider, handle: &str) {
    provider
        .cancel(handle)
        .await
        .unwrap_or_else(|e| panic!("{}: cancel of an ended call: {e}", provider.name()));
}

fn check_media(name: &str, media: ClipMedia, dest: &Path) {
    let bytes = std::fs::read(dest).unwrap_or_else(|e| panic!("{name}: no media at dest: {e}"));
    let is_video = bytes.get(4..8) == Some(b"ftyp") || bytes.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]);
    let is_image = bytes.starts_with(b"\x89PNG")
        || bytes.starts_with(&[0xFF, 0xD8, 0xFF])
        || (bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"WEBP"));
    match media {
        ClipMedia::Video => assert!(is_video, "{name}: said video, wrote something else"),
        ClipMedia::Image => assert!(is_image, "{name}: said image, wrote something else"),
    }
}
