//! Uploaded assets (logos, music, images, videos) that a request, a timeline or a recompose
//! refers to by id. An asset is only recorded after
//! its content was probed and matched its kind, so a job never starts with a bad logo or track.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// `ast_` followed by 32 lowercase hex digits (a UUIDv7 without dashes).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AssetId(String);

impl AssetId {
    pub fn generate() -> Self {
        Self(format!("ast_{}", uuid::Uuid::now_v7().simple()))
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        let ok = raw.len() == 36
            && raw.starts_with("ast_")
            && raw[4..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(format!(
                "must be an asset id like ast_0123…(32 hex digits) (got {})",
                crate::error::echo(raw)
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AssetId {
    type Error = String;
    fn try_from(v: String) -> Result<Self, String> {
        Self::parse(&v)
    }
}

impl From<AssetId> for String {
    fn from(a: AssetId) -> String {
        a.0
    }
}

impl fmt::Display for AssetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A name that is no asset kind; it reads as the rule the field broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be one of {} (got {})", AssetKind::ALL.map(AssetKind::as_str).join(", "), crate::error::echo(.0))]
pub struct UnknownAssetKind(pub String);

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssetKind {
    /// PNG or JPEG still image.
    Logo,
    /// MP3, WAV or M4A audio.
    Music,
    /// PNG or JPEG still image for a timeline's `image` clip (a logo asset serves too).
    Image,
    /// MP4, MOV or WebM video for a timeline's `video` clip or a recompose's replaced scene.
    Video,
}

impl AssetKind {
    /// Every kind, in the order an error lists them.
    pub const ALL: [AssetKind; 4] = [
        AssetKind::Logo,
        AssetKind::Music,
        AssetKind::Image,
        AssetKind::Video,
    ];

    /// The kind's name: its serde name, so requests and responses agree.
    pub fn as_str(self) -> &'static str {
        match self {
            AssetKind::Logo => "logo",
            AssetKind::Music => "music",
            AssetKind::Image => "image",
            AssetKind::Video => "video",
        }
    }

    /// The kind `raw` names, exactly as [`AssetKind::as_str`] spells it.
    pub fn parse(raw: &str) -> Result<AssetKind, UnknownAssetKind> {
        AssetKind::ALL
            .into_iter()
            .find(|k| k.as_str() == raw)
            .ok_or_else(|| UnknownAssetKind(raw.to_owned()))
    }

    /// Accepted content types and the file extension each is stored under.
    pub fn content_types(self) -> &'static [(&'static str, &'static str)] {
        match self {
            AssetKind::Logo | AssetKind::Image => &[("image/png", "png"), ("image/jpeg", "jpg")],
            AssetKind::Video => &[
                ("video/mp4", "mp4"),
                ("video/quicktime", "mov"),
                ("video/webm", "webm"),
            ],
            AssetKind::Music => &[
                ("audio/mpeg", "mp3"),
                ("audio/wav", "wav"),
                ("audio/x-wav", "wav"),
                ("audio/mp4", "m4a"),
                ("audio/x-m4a", "m4a"),
            ],
        }
    }

    pub fn extension_for(self, content_type: &str) -> Option<&'static str> {
        self.content_types()
            .iter()
            .find(|(ct, _)| ct.eq_ignore_ascii_case(content_type))
            .map(|(_, ext)| *ext)
    }

    /// Content type for a file name's extension, case-insensitively.
    pub fn content_type_for_extension(self, ext: &str) -> Option<&'static str> {
        let ext = ext.to_ascii_lowercase();
        let ext = if ext == "jpeg" { "jpg".to_owned() } else { ext };
        self.content_types()
            .iter()
            .find(|(_, e)| *e == ext)
            .map(|(ct, _)| *ct)
    }
}

impl AssetKind {
    /// Whether the kind is a still picture a timeline `image` clip can show.
    pub fn is_still(self) -> bool {
        matches!(self, AssetKind::Logo | AssetKind::Image)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Asset {
    pub id: AssetId,
    pub owner: String,
    pub kind: AssetKind,
    pub content_type: String,
    /// Blob key: `uploads/{owner}/{asset_id}/original.{ext}`.
    pub key: String,
    pub size_bytes: u64,
    /// Width and height for logos, images and videos, duration for music and videos, from the
    /// probe at ingest (absent on an asset announced over the API until a step probes it).
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub duration_seconds: Option<f64>,
    pub created_at: DateTime<Utc>,
}
