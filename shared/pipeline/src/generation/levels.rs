//! A music asset's loudness, measured the first time a job uses its bytes and kept in the cache
//! by their SHA-256, so composing never listens to a bed before mixing it and a bed used again
//! (by this job's compose or any later job) is not measured again.

use super::steps::StepDeps;
use crate::error::StepError;
use sha2::{Digest, Sha256};
use std::path::Path;
use vidpipe_domain::keys;
use vidpipe_domain::loudness::Loudness;
use vidpipe_domain::ports::BlobError;

/// The loudness of the audio file at `local`: from the cache when these bytes were measured
/// before, else measured (one short audio-only ffmpeg run) and cached.
pub(crate) async fn music_loudness(deps: &StepDeps, local: &Path) -> Result<Loudness, StepError> {
    let key = keys::cached_loudness(&file_digest(local).await?);
    match deps.blobs.get_bytes(&key).await {
        // An unreadable record (a format from another version) is measured again and replaced.
        Ok(bytes) => {
            if let Ok(loudness) = serde_json::from_slice::<Loudness>(&bytes) {
                return Ok(loudness);
            }
        }
        Err(BlobError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let loudness = deps.media.loudness(local).await?;
    deps.blobs
        .put_bytes(&key, serde_json::to_vec(&loudness)?, "application/json")
        .await?;
    Ok(loudness)
}

/// SHA-256 of a file's bytes, in hex.
async fn file_digest(path: &Path) -> Result<String, StepError> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        let mut h = Sha256::new();
        std::io::copy(&mut std::fs::File::open(&path)?, &mut h)?;
        Ok(hex::encode(h.finalize()))
    })
    .await
    .map_err(|e| StepError::Internal(format!("hashing a music file: {e}")))?
    .map_err(StepError::Io)
}
