//! The media bucket as the API's per-route functions see it: narrower than [`S3BlobStore`] so a
//! function that only reads, or only presigns one PUT, links none of the S3 calls it may not make.
//! A trait object's vtable keeps every method of the type behind it, so the narrowing has to be a
//! type: a runtime flag on `S3BlobStore` would leave the whole client in every bootstrap.

use crate::s3::S3BlobStore;
use async_trait::async_trait;
use std::path::Path;
use std::time::Duration;
use vidpipe_domain::ErrorClass;
use vidpipe_domain::media::MediaSource;
use vidpipe_domain::ports::{BlobError, BlobMeta, BlobStore, SignedUpload, UploadSigner};

/// Reads only: `head`, `get_*` and presigned GETs. Writes fail as a permanent error naming the
/// key, which only a wiring mistake can reach (the function's role could not write either).
pub struct S3ReadOnly(pub S3BlobStore);

fn read_only(key: &str) -> BlobError {
    BlobError::Backend {
        message: format!("this function reads the media bucket only (write to {key:?} refused)"),
        class: ErrorClass::Permanent,
        source: None,
    }
}

#[async_trait]
impl BlobStore for S3ReadOnly {
    async fn put_file(&self, key: &str, _: &Path, _: &str) -> Result<(), BlobError> {
        Err(read_only(key))
    }
    async fn put_bytes(&self, key: &str, _: Vec<u8>, _: &str) -> Result<(), BlobError> {
        Err(read_only(key))
    }
    async fn get_to_file(&self, key: &str, dest: &Path) -> Result<(), BlobError> {
        BlobStore::get_to_file(&self.0, key, dest).await
    }
    async fn get_bytes(&self, key: &str) -> Result<Vec<u8>, BlobError> {
        BlobStore::get_bytes(&self.0, key).await
    }
    async fn head(&self, key: &str) -> Result<Option<BlobMeta>, BlobError> {
        BlobStore::head(&self.0, key).await
    }
    async fn copy(&self, _: &str, to: &str) -> Result<(), BlobError> {
        Err(read_only(to))
    }
    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        Err(read_only(key))
    }
    async fn list(&self, prefix: &str) -> Result<Vec<BlobMeta>, BlobError> {
        BlobStore::list(&self.0, prefix).await
    }
    async fn presign_get(&self, key: &str, ttl: Duration) -> Result<String, BlobError> {
        BlobStore::presign_get(&self.0, key, ttl).await
    }
    async fn media_source(&self, key: &str, ttl: Duration) -> Result<MediaSource, BlobError> {
        BlobStore::media_source(&self.0, key, ttl).await
    }
}

/// Reads as [`S3ReadOnly`], and writes only a timeline render's document,
/// `compositions/{id}/timeline.json` (what `POST /v1/compositions` stores for the state machine to
/// render); every other write is refused as a wiring mistake. Its role's PutObject is scoped to
/// the same keys.
pub struct S3Timelines(pub S3BlobStore);

fn is_timeline_document(key: &str) -> bool {
    let parts: Vec<&str> = key.split('/').collect();
    matches!(parts.as_slice(), ["compositions", id, "timeline.json"] if !id.is_empty())
}

#[async_trait]
impl BlobStore for S3Timelines {
    async fn put_file(&self, key: &str, _: &Path, _: &str) -> Result<(), BlobError> {
        Err(read_only(key))
    }
    async fn put_bytes(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<(), BlobError> {
        if !is_timeline_document(key) {
            return Err(read_only(key));
        }
        BlobStore::put_bytes(&self.0, key, bytes, content_type).await
    }
    async fn get_to_file(&self, key: &str, dest: &Path) -> Result<(), BlobError> {
        BlobStore::get_to_file(&self.0, key, dest).await
    }
    async fn get_bytes(&self, key: &str) -> Result<Vec<u8>, BlobError> {
        BlobStore::get_bytes(&self.0, key).await
    }
    async fn head(&self, key: &str) -> Result<Option<BlobMeta>, BlobError> {
        BlobStore::head(&self.0, key).await
    }
    async fn copy(&self, _: &str, to: &str) -> Result<(), BlobError> {
        Err(read_only(to))
    }
    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        Err(read_only(key))
    }
    async fn list(&self, prefix: &str) -> Result<Vec<BlobMeta>, BlobError> {
        BlobStore::list(&self.0, prefix).await
    }
    async fn presign_get(&self, key: &str, ttl: Duration) -> Result<String, BlobError> {
        BlobStore::presign_get(&self.0, key, ttl).await
    }
    async fn media_source(&self, key: &str, ttl: Duration) -> Result<MediaSource, BlobError> {
        BlobStore::media_source(&self.0, key, ttl).await
    }
}

/// Single presigned PUTs only (asset announcements): no multipart upload is ever created, so none
/// of its calls are linked. The trait's defaults refuse multipart as a store without it would.
pub struct S3PutSigner(pub S3BlobStore);

#[async_trait]
impl UploadSigner for S3PutSigner {
    async fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        size_bytes: u64,
        ttl: Duration,
    ) -> Result<SignedUpload, BlobError> {
        UploadSigner::presign_put(&self.0, key, content_type, size_bytes, ttl).await
    }
}

#[cfg(test)]
mod tests {
    use super::is_timeline_document;

    #[test]
    fn only_a_timeline_document_is_writable() {
        assert!(is_timeline_document(
            "compositions/cmp_0000000000000000000000000000abcd/timeline.json"
        ));
        for key in [
            "compositions/cmp_1/final.mp4",
            "compositions//timeline.json",
            "compositions/a/b/timeline.json",
            "uploads/timeline.json",
            "cache/compositions/x/timeline.json",
        ] {
            assert!(!is_timeline_document(key), "{key}");
        }
    }
}
