//! The embedded `BlobStore`: a directory tree laid out exactly like the S3 bucket (the key is the
//! path under the root), so a user can browse their outputs where the cloud would keep them.
//!
//! Layout under the root:
//! - `<key>`: the object's bytes;
//! - `.fsblob/meta/<key>`: a JSON sidecar with the content type, in a parallel tree so `list`
//!   never has to tell sidecars from objects;
//! - `.fsblob/tmp/`: where puts and copies are staged before the rename that publishes them.
//!   It sits under the root, hence on the same filesystem, which is what keeps the rename atomic.
//!
//! `.fsblob` is reserved: keys starting with that segment are `InvalidKey`. Unlike S3, a key
//! cannot be both an object and a prefix of another (`a/b` and `a/b/c`); such a put fails with a
//! permanent backend error.

use async_trait::async_trait;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_encode};
use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;
use vidpipe_domain::ErrorClass;
use vidpipe_domain::media::{MediaLocation, MediaSource};
use vidpipe_domain::ports::{BlobError, BlobMeta, BlobStore, validate_key};

/// The first key segment the store keeps for itself.
pub const RESERVED_SEGMENT: &str = ".fsblob";

#[derive(Debug, Clone)]
pub struct FsBlobStore {
    /// Absolute, so presigned `file://` URLs and error messages do not depend on the cwd later.
    root: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct Sidecar {
    content_type: String,
}

impl FsBlobStore {
    /// Uses (creating if needed) `root` as the bucket. Blocking; call it at startup.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, BlobError> {
        let root = std::path::absolute(root.into())
            .map_err(|e| io_error("cannot resolve the blob root", e))?;
        let store = Self { root };
        for dir in [store.root.clone(), store.meta_root(), store.tmp_root()] {
            std::fs::create_dir_all(&dir)
                .map_err(|e| io_error(&format!("cannot create {}", dir.display()), e))?;
        }
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where `key`'s bytes live. The key must have passed [`Self::check`].
    pub fn path_of(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    fn meta_root(&self) -> PathBuf {
        self.root.join(RESERVED_SEGMENT).join("meta")
    }

    fn tmp_root(&self) -> PathBuf {
        self.root.join(RESERVED_SEGMENT).join("tmp")
    }

    fn meta_path(&self, key: &str) -> PathBuf {
        self.meta_root().join(key)
    }

    fn tmp_path(&self) -> PathBuf {
        self.tmp_root()
            .join(uuid::Uuid::now_v7().simple().to_string())
    }

    fn check(key: &str) -> Result<(), BlobError> {
        validate_key(key)?;
        if key.split('/').next() == Some(RESERVED_SEGMENT) {
            return Err(BlobError::InvalidKey(key.to_owned()));
        }
        Ok(())
    }

    /// Renames a staged file into place, creating parent directories. A concurrent `delete` may
    /// prune a parent directory between the create and the rename, so that case is retried.
    async fn publish(&self, staged: &Path, dest: &Path, key: &str) -> Result<(), BlobError> {
        let result = async {
            let mut attempts = 0;
            loop {
                if let Some(parent) = dest.parent() {
                    tokio::fs::create_dir_all(parent).await?;
                }
                match tokio::fs::rename(staged, dest).await {
                    Err(e) if e.kind() == io::ErrorKind::NotFound && attempts < 3 => attempts += 1,
                    other => return other,
                }
            }
        }
        .await;
        if let Err(e) = result {
            let _ = tokio::fs::remove_file(staged).await;
            return Err(match e.kind() {
                io::ErrorKind::NotADirectory
                | io::ErrorKind::IsADirectory
                | io::ErrorKind::AlreadyExists
                | io::ErrorKind::DirectoryNotEmpty => BlobError::Backend {
                    message: format!(
                        "key {key:?} collides with an existing object or prefix on the filesystem store"
                    ),
                    class: ErrorClass::Permanent,
                    source: Some(e.into()),
                },
                _ => io_error(&format!("cannot store {key:?}"), e),
            });
        }
        Ok(())
    }

    /// Stages `bytes` and publishes them at `dest`, flushed first so a crash cannot leave a
    /// renamed-but-empty file.
    async fn write_atomic(&self, dest: &Path, key: &str, bytes: &[u8]) -> Result<(), BlobError> {
        let staged = self.tmp_path();
        let written = async {
            let mut file = tokio::fs::File::create(&staged).await?;
            tokio::io::AsyncWriteExt::write_all(&mut file, bytes).await?;
            file.sync_data().await
        }
        .await;
        if let Err(e) = written {
            let _ = tokio::fs::remove_file(&staged).await;
            return Err(io_error(&format!("cannot write {key:?}"), e));
        }
        self.publish(&staged, dest, key).await
    }

    async fn write_meta(&self, key: &str, content_type: &str) -> Result<(), BlobError> {
        let doc = serde_json::to_vec(&Sidecar {
            content_type: content_type.to_owned(),
        })
        .map_err(|e| BlobError::backend("cannot encode blob metadata", ErrorClass::Permanent, e))?;
        self.write_atomic(&self.meta_path(key), key, &doc).await
    }

    async fn read_meta(&self, key: &str) -> Option<String> {
        let bytes = tokio::fs::read(self.meta_path(key)).await.ok()?;
        serde_json::from_slice::<Sidecar>(&bytes)
            .ok()
            .map(|s| s.content_type)
    }

    /// The object's file metadata, or `None` if there is no object (a directory is a prefix,
    /// not an object, exactly as in S3).
    async fn object_metadata(&self, key: &str) -> Result<Option<std::fs::Metadata>, BlobError> {
        match tokio::fs::metadata(self.path_of(key)).await {
            Ok(m) if m.is_file() => Ok(Some(m)),
            Ok(_) => Ok(None),
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(io_error(&format!("cannot stat {key:?}"), e)),
        }
    }

    async fn require_object(&self, key: &str) -> Result<std::fs::Metadata, BlobError> {
        self.object_metadata(key)
            .await?
            .ok_or_else(|| BlobError::NotFound(key.to_owned()))
    }

    /// Removes now-empty directories from `leaf`'s parent up to (not including) `top`, so a
    /// deleted `a/b/c` does not leave `a/b/` behind to block a later object named `a/b`.
    async fn prune(leaf: &Path, top: &Path) {
        let mut dir = leaf.parent();
        while let Some(d) = dir {
            if d == top || !d.starts_with(top) || tokio::fs::remove_dir(d).await.is_err() {
                break;
            }
            dir = d.parent();
        }
    }
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn put_file(&self, key: &str, src: &Path, content_type: &str) -> Result<(), BlobError> {
        Self::check(key)?;
        // Copied, never linked: the caller keeps `src` and may rewrite it in place later.
        let staged = self.tmp_path();
        if let Err(e) = tokio::fs::copy(src, &staged).await {
            let _ = tokio::fs::remove_file(&staged).await;
            return Err(io_error(
                &format!("cannot read {} for {key:?}", src.display()),
                e,
            ));
        }
        self.publish(&staged, &self.path_of(key), key).await?;
        self.write_meta(key, content_type).await
    }

    async fn put_bytes(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<(), BlobError> {
        Self::check(key)?;
        self.write_atomic(&self.path_of(key), key, &bytes).await?;
        self.write_meta(key, content_type).await
    }

    async fn get_to_file(&self, key: &str, dest: &Path) -> Result<(), BlobError> {
        Self::check(key)?;
        self.require_object(key).await?;
        // Copied, never linked: the caller owns `dest`, and a tool that rewrites it in place
        // (ffmpeg with -y truncates) would otherwise reach into the store.
        if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| io_error(&format!("cannot create {}", parent.display()), e))?;
        }
        match tokio::fs::copy(self.path_of(key), dest).await {
            Ok(_) => Ok(()),
            Err(e)
                if is_absent(&e)
                    && !tokio::fs::try_exists(self.path_of(key))
                        .await
                        .unwrap_or(false) =>
            {
                Err(BlobError::NotFound(key.to_owned()))
            }
            Err(e) => Err(io_error(
                &format!("cannot copy {key:?} to {}", dest.display()),
                e,
            )),
        }
    }

    async fn get_bytes(&self, key: &str) -> Result<Vec<u8>, BlobError> {
        Self::check(key)?;
        match tokio::fs::read(self.path_of(key)).await {
            Ok(bytes) => Ok(bytes),
            Err(e) if is_absent(&e) || e.kind() == io::ErrorKind::IsADirectory => {
                Err(BlobError::NotFound(key.to_owned()))
            }
            Err(e) => Err(io_error(&format!("cannot read {key:?}"), e)),
        }
    }

    async fn head(&self, key: &str) -> Result<Option<BlobMeta>, BlobError> {
        Self::check(key)?;
        let Some(meta) = self.object_metadata(key).await? else {
            return Ok(None);
        };
        Ok(Some(BlobMeta {
            key: key.to_owned(),
            size_bytes: meta.len(),
            content_type: self.read_meta(key).await,
        }))
    }

    /// The file's modification time is the object's age here, as S3's last write is there.
    async fn renew(&self, key: &str) -> Result<(), BlobError> {
        Self::check(key)?;
        self.require_object(key).await?;
        let path = self.path_of(key);
        tokio::task::spawn_blocking(move || {
            std::fs::File::options()
                .write(true)
                .open(&path)?
                .set_modified(std::time::SystemTime::now())
        })
        .await
        .map_err(|e| io_error(&format!("cannot renew {key:?}"), std::io::Error::other(e)))?
        .map_err(|e| {
            if is_absent(&e) {
                BlobError::NotFound(key.to_owned())
            } else {
                io_error(&format!("cannot renew {key:?}"), e)
            }
        })
    }

    async fn copy(&self, from: &str, to: &str) -> Result<(), BlobError> {
        Self::check(from)?;
        Self::check(to)?;
        self.require_object(from).await?;
        if from == to {
            // Renaming a link onto its own inode is a no-op that would strand the staged link.
            return Ok(());
        }
        // A hard link is the local "server-side copy": no bytes move. It is safe because no put
        // ever writes into an existing file; puts rename a new inode over the path, so
        // overwriting either key later leaves the other's content untouched.
        let staged = self.tmp_path();
        let src = self.path_of(from);
        // Linking fails across devices or on filesystems without links; a byte copy still works.
        if tokio::fs::hard_link(&src, &staged).await.is_err()
            && let Err(e) = tokio::fs::copy(&src, &staged).await
        {
            let _ = tokio::fs::remove_file(&staged).await;
            return Err(if is_absent(&e) {
                BlobError::NotFound(from.to_owned())
            } else {
                io_error(&format!("cannot copy {from:?}"), e)
            });
        }
        self.publish(&staged, &self.path_of(to), to).await?;
        match self.read_meta(from).await {
            Some(content_type) => self.write_meta(to, &content_type).await,
            None => {
                let _ = tokio::fs::remove_file(self.meta_path(to)).await;
                Ok(())
            }
        }
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        Self::check(key)?;
        let path = self.path_of(key);
        if self.object_metadata(key).await?.is_none() {
            return Ok(());
        }
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if is_absent(&e) => {}
            Err(e) => return Err(io_error(&format!("cannot delete {key:?}"), e)),
        }
        let meta = self.meta_path(key);
        let _ = tokio::fs::remove_file(&meta).await;
        Self::prune(&path, &self.root).await;
        Self::prune(&meta, &self.meta_root()).await;
        Ok(())
    }

    /// S3 semantics: `prefix` is a plain string prefix of the key, so `a/b` also matches
    /// `a/bc/x`; pass `a/b/` for the contents of `a/b/`. The empty prefix lists everything.
    async fn list(&self, prefix: &str) -> Result<Vec<BlobMeta>, BlobError> {
        // Only the part up to the last `/` names directories; the rest is a partial segment.
        let (dir_part, partial) = prefix.rsplit_once('/').unwrap_or(("", prefix));
        let invalid = || BlobError::InvalidKey(prefix.to_owned());
        if prefix.starts_with('/') || partial.contains(['\\', '\0']) {
            return Err(invalid());
        }
        let start_key = if dir_part.is_empty() {
            String::new()
        } else {
            Self::check(dir_part).map_err(|_| invalid())?;
            format!("{dir_part}/")
        };

        let mut found = Vec::new();
        let mut pending = vec![(self.root.join(dir_part), start_key)];
        while let Some((dir, dir_key)) = pending.pop() {
            let mut entries = match tokio::fs::read_dir(&dir).await {
                Ok(entries) => entries,
                Err(e) if is_absent(&e) => continue,
                Err(e) => return Err(io_error(&format!("cannot list {}", dir.display()), e)),
            };
            while let Some(entry) = entries
                .next_entry()
                .await
                .map_err(|e| io_error(&format!("cannot list {}", dir.display()), e))?
            {
                // Keys are UTF-8 by construction; anything else was not written by this store.
                let Ok(name) = entry.file_name().into_string() else {
                    continue;
                };
                if dir_key.is_empty() && name == RESERVED_SEGMENT {
                    continue;
                }
                let key = format!("{dir_key}{name}");
                let meta = match tokio::fs::metadata(entry.path()).await {
                    Ok(m) => m,
                    // Deleted while we walked: it is simply not part of the listing.
                    Err(e) if is_absent(&e) => continue,
                    Err(e) => return Err(io_error(&format!("cannot stat {key:?}"), e)),
                };
                if meta.is_dir() {
                    let sub = format!("{key}/");
                    if sub.starts_with(prefix) || prefix.starts_with(&sub) {
                        pending.push((entry.path(), sub));
                    }
                } else if meta.is_file() && key.starts_with(prefix) {
                    let content_type = self.read_meta(&key).await;
                    found.push(BlobMeta {
                        key,
                        size_bytes: meta.len(),
                        content_type,
                    });
                }
            }
        }
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }

    /// The embedded stand-in for a presigned URL: a `file://` URL of the object's absolute path.
    /// `ttl` is accepted for the trait's sake but not enforced: a local file needs no credentials
    /// and cannot expire. Like S3, it does not check that the object exists.
    async fn presign_get(&self, key: &str, _ttl: Duration) -> Result<String, BlobError> {
        Self::check(key)?;
        Ok(file_url(&self.path_of(key)))
    }

    /// The object's own file: ffmpeg reads it in place, with nothing to encode or decode.
    async fn media_source(&self, key: &str, _ttl: Duration) -> Result<MediaSource, BlobError> {
        Self::check(key)?;
        let path = self.path_of(key);
        match tokio::fs::metadata(&path).await {
            Ok(m) if m.is_file() => Ok(MediaSource {
                key: key.to_owned(),
                location: MediaLocation::Path(path),
            }),
            Ok(_) => Err(BlobError::NotFound(key.to_owned())),
            Err(e) if is_absent(&e) => Err(BlobError::NotFound(key.to_owned())),
            Err(e) => Err(io_error("stat", e)),
        }
    }
}

/// Bytes a `file://` URL path may carry as they are; everything else is percent-encoded, so
/// keys with spaces, `#` or `?` still round-trip.
const FILE_URL_PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `file://` URL of an absolute path.
pub fn file_url(path: &Path) -> String {
    let encoded = percent_encode(path.as_os_str().as_encoded_bytes(), FILE_URL_PATH);
    format!("file://{encoded}")
}

fn is_absent(e: &io::Error) -> bool {
    // NotADirectory: a path component is a file, so nothing can exist below it.
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// Passing conditions (interrupted, timed out, disk full) may clear on a retry; the rest will not.
fn io_error(what: &str, e: io::Error) -> BlobError {
    let class = match e.kind() {
        io::ErrorKind::Interrupted
        | io::ErrorKind::TimedOut
        | io::ErrorKind::WouldBlock
        | io::ErrorKind::StorageFull
        | io::ErrorKind::ResourceBusy => ErrorClass::Retryable,
        _ => ErrorClass::Permanent,
    };
    BlobError::backend(format!("{what}: {e}"), class, e)
}
