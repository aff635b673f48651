//! The S3 `BlobStore`: objects under the design's key layout in one bucket, streamed to and from
//! local files (media never sits whole in memory), encrypted on every write, with presigned GET
//! URLs for downloads and presigned PUTs for browser uploads.
//!
//! Puts of files above a threshold go through a multipart upload (parts uploaded a few at a
//! time, completed in order, aborted on any failure so no orphaned parts keep costing storage).

use crate::error::{class_of, code_of, describe, status_of};
use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::presigning::{PresignedRequest, PresigningConfig};
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, ServerSideEncryption,
};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_encode};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use vidpipe_domain::ErrorClass;
use vidpipe_domain::media::{MediaLocation, MediaSource};
use vidpipe_domain::ports::{
    BlobError, BlobMeta, BlobStore, SignedUpload, UploadSigner, validate_key,
};
use vidpipe_domain::upload::UploadedPart;

/// S3's smallest part (every part but the last must be at least this big).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// S3's largest part count; bigger files get bigger parts.
const MAX_PARTS: u64 = 10_000;
/// The longest a SigV4 presigned URL can live.
pub const MAX_PRESIGN_TTL: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// How objects are encrypted at rest. Every put and copy states it explicitly, so objects are
/// encrypted even in a bucket whose default encryption was changed or never set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Encryption {
    /// SSE-S3 (`AES256`): no key management, no extra cost.
    #[default]
    S3Managed,
    /// SSE-KMS (`aws:kms`) with the given key, or the account's `aws/s3` key when `None`.
    Kms { key_id: Option<String> },
}

/// When and how `put_file` switches to a multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultipartOptions {
    /// Files strictly larger than this are uploaded in parts.
    pub threshold: u64,
    /// Size of each part but the last; raised to [`MIN_PART_SIZE`] if below it.
    pub part_size: u64,
    /// Parts in flight at once.
    pub concurrency: usize,
}

impl Default for MultipartOptions {
    /// 16 MiB: big enough that the request overhead is noise, small enough that a failed part is
    /// cheap to resend and four in flight fit easily in a Lambda's memory.
    fn default() -> Self {
        Self {
            threshold: 16 * 1024 * 1024,
            part_size: 16 * 1024 * 1024,
            concurrency: 4,
        }
    }
}

/// A presigned upload: send `method` to `url` with exactly these headers (they are signed, so
/// leaving one out or changing it makes S3 refuse the upload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedUpload {
    pub url: String,
    pub method: String,
    pub headers: Vec<(String, String)>,
}

/// Objects in one S3 bucket. Cheap to clone: the SDK client is a handle.
///
/// Build the client with `force_path_style(true)` whenever the endpoint is overridden (moto,
/// s3s-fs): [`crate::config::s3_client`] does that.
#[derive(Debug, Clone)]
pub struct S3BlobStore {
    client: Client,
    bucket: String,
    encryption: Encryption,
    multipart: MultipartOptions,
}

impl S3BlobStore {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
            encryption: Encryption::default(),
            multipart: MultipartOptions::default(),
        }
    }

    pub fn with_encryption(mut self, encryption: Encryption) -> Self {
        self.encryption = encryption;
        self
    }

    /// Changes the multipart threshold and part size (the part size is raised to S3's minimum,
    /// and concurrency to at least one).
    pub fn with_multipart(mut self, options: MultipartOptions) -> Self {
        self.multipart = MultipartOptions {
            part_size: options.part_size.max(MIN_PART_SIZE),
            concurrency: options.concurrency.max(1),
            ..options
        };
        self
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn encryption(&self) -> &Encryption {
        &self.encryption
    }

    /// A URL a browser can PUT one object of exactly `size_bytes` bytes to for `ttl`, with the
    /// length, the content type and this store's encryption fixed by the signature: S3 refuses
    /// a body of any other length, and the uploader must send every header in
    /// [`PresignedUpload::headers`].
    pub async fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        size_bytes: u64,
        ttl: Duration,
    ) -> Result<PresignedUpload, BlobError> {
        validate_key(key)?;
        let (sse, kms_key) = self.sse();
        let presigned = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .content_length(signed_length(size_bytes)?)
            .server_side_encryption(sse)
            .set_ssekms_key_id(kms_key)
            .presigned(presigning(ttl)?)
            .await
            .map_err(|e| sdk_error(&format!("presign PutObject {key:?}"), e))?;
        Ok(upload_of(&presigned))
    }

    /// Starts a multipart upload a client sends the parts of itself ([`Self::presign_part`]);
    /// the object gets this store's encryption like every other put.
    pub async fn create_multipart_upload(
        &self,
        key: &str,
        content_type: &str,
    ) -> Result<String, BlobError> {
        validate_key(key)?;
        let (sse, kms_key) = self.sse();
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .server_side_encryption(sse)
            .set_ssekms_key_id(kms_key)
            .send()
            .await
            .map_err(|e| sdk_error(&format!("CreateMultipartUpload {key:?}"), e))?;
        created.upload_id.ok_or_else(|| {
            permanent(format!(
                "CreateMultipartUpload {key:?} returned no upload id"
            ))
        })
    }

    /// A URL for part `number` of a multipart upload, bound to the part's length.
    pub async fn presign_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        size_bytes: u64,
        ttl: Duration,
    ) -> Result<PresignedUpload, BlobError> {
        validate_key(key)?;
        let number = i32::try_from(number)
            .map_err(|_| permanent(format!("part number {number} is out of range")))?;
        let presigned = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .content_length(signed_length(size_bytes)?)
            .presigned(presigning(ttl)?)
            .await
            .map_err(|e| sdk_error(&format!("presign UploadPart {number} of {key:?}"), e))?;
        Ok(upload_of(&presigned))
    }

    /// The parts S3 holds for a multipart upload, in number order.
    pub async fn list_upload_parts(
        &self,
        key: &str,
        upload_id: &str,
    ) -> Result<Vec<UploadedPart>, BlobError> {
        validate_key(key)?;
        let mut parts = Vec::new();
        let mut marker: Option<String> = None;
        // A page holds at most 1000 parts; an upload has at most 10 000.
        for _ in 0..=MAX_PARTS / 1000 {
            let out = self
                .client
                .list_parts()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .set_part_number_marker(marker.take())
                .send()
                .await
                .map_err(|e| sdk_error(&format!("ListParts {key:?}"), e))?;
            for p in out.parts() {
                parts.push(UploadedPart {
                    number: p
                        .part_number()
                        .and_then(|n| u32::try_from(n).ok())
                        .unwrap_or(0),
                    etag: p.e_tag().unwrap_or_default().to_owned(),
                    size_bytes: p.size().and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
                });
            }
            match (out.is_truncated(), out.next_part_number_marker()) {
                (Some(true), Some(next)) => marker = Some(next.to_owned()),
                _ => break,
            }
        }
        parts.sort_by_key(|p| p.number);
        Ok(parts)
    }

    /// Joins the parts into the object.
    pub async fn complete_multipart_upload(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[UploadedPart],
    ) -> Result<(), BlobError> {
        validate_key(key)?;
        let mut completed = Vec::with_capacity(parts.len());
        for p in parts {
            let number = i32::try_from(p.number)
                .map_err(|_| permanent(format!("part number {} is out of range", p.number)))?;
            completed.push(
                CompletedPart::builder()
                    .part_number(number)
                    .e_tag(&p.etag)
                    .build(),
            );
        }
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(completed))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| sdk_error(&format!("CompleteMultipartUpload {key:?}"), e))?;
        Ok(())
    }

    /// Drops a multipart upload's parts; `Ok` when the upload is already gone.
    pub async fn abort_multipart_upload(
        &self,
        key: &str,
        upload_id: &str,
    ) -> Result<(), BlobError> {
        validate_key(key)?;
        match self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error().is_some_and(|s| s.is_no_such_upload())
                    || status_of(&e) == Some(404) =>
            {
                Ok(())
            }
            Err(e) => Err(sdk_error(&format!("AbortMultipartUpload {key:?}"), e)),
        }
    }

    fn sse(&self) -> (ServerSideEncryption, Option<String>) {
        match &self.encryption {
            Encryption::S3Managed => (ServerSideEncryption::Aes256, None),
            Encryption::Kms { key_id } => (ServerSideEncryption::AwsKms, key_id.clone()),
        }
    }

    async fn put_stream(
        &self,
        key: &str,
        body: ByteStream,
        content_type: &str,
    ) -> Result<(), BlobError> {
        let (sse, kms_key) = self.sse();
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(body)
            .content_type(content_type)
            .server_side_encryption(sse)
            .set_ssekms_key_id(kms_key)
            .send()
            .await
            .map_err(|e| sdk_error(&format!("PutObject {key:?}"), e))?;
        Ok(())
    }

    async fn get_object(&self, key: &str) -> Result<GetObjectOutput, BlobError> {
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => Ok(out),
            Err(e)
                if e.as_service_error().is_some_and(|s| s.is_no_such_key())
                    || status_of(&e) == Some(404) =>
            {
                Err(BlobError::NotFound(key.to_owned()))
            }
            Err(e) => Err(sdk_error(&format!("GetObject {key:?}"), e)),
        }
    }

    /// Uploads `src` (of `size` bytes) in parts; on any failure the upload is aborted so S3
    /// drops the parts already sent.
    async fn put_multipart(
        &self,
        key: &str,
        src: &Path,
        size: u64,
        content_type: &str,
    ) -> Result<(), BlobError> {
        let (sse, kms_key) = self.sse();
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .server_side_encryption(sse)
            .set_ssekms_key_id(kms_key)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .send()
            .await
            .map_err(|e| sdk_error(&format!("CreateMultipartUpload {key:?}"), e))?;
        let upload_id = created.upload_id.ok_or_else(|| {
            permanent(format!(
                "CreateMultipartUpload {key:?} returned no upload id"
            ))
        })?;

        match self.upload_parts(key, src, size, &upload_id).await {
            Ok(parts) => {
                let completed = self
                    .client
                    .complete_multipart_upload()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .multipart_upload(
                        CompletedMultipartUpload::builder()
                            .set_parts(Some(parts))
                            .build(),
                    )
                    .send()
                    .await;
                match completed {
                    Ok(_) => Ok(()),
                    Err(e) => {
                        let err = sdk_error(&format!("CompleteMultipartUpload {key:?}"), e);
                        self.abort_multipart(key, &upload_id).await;
                        Err(err)
                    }
                }
            }
            Err(err) => {
                self.abort_multipart(key, &upload_id).await;
                Err(err)
            }
        }
    }

    async fn upload_parts(
        &self,
        key: &str,
        src: &Path,
        size: u64,
        upload_id: &str,
    ) -> Result<Vec<CompletedPart>, BlobError> {
        // Parts grow past the configured size only when the file would need more than S3 allows.
        let part_size = self.multipart.part_size.max(size.div_ceil(MAX_PARTS));
        let part_count = size.div_ceil(part_size).max(1);
        let shared = Arc::new(PartTarget {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            upload_id: upload_id.to_owned(),
            src: src.to_owned(),
        });
        let mut tasks = tokio::task::JoinSet::new();
        let mut parts = Vec::with_capacity(part_count as usize);
        let mut next = 0u64;
        loop {
            while next < part_count && tasks.len() < self.multipart.concurrency {
                let offset = next * part_size;
                let length = part_size.min(size - offset);
                // Part numbers start at 1 and stay within 10 000, so they always fit an i32.
                let number = i32::try_from(next + 1)
                    .map_err(|_| permanent(format!("too many parts for {key:?}")))?;
                tasks.spawn(Arc::clone(&shared).upload_part(number, offset, length));
                next += 1;
            }
            match tasks.join_next().await {
                Some(Ok(Ok(part))) => parts.push(part),
                Some(Ok(Err(err))) => {
                    tasks.abort_all();
                    return Err(err);
                }
                Some(Err(join)) => {
                    tasks.abort_all();
                    return Err(BlobError::backend(
                        format!("a part upload of {key:?} did not finish"),
                        ErrorClass::Retryable,
                        join,
                    ));
                }
                None => break,
            }
        }
        parts.sort_by_key(|p| p.part_number());
        Ok(parts)
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) {
        let aborted = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await;
        if let Err(e) = aborted {
            // The bucket's lifecycle rule for incomplete uploads is the backstop.
            tracing::warn!(key, upload_id, error = %describe("AbortMultipartUpload", &e), "multipart upload left incomplete");
        }
    }
}

/// The port hands the caller the signed headers too, so the upload carries this store's
/// encryption like every other put.
#[async_trait]
impl UploadSigner for S3BlobStore {
    async fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        size_bytes: u64,
        ttl: Duration,
    ) -> Result<SignedUpload, BlobError> {
        let signed = S3BlobStore::presign_put(self, key, content_type, size_bytes, ttl).await?;
        Ok(SignedUpload {
            url: signed.url,
            headers: signed.headers,
        })
    }

    async fn create_multipart(&self, key: &str, content_type: &str) -> Result<String, BlobError> {
        self.create_multipart_upload(key, content_type).await
    }

    async fn presign_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        size_bytes: u64,
        ttl: Duration,
    ) -> Result<SignedUpload, BlobError> {
        let signed =
            S3BlobStore::presign_part(self, key, upload_id, part_number, size_bytes, ttl).await?;
        Ok(SignedUpload {
            url: signed.url,
            headers: signed.headers,
        })
    }

    async fn list_parts(&self, key: &str, upload_id: &str) -> Result<Vec<UploadedPart>, BlobError> {
        self.list_upload_parts(key, upload_id).await
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[UploadedPart],
    ) -> Result<(), BlobError> {
        self.complete_multipart_upload(key, upload_id, parts).await
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), BlobError> {
        self.abort_multipart_upload(key, upload_id).await
    }
}

/// A length as the SDK takes it.
fn signed_length(size_bytes: u64) -> Result<i64, BlobError> {
    i64::try_from(size_bytes).map_err(|_| permanent(format!("{size_bytes} bytes is too large")))
}

/// What every part of one multipart upload shares, so each part can run as its own task.
struct PartTarget {
    client: Client,
    bucket: String,
    key: String,
    upload_id: String,
    src: PathBuf,
}

impl PartTarget {
    async fn upload_part(
        self: Arc<Self>,
        number: i32,
        offset: u64,
        length: u64,
    ) -> Result<CompletedPart, BlobError> {
        // A path-backed body: the SDK re-reads the range from disk if it retries the request.
        let body = ByteStream::read_from()
            .path(&self.src)
            .offset(offset)
            .length(Length::Exact(length))
            .build()
            .await
            .map_err(|e| {
                BlobError::backend(
                    format!("cannot read {} for part {number}", self.src.display()),
                    ErrorClass::Retryable,
                    e,
                )
            })?;
        let out = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .part_number(number)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .body(body)
            .send()
            .await
            .map_err(|e| sdk_error(&format!("UploadPart {} of {:?}", number, self.key), e))?;
        let e_tag = out.e_tag.ok_or_else(|| {
            permanent(format!(
                "UploadPart {number} of {:?} returned no ETag",
                self.key
            ))
        })?;
        Ok(CompletedPart::builder()
            .part_number(number)
            .e_tag(e_tag)
            .set_checksum_crc32(out.checksum_crc32)
            .build())
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn put_file(&self, key: &str, src: &Path, content_type: &str) -> Result<(), BlobError> {
        validate_key(key)?;
        let size = tokio::fs::metadata(src)
            .await
            .map_err(|e| io_error(&format!("cannot read {}", src.display()), e))?
            .len();
        if size > self.multipart.threshold {
            return self.put_multipart(key, src, size, content_type).await;
        }
        let body = ByteStream::from_path(src).await.map_err(|e| {
            BlobError::backend(
                format!("cannot read {}", src.display()),
                ErrorClass::Retryable,
                e,
            )
        })?;
        self.put_stream(key, body, content_type).await
    }

    async fn put_bytes(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<(), BlobError> {
        validate_key(key)?;
        self.put_stream(key, ByteStream::from(bytes), content_type)
            .await
    }

    async fn get_to_file(&self, key: &str, dest: &Path) -> Result<(), BlobError> {
        validate_key(key)?;
        let mut body = self.get_object(key).await?.body;
        if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| io_error(&format!("cannot create {}", parent.display()), e))?;
        }
        // Streamed into a sibling file and renamed over `dest` at the end, so a download cut
        // short never leaves a truncated file where the caller expects the object.
        let partial = partial_path(dest)?;
        let result = async {
            let mut file = tokio::fs::File::create(&partial)
                .await
                .map_err(|e| io_error(&format!("cannot create {}", partial.display()), e))?;
            while let Some(chunk) = body.try_next().await.map_err(|e| {
                BlobError::backend(
                    format!("download of {key:?} was cut short"),
                    ErrorClass::Retryable,
                    e,
                )
            })? {
                file.write_all(&chunk)
                    .await
                    .map_err(|e| io_error(&format!("cannot write {}", partial.display()), e))?;
            }
            file.flush()
                .await
                .map_err(|e| io_error(&format!("cannot write {}", partial.display()), e))?;
            drop(file);
            tokio::fs::rename(&partial, dest).await.map_err(|e| {
                io_error(
                    &format!("cannot move the download to {}", dest.display()),
                    e,
                )
            })
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&partial).await;
        }
        result
    }

    async fn get_bytes(&self, key: &str) -> Result<Vec<u8>, BlobError> {
        validate_key(key)?;
        let out = self.get_object(key).await?;
        let bytes = out.body.collect().await.map_err(|e| {
            BlobError::backend(
                format!("download of {key:?} was cut short"),
                ErrorClass::Retryable,
                e,
            )
        })?;
        Ok(bytes.into_bytes().to_vec())
    }

    async fn head(&self, key: &str) -> Result<Option<BlobMeta>, BlobError> {
        validate_key(key)?;
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => {
                let size = out.content_length.unwrap_or(0);
                let size_bytes = u64::try_from(size)
                    .map_err(|_| permanent(format!("HeadObject {key:?} reported size {size}")))?;
                Ok(Some(BlobMeta {
                    key: key.to_owned(),
                    size_bytes,
                    content_type: out.content_type,
                }))
            }
            // HEAD answers carry no body, so "not found" is the status alone.
            Err(e)
                if e.as_service_error().is_some_and(|s| s.is_not_found())
                    || status_of(&e) == Some(404) =>
            {
                Ok(None)
            }
            Err(e) => Err(sdk_error(&format!("HeadObject {key:?}"), e)),
        }
    }

    async fn copy(&self, from: &str, to: &str) -> Result<(), BlobError> {
        validate_key(from)?;
        validate_key(to)?;
        let (sse, kms_key) = self.sse();
        // Server-side: the bytes never leave S3. The content type travels with the default
        // COPY metadata directive; encryption is restated because a copy does not inherit it.
        // Naming a checksum algorithm makes S3 compute a fresh whole-object checksum for the
        // copy; otherwise the copy of a multipart object can carry the source's per-part
        // (composite) checksum, which moto then serves as if it covered the whole object and the
        // SDK's response validation rejects the download.
        let copied = self
            .client
            .copy_object()
            .bucket(&self.bucket)
            .key(to)
            .copy_source(format!("{}/{}", self.bucket, encode_copy_source(from)))
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .server_side_encryption(sse)
            .set_ssekms_key_id(kms_key)
            .send()
            .await;
        match copied {
            Ok(_) => Ok(()),
            Err(e) if code_of(&e) == Some("NoSuchKey") || status_of(&e) == Some(404) => {
                Err(BlobError::NotFound(from.to_owned()))
            }
            Err(e) => Err(sdk_error(&format!("CopyObject {from:?} -> {to:?}"), e)),
        }
    }

    /// A copy onto itself: S3's lifecycle counts an object's age from its last write, so the
    /// copy restarts it. S3 refuses a self-copy that changes nothing, hence the REPLACE
    /// directive, restating the content type and metadata the object had.
    async fn renew(&self, key: &str) -> Result<(), BlobError> {
        validate_key(key)?;
        let head = match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(h) => h,
            Err(e)
                if e.as_service_error().is_some_and(|s| s.is_not_found())
                    || status_of(&e) == Some(404) =>
            {
                return Err(BlobError::NotFound(key.to_owned()));
            }
            Err(e) => return Err(sdk_error(&format!("HeadObject {key:?}"), e)),
        };
        let (sse, kms_key) = self.sse();
        self.client
            .copy_object()
            .bucket(&self.bucket)
            .key(key)
            .copy_source(format!("{}/{}", self.bucket, encode_copy_source(key)))
            .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
            .set_content_type(head.content_type)
            .set_metadata(head.metadata)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .server_side_encryption(sse)
            .set_ssekms_key_id(kms_key)
            .send()
            .await
            .map_err(|e| sdk_error(&format!("CopyObject {key:?} onto itself"), e))?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        validate_key(key)?;
        // S3 answers 204 whether or not the key existed, which is the contract.
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| sdk_error(&format!("DeleteObject {key:?}"), e))?;
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<BlobMeta>, BlobError> {
        check_prefix(prefix)?;
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .set_prefix((!prefix.is_empty()).then(|| prefix.to_owned()))
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| sdk_error(&format!("ListObjectsV2 {prefix:?}"), e))?;
            for object in out.contents.unwrap_or_default() {
                let key = object.key.ok_or_else(|| {
                    permanent(format!(
                        "ListObjectsV2 {prefix:?} returned an object without a key"
                    ))
                })?;
                let size = object.size.unwrap_or(0);
                let size_bytes = u64::try_from(size).map_err(|_| {
                    permanent(format!("ListObjectsV2 reported size {size} for {key:?}"))
                })?;
                // The listing carries no content type; `head` reports it.
                found.push(BlobMeta {
                    key,
                    size_bytes,
                    content_type: None,
                });
            }
            match out.next_continuation_token {
                Some(next) if out.is_truncated == Some(true) => token = Some(next),
                _ => break,
            }
        }
        // S3 lists in UTF-8 byte order already; sorting makes the contract independent of that.
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }

    async fn presign_get(&self, key: &str, ttl: Duration) -> Result<String, BlobError> {
        validate_key(key)?;
        let presigned = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(presigning(ttl)?)
            .await
            .map_err(|e| sdk_error(&format!("presign GetObject {key:?}"), e))?;
        Ok(presigned.uri().to_owned())
    }

    /// A presigned GET: ffmpeg reads only the byte ranges it needs, and nothing is downloaded
    /// into the function's `/tmp` first. The object is checked first, since a presigned URL of a
    /// missing object would only fail inside ffmpeg, as a confusing "invalid media".
    async fn media_source(&self, key: &str, ttl: Duration) -> Result<MediaSource, BlobError> {
        if self.head(key).await?.is_none() {
            return Err(BlobError::NotFound(key.to_owned()));
        }
        Ok(MediaSource {
            key: key.to_owned(),
            location: MediaLocation::Url(self.presign_get(key, ttl).await?),
        })
    }
}

/// A listing prefix is a key cut anywhere: the part up to its last `/` must be a valid key (or
/// empty), and the partial last segment may be anything but a backslash or NUL — the same rule
/// as the filesystem store, so a prefix never escapes the store's root on either backend.
fn check_prefix(prefix: &str) -> Result<(), BlobError> {
    let (dir, partial) = prefix.rsplit_once('/').unwrap_or(("", prefix));
    let invalid = || BlobError::InvalidKey(prefix.to_owned());
    if prefix.starts_with('/') || partial.contains(['\\', '\0']) {
        return Err(invalid());
    }
    if prefix.contains('/') && validate_key(dir).is_err() {
        return Err(invalid());
    }
    Ok(())
}

/// `x-amz-copy-source` is `bucket/key` with the key URL-encoded (keys may hold spaces, `#`, `?`);
/// `/` stays literal.
fn encode_copy_source(key: &str) -> String {
    percent_encode(key.as_bytes(), COPY_SOURCE_KEY).to_string()
}

/// What `x-amz-copy-source` may carry unencoded: the unreserved characters and `/`.
const COPY_SOURCE_KEY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn presigning(ttl: Duration) -> Result<PresigningConfig, BlobError> {
    if ttl > MAX_PRESIGN_TTL {
        return Err(permanent(format!(
            "a presigned URL lives at most 7 days, not {}s",
            ttl.as_secs()
        )));
    }
    PresigningConfig::expires_in(ttl)
        .map_err(|e| BlobError::backend("invalid presigning ttl", ErrorClass::Permanent, e))
}

/// The request as a client must send it: exactly the headers the signature covers (its
/// `X-Amz-SignedHeaders`, less `host`, which the URL carries), such as the content type and
/// length and the encryption. Anything else the SDK added while signing in this process (a
/// Lambda's `x-amzn-trace-id`, which SigV4 never signs) is this process's, not the client's.
fn upload_of(presigned: &PresignedRequest) -> PresignedUpload {
    PresignedUpload {
        url: presigned.uri().to_owned(),
        method: presigned.method().to_owned(),
        headers: client_headers(presigned.uri(), presigned.headers()),
    }
}

/// The headers a client must repeat: those the signature covers (`X-Amz-SignedHeaders` in the
/// URL), less `host`, which every HTTP client sends from the URL itself. The SDK's request also
/// carries headers of our own making that are not signed (in Lambda, `x-amzn-trace-id` with this
/// invocation's trace), which are no business of the uploader's.
fn client_headers<'a>(
    url: &str,
    headers: impl Iterator<Item = (&'a str, &'a str)>,
) -> Vec<(String, String)> {
    let signed: Vec<String> = url
        .split_once('?')
        .map(|(_, query)| query)
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("X-Amz-SignedHeaders="))
        .map(|list| {
            list.replace("%3B", ";")
                .replace("%3b", ";")
                .split(';')
                .map(str::to_ascii_lowercase)
                .collect()
        })
        .unwrap_or_default();
    headers
        .filter(|(name, _)| {
            let name = name.to_ascii_lowercase();
            name != "host" && signed.contains(&name)
        })
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// A unique sibling of `dest` to download into: hidden, and never one another download uses.
fn partial_path(dest: &Path) -> Result<PathBuf, BlobError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = dest
        .file_name()
        .ok_or_else(|| permanent(format!("{} names no file", dest.display())))?;
    let unique = format!(
        ".{}.{}-{}.part",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    Ok(dest.with_file_name(unique))
}

fn sdk_error<E>(operation: &str, err: SdkError<E, HttpResponse>) -> BlobError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    BlobError::Backend {
        message: describe(operation, &err),
        class: class_of(&err),
        source: Some(Box::new(err)),
    }
}

/// Local i/o: a full disk or a busy file may pass, a missing source will not.
fn io_error(message: &str, e: std::io::Error) -> BlobError {
    let class = match e.kind() {
        std::io::ErrorKind::NotFound
        | std::io::ErrorKind::PermissionDenied
        | std::io::ErrorKind::InvalidInput => ErrorClass::Permanent,
        _ => ErrorClass::Retryable,
    };
    BlobError::backend(message, class, e)
}

fn permanent(message: String) -> BlobError {
    BlobError::Backend {
        message,
        class: ErrorClass::Permanent,
        source: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client that signs with fixed credentials and never sends anything: presigning is local.
    fn offline_store() -> S3BlobStore {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "AKIDEXAMPLE",
                "secret",
                None,
                None,
                "test",
            ))
            .build();
        S3BlobStore::new(Client::from_conf(config), "media")
    }

    #[tokio::test]
    async fn a_presigned_put_signs_its_length_and_hands_out_only_signed_headers() {
        let store = offline_store();
        let up = store
            .presign_put(
                "raw/acme/launch/a.mp4",
                "video/mp4",
                4096,
                Duration::from_secs(60),
            )
            .await
            .unwrap();
        let query = up.url.split_once('?').unwrap().1;
        let signed: Vec<String> = query
            .split('&')
            .find_map(|p| p.strip_prefix("X-Amz-SignedHeaders="))
            .unwrap()
            .replace("%3B", ";")
            .split(';')
            .map(str::to_owned)
            .collect();
        for h in [
            "content-length",
            "content-type",
            "x-amz-server-side-encryption",
        ] {
            assert!(signed.iter().any(|s| s == h), "{h} unsigned: {signed:?}");
        }
        let mut headers = up.headers.clone();
        headers.sort();
        assert_eq!(
            headers,
            [
                ("content-length".to_owned(), "4096".to_owned()),
                ("content-type".to_owned(), "video/mp4".to_owned()),
                (
                    "x-amz-server-side-encryption".to_owned(),
                    "AES256".to_owned()
                ),
            ]
        );
        let part = store
            .presign_part(
                "raw/acme/launch/a.mp4",
                "up-1",
                2,
                5 << 20,
                Duration::from_secs(60),
            )
            .await
            .unwrap();
        assert!(part.url.contains("partNumber=2") && part.url.contains("uploadId=up-1"));
        assert_eq!(
            part.headers,
            [("content-length".to_owned(), (5u64 << 20).to_string())]
        );

        // A header the SDK (or this process) adds but SigV4 does not sign, such as a Lambda's
        // trace id, is never handed to the client.
        let traced = store
            .client
            .put_object()
            .bucket("media")
            .key("raw/acme/launch/b.mp4")
            .content_length(10)
            .customize()
            .mutate_request(|r| {
                r.headers_mut().insert(
                    "x-amzn-trace-id",
                    "Root=1-5759e988-bd862e3fe1be46a994272793",
                );
            })
            .presigned(presigning(Duration::from_secs(60)).unwrap())
            .await
            .unwrap();
        assert!(traced.headers().any(|(k, _)| k == "x-amzn-trace-id"));
        let handed = upload_of(&traced);
        assert!(
            handed.headers.iter().all(|(k, _)| k != "x-amzn-trace-id"),
            "{:?}",
            handed.headers
        );
        assert!(handed.headers.iter().any(|(k, _)| k == "content-length"));
    }

    #[test]
    fn prefixes_follow_the_key_rules() {
        for ok in ["", "a", "a/", "a/b", "a/b/", "conformance/x/a/b"] {
            assert!(check_prefix(ok).is_ok(), "{ok:?}");
        }
        for bad in ["../x", "/abs", "a//b", "a/./b", "a/../b", "a\\b", "a/b\\"] {
            assert!(
                matches!(check_prefix(bad), Err(BlobError::InvalidKey(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn uploaders_get_only_the_signed_headers_they_must_send() {
        let url = "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256\
                   &X-Amz-SignedHeaders=content-type%3Bhost%3Bx-amz-server-side-encryption\
                   &X-Amz-Signature=ab";
        let headers = [
            ("content-type", "image/png"),
            ("host", "b.s3.amazonaws.com"),
            ("x-amz-server-side-encryption", "AES256"),
            (
                "x-amzn-trace-id",
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
            ),
            ("x-amz-user-agent", "aws-sdk-rust"),
        ];
        assert_eq!(
            client_headers(url, headers.into_iter()),
            vec![
                ("content-type".to_owned(), "image/png".to_owned()),
                (
                    "x-amz-server-side-encryption".to_owned(),
                    "AES256".to_owned()
                ),
            ]
        );
        // No signature list, nothing to repeat.
        assert!(client_headers("https://b/k", headers.into_iter()).is_empty());
    }

    #[tokio::test]
    async fn a_real_presigned_put_hands_out_its_signed_headers_only() {
        let client = Client::from_conf(
            aws_sdk_s3::Config::builder()
                .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
                .region(aws_sdk_s3::config::Region::new("eu-west-1"))
                .credentials_provider(aws_sdk_s3::config::Credentials::new(
                    "AKIDEXAMPLE",
                    "secret",
                    None,
                    None,
                    "test",
                ))
                .build(),
        );
        let store = S3BlobStore::new(client, "b");
        let upload = store
            .presign_put("uploads/t/a.png", "image/png", 5, Duration::from_secs(60))
            .await
            .expect("presign");
        let mut names: Vec<&str> = upload.headers.iter().map(|(k, _)| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "content-length",
                "content-type",
                "x-amz-server-side-encryption"
            ]
        );
        assert!(upload.url.contains("X-Amz-Signature="), "{}", upload.url);
    }

    #[test]
    fn copy_sources_are_url_encoded() {
        assert_eq!(
            encode_copy_source("a/final file #1.mp4"),
            "a/final%20file%20%231.mp4"
        );
        assert_eq!(encode_copy_source("a/b_c-d.~e"), "a/b_c-d.~e");
    }

    #[test]
    fn multipart_options_respect_s3_minimums() {
        let client = Client::from_conf(
            aws_sdk_s3::Config::builder()
                .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
                .build(),
        );
        let store = S3BlobStore::new(client, "b").with_multipart(MultipartOptions {
            threshold: 1,
            part_size: 1,
            concurrency: 0,
        });
        assert_eq!(store.multipart.part_size, MIN_PART_SIZE);
        assert_eq!(store.multipart.concurrency, 1);
    }
}
