//! What S3 gives the stack, on one machine: URLs that read or write one object of the embedded
//! blob store without credentials, signed (HMAC-SHA256 under a key of this process) and bound
//! to a method, an expiry and, for writes, the content type and exact length; multipart uploads
//! whose parts are staged beside the store and joined on completion; and the upload trigger: an
//! object arriving under `raw/` starts its processing, as `s3:ObjectCreated` does in AWS.
//!
//! [`Files`] is the API's `UploadSigner`, and [`SignedBlobs`] the blob store the API sees, whose
//! `presign_get` gives these URLs instead of the `file://` paths the CLI prints.

use crate::Shared;
use crate::processing::LocalProcessing;
use async_trait::async_trait;
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use ring::hmac;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tower::ServiceExt;
use vidpipe_domain::ErrorClass;
use vidpipe_domain::media::MediaSource;
use vidpipe_domain::ports::{
    BlobError, BlobMeta, BlobStore, SignedUpload, UploadSigner, validate_key,
};
use vidpipe_domain::upload::UploadedPart;
use vidpipe_pipeline::embedded::FsBlobStore;

/// Characters left as they are in a key's path: RFC 3986's unreserved ones and `/`.
const KEY_PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// What one signature covers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Grant {
    method: &'static str,
    key: String,
    expires: i64,
    content_type: String,
    length: Option<u64>,
    upload: Option<String>,
    part: Option<u32>,
}

impl Grant {
    fn canonical(&self) -> String {
        format!(
            "{}\n{}\n{}\n{}\n{}\n{}\n{}",
            self.method,
            self.key,
            self.expires,
            self.content_type,
            self.length.map(|l| l.to_string()).unwrap_or_default(),
            self.upload.as_deref().unwrap_or_default(),
            self.part.map(|p| p.to_string()).unwrap_or_default(),
        )
    }
}

pub struct Files {
    blobs: Arc<FsBlobStore>,
    parts_root: PathBuf,
    origin: String,
    key: hmac::Key,
    processing: Arc<LocalProcessing>,
}

impl Files {
    /// `origin` is `http://host:port`, the start of every URL handed out.
    pub fn new(
        blobs: Arc<FsBlobStore>,
        parts_root: PathBuf,
        origin: String,
        processing: Arc<LocalProcessing>,
    ) -> Result<Self, String> {
        let random = ring::rand::SystemRandom::new();
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &random)
            .map_err(|_| "cannot draw a URL signing key".to_owned())?;
        std::fs::create_dir_all(parts_root.join("tmp"))
            .map_err(|e| format!("cannot create {}: {e}", parts_root.display()))?;
        Ok(Files {
            blobs,
            parts_root,
            origin,
            key,
            processing,
        })
    }

    /// A signed download URL for `key`, valid for `ttl`.
    pub fn signed_get(&self, key: &str, ttl: Duration) -> String {
        self.url(&Grant {
            method: "GET",
            key: key.to_owned(),
            expires: Self::expiry(ttl),
            ..Grant::default()
        })
    }

    pub fn public_origin(&self) -> &str {
        &self.origin
    }

    fn url(&self, grant: &Grant) -> String {
        let sig = hex::encode(hmac::sign(&self.key, grant.canonical().as_bytes()).as_ref());
        let mut url = format!(
            "{}/files/{}?expires={}",
            self.origin,
            utf8_percent_encode(&grant.key, KEY_PATH),
            grant.expires
        );
        let q = |v: &str| utf8_percent_encode(v, NON_ALPHANUMERIC).to_string();
        if !grant.content_type.is_empty() {
            url.push_str(&format!("&type={}", q(&grant.content_type)));
        }
        if let Some(l) = grant.length {
            url.push_str(&format!("&length={l}"));
        }
        if let Some(u) = &grant.upload {
            url.push_str(&format!("&upload={}", q(u)));
        }
        if let Some(p) = grant.part {
            url.push_str(&format!("&part={p}"));
        }
        url.push_str(&format!("&sig={sig}"));
        url
    }

    /// The grant a request's URL states, if its signature is ours and it has not expired.
    fn verify(
        &self,
        method: &'static str,
        key: &str,
        query: &HashMap<String, String>,
    ) -> Result<Grant, (StatusCode, String)> {
        let denied = |why: &str| (StatusCode::FORBIDDEN, format!("{why}\n"));
        let number = |name: &str| -> Result<Option<u64>, (StatusCode, String)> {
            query
                .get(name)
                .map(|v| v.parse::<u64>().map_err(|_| denied("malformed URL")))
                .transpose()
        };
        let grant = Grant {
            method,
            key: key.to_owned(),
            expires: number("expires")?.ok_or_else(|| denied("unsigned URL"))? as i64,
            content_type: query.get("type").cloned().unwrap_or_default(),
            length: number("length")?,
            upload: query.get("upload").cloned(),
            part: number("part")?.map(|p| p as u32),
        };
        let sig = query
            .get("sig")
            .and_then(|s| hex::decode(s).ok())
            .ok_or_else(|| denied("unsigned URL"))?;
        hmac::verify(&self.key, grant.canonical().as_bytes(), &sig)
            .map_err(|_| denied("the URL's signature does not match"))?;
        if chrono::Utc::now().timestamp() > grant.expires {
            return Err(denied("the URL has expired"));
        }
        Ok(grant)
    }

    fn expiry(ttl: Duration) -> i64 {
        chrono::Utc::now().timestamp() + ttl.as_secs() as i64
    }

    fn upload_dir(&self, upload_id: &str) -> Result<PathBuf, BlobError> {
        // Our own ids are hex; anything else cannot name a folder of ours.
        if upload_id.is_empty() || !upload_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(BlobError::InvalidKey(format!("upload id {upload_id:?}")));
        }
        Ok(self.parts_root.join(upload_id))
    }

    /// A fresh staging file beside the parts.
    fn staging(&self) -> PathBuf {
        self.parts_root
            .join("tmp")
            .join(uuid::Uuid::now_v7().simple().to_string())
    }

    /// Publishes a staged file as `key` and, under `raw/`, starts its processing.
    async fn land(
        &self,
        key: &str,
        staged: &Path,
        content_type: &str,
        digest: String,
    ) -> Result<(), BlobError> {
        let put = self.blobs.put_file(key, staged, content_type).await;
        let _ = tokio::fs::remove_file(staged).await;
        put?;
        if key.starts_with("raw/") {
            self.processing.arrived(key, digest).await;
        }
        Ok(())
    }
}

fn io(what: &str, e: std::io::Error) -> BlobError {
    BlobError::Backend {
        message: format!("{what}: {e}"),
        class: ErrorClass::Retryable,
        source: Some(Box::new(e)),
    }
}

#[async_trait]
impl UploadSigner for Files {
    async fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        size_bytes: u64,
        ttl: Duration,
    ) -> Result<SignedUpload, BlobError> {
        validate_key(key)?;
        let url = self.url(&Grant {
            method: "PUT",
            key: key.to_owned(),
            expires: Self::expiry(ttl),
            content_type: content_type.to_owned(),
            length: Some(size_bytes),
            ..Grant::default()
        });
        Ok(SignedUpload {
            url,
            headers: vec![
                ("content-type".into(), content_type.to_owned()),
                ("content-length".into(), size_bytes.to_string()),
            ],
        })
    }

    async fn create_multipart(&self, key: &str, _content_type: &str) -> Result<String, BlobError> {
        validate_key(key)?;
        let id = uuid::Uuid::now_v7().simple().to_string();
        let dir = self.upload_dir(&id)?;
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| io("cannot stage a multipart upload", e))?;
        tokio::fs::write(dir.join("key"), key)
            .await
            .map_err(|e| io("cannot stage a multipart upload", e))?;
        Ok(id)
    }

    async fn presign_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        size_bytes: u64,
        ttl: Duration,
    ) -> Result<SignedUpload, BlobError> {
        validate_key(key)?;
        self.upload_dir(upload_id)?;
        let url = self.url(&Grant {
            method: "PUT",
            key: key.to_owned(),
            expires: Self::expiry(ttl),
            length: Some(size_bytes),
            upload: Some(upload_id.to_owned()),
            part: Some(part_number),
            ..Grant::default()
        });
        Ok(SignedUpload {
            url,
            headers: vec![("content-length".into(), size_bytes.to_string())],
        })
    }

    async fn list_parts(
        &self,
        _key: &str,
        upload_id: &str,
    ) -> Result<Vec<UploadedPart>, BlobError> {
        let dir = self.upload_dir(upload_id)?;
        let mut parts = Vec::new();
        let mut entries = match tokio::fs::read_dir(&dir).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(parts),
            Err(e) => return Err(io("cannot list the parts", e)),
        };
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| io("cannot list the parts", e))?
        {
            let name = entry.file_name();
            let Some(number) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".part"))
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let size_bytes = entry
                .metadata()
                .await
                .map_err(|e| io("cannot read a part", e))?
                .len();
            let etag = tokio::fs::read_to_string(dir.join(format!("{number:05}.etag")))
                .await
                .unwrap_or_default();
            parts.push(UploadedPart {
                number,
                etag,
                size_bytes,
            });
        }
        parts.sort_by_key(|p| p.number);
        Ok(parts)
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[UploadedPart],
    ) -> Result<(), BlobError> {
        let dir = self.upload_dir(upload_id)?;
        let staged = self.staging();
        let mut out = tokio::fs::File::create(&staged)
            .await
            .map_err(|e| io("cannot join the parts", e))?;
        let mut hash = Sha256::new();
        let mut ordered: Vec<&UploadedPart> = parts.iter().collect();
        ordered.sort_by_key(|p| p.number);
        for p in ordered {
            let bytes = tokio::fs::read(dir.join(format!("{:05}.part", p.number)))
                .await
                .map_err(|e| io("cannot read a part", e))?;
            hash.update(&bytes);
            out.write_all(&bytes)
                .await
                .map_err(|e| io("cannot join the parts", e))?;
        }
        out.flush()
            .await
            .map_err(|e| io("cannot join the parts", e))?;
        drop(out);
        let digest = hex::encode(&hash.finalize()[..16]);
        self.land(key, &staged, "application/octet-stream", digest)
            .await?;
        let _ = tokio::fs::remove_dir_all(&dir).await;
        Ok(())
    }

    async fn abort_multipart(&self, _key: &str, upload_id: &str) -> Result<(), BlobError> {
        let dir = self.upload_dir(upload_id)?;
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("cannot drop the parts", e)),
        }
    }
}

/// The embedded blob store as the API sees it: everything as it is, except that download links
/// are this server's signed URLs.
pub struct SignedBlobs {
    files: Arc<Files>,
}

impl SignedBlobs {
    pub fn new(files: Arc<Files>) -> Self {
        SignedBlobs { files }
    }
}

#[async_trait]
impl BlobStore for SignedBlobs {
    async fn put_file(&self, key: &str, src: &Path, content_type: &str) -> Result<(), BlobError> {
        self.files.blobs.put_file(key, src, content_type).await
    }
    async fn put_bytes(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<(), BlobError> {
        self.files.blobs.put_bytes(key, bytes, content_type).await
    }
    async fn get_to_file(&self, key: &str, dest: &Path) -> Result<(), BlobError> {
        self.files.blobs.get_to_file(key, dest).await
    }
    async fn get_bytes(&self, key: &str) -> Result<Vec<u8>, BlobError> {
        self.files.blobs.get_bytes(key).await
    }
    async fn head(&self, key: &str) -> Result<Option<BlobMeta>, BlobError> {
        self.files.blobs.head(key).await
    }
    async fn copy(&self, from: &str, to: &str) -> Result<(), BlobError> {
        self.files.blobs.copy(from, to).await
    }
    async fn renew(&self, key: &str) -> Result<(), BlobError> {
        self.files.blobs.renew(key).await
    }
    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        self.files.blobs.delete(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<BlobMeta>, BlobError> {
        self.files.blobs.list(prefix).await
    }
    async fn presign_get(&self, key: &str, ttl: Duration) -> Result<String, BlobError> {
        validate_key(key)?;
        Ok(self.files.signed_get(key, ttl))
    }
    async fn media_source(&self, key: &str, ttl: Duration) -> Result<MediaSource, BlobError> {
        self.files.blobs.media_source(key, ttl).await
    }
}

/// `GET`/`HEAD /files/{key}?...&sig=`: the object, with ranges (a `<video>` seeks by them).
pub async fn get(
    State(shared): State<Arc<Shared>>,
    UrlPath(key): UrlPath<String>,
    Query(query): Query<HashMap<String, String>>,
    req: Request,
) -> Response {
    let files = &shared.files;
    if let Err(refused) = files.verify("GET", &key, &query) {
        return refused.into_response();
    }
    if validate_key(&key).is_err() {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    }
    let meta = files.blobs.head(&key).await.ok().flatten();
    let path = files.blobs.path_of(&key);
    let served = tower_http::services::ServeFile::new(path)
        .oneshot(req)
        .await
        .map(IntoResponse::into_response);
    let mut response = match served {
        Ok(r) => r,
        Err(never) => match never {},
    };
    if let Some(ct) = meta
        .and_then(|m| m.content_type)
        .filter(|ct| ct != "application/octet-stream")
        .and_then(|ct| HeaderValue::from_str(&ct).ok())
        && response.status().is_success()
    {
        response.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    response
}

/// `PUT /files/{key}?...&sig=`: one object, or one part of a multipart upload. The body must be
/// exactly the signed length, with the signed content type, as S3 holds a presigned PUT to its
/// signed headers.
pub async fn put(
    State(shared): State<Arc<Shared>>,
    UrlPath(key): UrlPath<String>,
    Query(query): Query<HashMap<String, String>>,
    req: Request,
) -> Response {
    match put_inner(&shared.files, &key, &query, req).await {
        Ok(etag) => {
            let mut r = StatusCode::OK.into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("\"{etag}\"")) {
                r.headers_mut().insert(header::ETAG, v);
            }
            r
        }
        Err((status, why)) => (status, why).into_response(),
    }
}

async fn put_inner(
    files: &Files,
    key: &str,
    query: &HashMap<String, String>,
    req: Request,
) -> Result<String, (StatusCode, String)> {
    let grant = files.verify("PUT", key, query)?;
    let bad = |why: String| (StatusCode::BAD_REQUEST, format!("{why}\n"));
    if req.method() != Method::PUT {
        return Err((StatusCode::METHOD_NOT_ALLOWED, "PUT only\n".into()));
    }
    validate_key(key).map_err(|e| bad(e.to_string()))?;
    let sent_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if grant.part.is_none() && sent_type != grant.content_type {
        return Err(bad(format!(
            "the content type must be {:?}, as signed",
            grant.content_type
        )));
    }
    let length = grant.length.ok_or_else(|| bad("unsigned length".into()))?;
    let internal = |e: std::io::Error| {
        tracing::error!(error = %e, "cannot stage an upload");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot store the upload\n".to_owned(),
        )
    };
    let staged = files.staging();
    let mut out = tokio::fs::File::create(&staged).await.map_err(internal)?;
    let mut hash = Sha256::new();
    let mut written: u64 = 0;
    let mut stream = req.into_body().into_data_stream();
    let outcome: Result<(), (StatusCode, String)> = async {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| bad(format!("the upload broke off: {e}")))?;
            written += chunk.len() as u64;
            if written > length {
                return Err(bad(format!(
                    "the body is longer than the signed {length} bytes"
                )));
            }
            hash.update(&chunk);
            out.write_all(&chunk).await.map_err(internal)?;
        }
        if written != length {
            return Err(bad(format!(
                "the body is {written} bytes; the URL was signed for {length}"
            )));
        }
        out.flush().await.map_err(internal)
    }
    .await;
    drop(out);
    if let Err(e) = outcome {
        let _ = tokio::fs::remove_file(&staged).await;
        return Err(e);
    }
    let digest = hash.finalize();
    let etag = hex::encode(&digest[..16]);
    match (&grant.upload, grant.part) {
        (Some(upload), Some(part)) => {
            let dir = files.upload_dir(upload).map_err(|e| bad(e.to_string()))?;
            let owner = tokio::fs::read_to_string(dir.join("key")).await;
            if owner.as_deref().ok() != Some(key) {
                let _ = tokio::fs::remove_file(&staged).await;
                return Err((StatusCode::NOT_FOUND, "no such upload\n".into()));
            }
            tokio::fs::write(dir.join(format!("{part:05}.etag")), &etag)
                .await
                .map_err(internal)?;
            tokio::fs::rename(&staged, dir.join(format!("{part:05}.part")))
                .await
                .map_err(internal)?;
        }
        _ => {
            files
                .land(key, &staged, &grant.content_type, etag.clone())
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, key, "cannot store an upload");
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "cannot store the upload\n".to_owned(),
                    )
                })?;
        }
    }
    Ok(etag)
}
