//! Raw uploads a client sends straight to the media store: the rules for the announced file
//! (project, file name, size, type), the key it lands under (`raw/{tenant}/{project}/{file}`,
//! so a tenant only ever writes below its own prefix), how a large file is cut into multipart
//! parts, and the tenant-scoped record that `complete` and `abort` check ownership against.

use crate::error::{FieldError, ValidationErrors};
use crate::processing::is_video_extension;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// Files up to this size get one presigned PUT; larger ones a multipart upload.
pub const SINGLE_PUT_MAX_BYTES: u64 = 100 * 1024 * 1024;
/// The default part size of a multipart upload.
pub const DEFAULT_PART_BYTES: u64 = 16 * 1024 * 1024;
/// S3's smallest part: every part but the last must be at least this big.
pub const MIN_PART_BYTES: u64 = 5 * 1024 * 1024;
/// S3's largest part count; files that would need more get bigger parts.
pub const MAX_PARTS: u64 = 10_000;
/// The largest upload accepted: the processing pipeline's own default size limit.
pub const MAX_UPLOAD_BYTES: u64 = 10 * 1024 * 1024 * 1024;
pub const PROJECT_MAX_CHARS: usize = 64;
pub const FILENAME_MAX_BYTES: usize = 200;

/// `upl_` and 32 hex digits, derived from the object key: announcing the same file again names
/// the same upload (the new announcement replaces the old one), and the processing probe finds
/// the announcement of the object it is handed without an index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UploadId(String);

impl UploadId {
    pub fn for_key(key: &str) -> Self {
        let digest = Sha256::new()
            .chain_update(b"vidpipe raw upload\0")
            .chain_update(key.as_bytes())
            .finalize();
        Self(format!("upl_{}", hex::encode(&digest[..16])))
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        let ok = raw.len() == 36
            && raw.starts_with("upl_")
            && raw[4..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(format!(
                "must be an upload id like upl_0123…(32 hex digits) (got {raw:?})"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for UploadId {
    type Error = String;
    fn try_from(v: String) -> Result<Self, String> {
        Self::parse(&v)
    }
}

impl From<UploadId> for String {
    fn from(a: UploadId) -> String {
        a.0
    }
}

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A client's value as quoted back in a rule: at most 64 characters, so a huge field is never
/// echoed whole.
fn echo(s: &str) -> String {
    const MAX: usize = 64;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// The key an upload lands under.
pub fn raw_key(tenant: &str, project: &str, filename: &str) -> String {
    format!("raw/{tenant}/{project}/{filename}")
}

/// `POST /v1/uploads` as the client sent it; every field optional so each missing one is named.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadBody {
    pub project: Option<String>,
    pub filename: Option<String>,
    pub size_bytes: Option<u64>,
    pub content_type: Option<String>,
    /// The `raw/{client}/` segment. Optional: it is always the caller's tenant, and naming any
    /// other is refused (403).
    pub client: Option<String>,
    /// Told when the processing of this file completes or fails (see
    /// [`crate::webhook::WebhookUrl`]).
    pub webhook_url: Option<String>,
}

/// A validated announcement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSpec {
    pub project: String,
    pub filename: String,
    pub size_bytes: u64,
    /// The essence (`video/mp4`), lower case, without parameters.
    pub content_type: String,
    pub webhook_url: Option<crate::webhook::WebhookUrl>,
}

/// Why an announcement is refused, by the status each maps to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadRefusal {
    /// Missing or malformed fields, each named (422).
    #[error(transparent)]
    Invalid(ValidationErrors),
    /// `client` names another tenant's prefix (403).
    #[error("{0}")]
    OtherTenant(FieldError),
    /// Not a video content type (415).
    #[error("{0}")]
    NotVideo(FieldError),
    /// Over [`MAX_UPLOAD_BYTES`] (413).
    #[error("{0}")]
    TooLarge(FieldError),
}

impl UploadBody {
    /// Checks every field against the rules and `tenant`, reporting every broken rule of the
    /// body at once; the type and size refusals come after, as their statuses differ.
    pub fn validate(&self, tenant: &str) -> Result<UploadSpec, UploadRefusal> {
        self.validate_with(tenant, crate::webhook::UrlRules::default())
    }

    /// [`Self::validate`] under a deployment's webhook URL rules.
    pub fn validate_with(
        &self,
        tenant: &str,
        webhook_rules: crate::webhook::UrlRules,
    ) -> Result<UploadSpec, UploadRefusal> {
        let mut errors = Vec::new();
        if let Some(client) = &self.client
            && client != tenant
        {
            return Err(UploadRefusal::OtherTenant(FieldError::new(
                "client",
                format!(
                    "may only be your own tenant; uploads go under raw/{tenant}/ (got {:?})",
                    echo(client)
                ),
            )));
        }
        let project = match &self.project {
            None => {
                errors.push(FieldError::new("project", "is required"));
                None
            }
            Some(p) => match check_project(p) {
                Ok(()) => Some(p.clone()),
                Err(rule) => {
                    errors.push(FieldError::new("project", rule));
                    None
                }
            },
        };
        let filename = match &self.filename {
            None => {
                errors.push(FieldError::new("filename", "is required"));
                None
            }
            Some(f) => match check_filename(f) {
                Ok(()) => Some(f.clone()),
                Err(rule) => {
                    errors.push(FieldError::new("filename", rule));
                    None
                }
            },
        };
        let size_bytes = match self.size_bytes {
            None => {
                errors.push(FieldError::new("size_bytes", "is required"));
                None
            }
            Some(0) => {
                errors.push(FieldError::new("size_bytes", "must be at least 1"));
                None
            }
            Some(n) => Some(n),
        };
        let content_type = match &self.content_type {
            None => {
                errors.push(FieldError::new("content_type", "is required"));
                None
            }
            Some(c) => Some(
                c.split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase(),
            ),
        };
        let webhook_url = match &self.webhook_url {
            None => None,
            Some(u) => match crate::webhook::WebhookUrl::parse(u, webhook_rules) {
                Ok(url) => Some(url),
                Err(rule) => {
                    errors.push(FieldError::new("webhook_url", rule));
                    None
                }
            },
        };
        if !errors.is_empty() {
            return Err(UploadRefusal::Invalid(ValidationErrors { errors }));
        }
        let (Some(project), Some(filename), Some(size_bytes), Some(content_type)) =
            (project, filename, size_bytes, content_type)
        else {
            return Err(UploadRefusal::Invalid(ValidationErrors { errors }));
        };
        let subtype = content_type.strip_prefix("video/").unwrap_or_default();
        let token = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
        };
        if !token(subtype) {
            return Err(UploadRefusal::NotVideo(FieldError::new(
                "content_type",
                format!(
                    "must be a video type such as video/mp4 or video/quicktime (got {:?})",
                    echo(self.content_type.as_deref().unwrap_or_default())
                ),
            )));
        }
        if size_bytes > MAX_UPLOAD_BYTES {
            return Err(UploadRefusal::TooLarge(FieldError::new(
                "size_bytes",
                format!("is {size_bytes} bytes; an upload may be at most {MAX_UPLOAD_BYTES}"),
            )));
        }
        Ok(UploadSpec {
            project,
            filename,
            size_bytes,
            content_type,
            webhook_url,
        })
    }
}

/// A project is one lowercase slug: it becomes a key segment and a folder on one machine.
fn check_project(p: &str) -> Result<(), String> {
    let slug = p
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    let starts = p
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if p.is_empty() || p.len() > PROJECT_MAX_CHARS || !slug || !starts {
        return Err(format!(
            "must be 1 to {PROJECT_MAX_CHARS} lowercase letters, digits, '-' or '_', starting \
             with a letter or digit (got {:?})",
            echo(p)
        ));
    }
    Ok(())
}

/// A file name is one key segment with a video extension: no `/` or `\`, no `..`, no control
/// characters, no surrounding spaces, at most [`FILENAME_MAX_BYTES`] bytes of UTF-8.
fn check_filename(f: &str) -> Result<(), String> {
    let shown = echo(f);
    if f.is_empty() || f.len() > FILENAME_MAX_BYTES {
        return Err(format!("must be 1 to {FILENAME_MAX_BYTES} bytes long"));
    }
    if f.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    if f.contains('/') || f.contains('\\') {
        return Err(format!(
            "must be a bare file name without '/' or '\\' (got {shown:?})"
        ));
    }
    if f.contains("..") || f.starts_with('.') {
        return Err(format!(
            "must not start with '.' or contain '..' (got {shown:?})"
        ));
    }
    if f.trim() != f {
        return Err(format!("must not start or end with spaces (got {shown:?})"));
    }
    let ext = f.rsplit_once('.').map(|(_, e)| e).unwrap_or_default();
    if !is_video_extension(ext) {
        return Err(format!(
            "must end in a video extension ({}) (got {shown:?})",
            crate::processing::VIDEO_EXTENSIONS.join(", ")
        ));
    }
    Ok(())
}

/// How a multipart upload of `size` bytes is cut: the part size (at least `wanted`, at least
/// S3's minimum, and big enough to need no more than [`MAX_PARTS`]) and the part count.
pub fn plan_parts(size: u64, wanted: u64) -> (u64, u32) {
    let part = wanted.max(MIN_PART_BYTES).max(size.div_ceil(MAX_PARTS));
    let count = size.div_ceil(part).max(1);
    // At most MAX_PARTS, so always within u32.
    (part, count as u32)
}

/// The size of part `number` (1-based) of a `size`-byte upload cut into `part_size` parts.
pub fn part_length(size: u64, part_size: u64, number: u32) -> u64 {
    let offset = (u64::from(number) - 1) * part_size;
    part_size.min(size.saturating_sub(offset))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadStatus {
    /// Announced; the client is uploading.
    Pending,
    /// The object is in place, at its announced size.
    Completed,
    Aborted,
}

impl UploadStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UploadStatus::Pending => "pending",
            UploadStatus::Completed => "completed",
            UploadStatus::Aborted => "aborted",
        }
    }
}

impl fmt::Display for UploadStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The store's multipart upload behind an announcement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultipartState {
    /// The store's own upload id (S3's `UploadId`); never shown to clients.
    pub upload_id: String,
    pub part_size: u64,
    pub parts: u32,
}

/// One announced upload, owned by a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadRecord {
    pub id: UploadId,
    pub owner: String,
    pub project: String,
    pub filename: String,
    pub key: String,
    pub size_bytes: u64,
    pub content_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multipart: Option<MultipartState>,
    pub status: UploadStatus,
    /// Where the processing of this file is reported, signed with the owner's secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<crate::webhook::WebhookUrl>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Optimistic concurrency, as on processing records: 0 before the first write.
    #[serde(default)]
    pub version: u64,
}

/// One part of a multipart upload as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadedPart {
    pub number: u32,
    pub etag: String,
    pub size_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> UploadBody {
        UploadBody {
            project: Some("launch".into()),
            filename: Some("Take 1.MOV".into()),
            size_bytes: Some(1000),
            content_type: Some("Video/QuickTime; codecs=x".into()),
            client: None,
            webhook_url: None,
        }
    }

    #[test]
    fn a_good_announcement_validates_to_its_key_parts() {
        let spec = body().validate("acme").unwrap();
        assert_eq!(spec.content_type, "video/quicktime");
        assert_eq!(
            raw_key("acme", &spec.project, &spec.filename),
            "raw/acme/launch/Take 1.MOV"
        );
        let own = UploadBody {
            client: Some("acme".into()),
            ..body()
        };
        assert!(own.validate("acme").is_ok());
    }

    #[test]
    fn every_broken_rule_is_named_by_its_field() {
        let fields = |b: UploadBody| match b.validate("acme") {
            Err(UploadRefusal::Invalid(v)) => {
                v.errors.into_iter().map(|e| e.field).collect::<Vec<_>>()
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(
            fields(UploadBody::default()),
            ["project", "filename", "size_bytes", "content_type"]
        );
        for bad in [
            "../x.mp4",
            "a/b.mp4",
            "a\\b.mp4",
            "a\u{7}.mp4",
            ".hidden.mp4",
            "x..mp4",
            "notes.txt",
            " a.mp4",
            "",
        ] {
            let b = UploadBody {
                filename: Some(bad.into()),
                ..body()
            };
            assert_eq!(fields(b), ["filename"], "{bad:?}");
        }
        let long = UploadBody {
            filename: Some(format!("{}.mp4", "a".repeat(FILENAME_MAX_BYTES))),
            ..body()
        };
        assert_eq!(fields(long), ["filename"]);
        for bad in ["", "Launch", "-x", "a/b", "..", &"a".repeat(65)] {
            let b = UploadBody {
                project: Some(bad.into()),
                ..body()
            };
            assert_eq!(fields(b), ["project"], "{bad:?}");
        }
        let empty = UploadBody {
            size_bytes: Some(0),
            ..body()
        };
        assert_eq!(fields(empty), ["size_bytes"]);
    }

    #[test]
    fn a_webhook_url_must_be_public_https_unless_the_deployment_allows_loopback() {
        let with = |url: &str| UploadBody {
            webhook_url: Some(url.into()),
            ..body()
        };
        let spec = with("https://hooks.example.com/done")
            .validate("acme")
            .unwrap();
        assert_eq!(
            spec.webhook_url.map(String::from).as_deref(),
            Some("https://hooks.example.com/done")
        );
        for bad in [
            "http://hooks.example.com/",
            "https://10.0.0.1/",
            "http://127.0.0.1:9/",
        ] {
            match with(bad).validate("acme") {
                Err(UploadRefusal::Invalid(v)) => assert_eq!(v.errors[0].field, "webhook_url"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        let dev = crate::webhook::UrlRules {
            allow_loopback: true,
        };
        assert!(
            with("http://127.0.0.1:9/")
                .validate_with("acme", dev)
                .is_ok()
        );
    }

    #[test]
    fn other_tenants_types_and_sizes_are_refused_by_kind() {
        let other = UploadBody {
            client: Some("bob".into()),
            ..body()
        };
        assert!(
            matches!(other.validate("acme"), Err(UploadRefusal::OtherTenant(e)) if e.field == "client")
        );
        for ct in ["image/png", "video/", "videos/mp4", "video/mp4 x"] {
            let b = UploadBody {
                content_type: Some(ct.into()),
                ..body()
            };
            assert!(
                matches!(b.validate("acme"), Err(UploadRefusal::NotVideo(_))),
                "{ct}"
            );
        }
        let at_limit = UploadBody {
            size_bytes: Some(MAX_UPLOAD_BYTES),
            ..body()
        };
        assert!(at_limit.validate("acme").is_ok());
        let over = UploadBody {
            size_bytes: Some(MAX_UPLOAD_BYTES + 1),
            ..body()
        };
        assert!(
            matches!(over.validate("acme"), Err(UploadRefusal::TooLarge(e)) if e.field == "size_bytes")
        );
    }

    #[test]
    fn parts_respect_s3s_minimum_and_count_limit() {
        let mib = 1024 * 1024;
        assert_eq!(plan_parts(12 * mib, 5 * mib), (5 * mib, 3));
        assert_eq!(plan_parts(12 * mib, mib), (5 * mib, 3));
        assert_eq!(plan_parts(101 * mib, DEFAULT_PART_BYTES), (16 * mib, 7));
        let (part, count) = plan_parts(MAX_UPLOAD_BYTES, MIN_PART_BYTES);
        assert!(u64::from(count) <= MAX_PARTS && part * u64::from(count) >= MAX_UPLOAD_BYTES);
        assert_eq!(part_length(12 * mib, 5 * mib, 1), 5 * mib);
        assert_eq!(part_length(12 * mib, 5 * mib, 3), 2 * mib);
    }

    #[test]
    fn upload_ids_follow_the_key_and_parse_back() {
        let a = UploadId::for_key("raw/acme/launch/a.mp4");
        assert_eq!(a, UploadId::for_key("raw/acme/launch/a.mp4"));
        assert_ne!(a, UploadId::for_key("raw/bob/launch/a.mp4"));
        assert_eq!(UploadId::parse(a.as_str()), Ok(a.clone()));
        assert!(UploadId::parse("upl_xyz").is_err());
        assert!(UploadId::parse("ast_0123456789abcdef0123456789abcdef").is_err());
    }
}
