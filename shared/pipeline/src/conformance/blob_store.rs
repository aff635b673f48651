//! The `BlobStore` conformance suite: every line of the port's contract, as checks any adapter
//! (filesystem, S3) must pass.
//!
//! Call [`run_all`] with a store; every check writes under its own fresh prefix. For stores whose
//! presigned URLs are `http(s)`, `run_all` only checks the URL's shape: call
//! [`presign_get_serves_the_object`] with an HTTP fetcher to prove the URL really serves the bytes.

use super::unique;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;
use vidpipe_domain::media::MediaLocation;
use vidpipe_domain::ports::{BlobError, BlobMeta, BlobStore};

/// Keys every adapter must refuse with `InvalidKey`, whatever the operation.
pub const INVALID_KEYS: [&str; 7] = ["../x", "/abs", "a//b", "a/./b", "", "a/../b", "a\\b"];

pub async fn run_all(store: &dyn BlobStore) {
    put_bytes_then_get_and_head(store).await;
    put_file_then_get_to_file(store).await;
    missing_keys(store).await;
    overwrite_replaces_the_whole_object(store).await;
    readers_never_see_a_partial_object(store).await;
    copy_duplicates_an_object(store).await;
    renew_keeps_the_object(store).await;
    delete_is_idempotent(store).await;
    list_is_sorted_and_bounded_by_the_prefix(store).await;
    invalid_keys_are_rejected(store).await;
    presign_get_returns_a_url(store).await;
}

/// A fresh key prefix (no trailing slash) that no other check writes under.
pub fn fresh_prefix() -> String {
    format!("conformance/{}", unique("blob"))
}

/// A local directory for `put_file`/`get_to_file`, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(unique("scratch"));
        std::fs::create_dir_all(&dir).expect("create a scratch directory");
        Self(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

async fn must_put(store: &dyn BlobStore, key: &str, bytes: Vec<u8>, content_type: &str) {
    store
        .put_bytes(key, bytes, content_type)
        .await
        .unwrap_or_else(|e| panic!("put_bytes {key:?} failed: {e}"));
}

async fn must_get(store: &dyn BlobStore, key: &str) -> Vec<u8> {
    store
        .get_bytes(key)
        .await
        .unwrap_or_else(|e| panic!("get_bytes {key:?} failed: {e}"))
}

#[track_caller]
fn assert_not_found<T: std::fmt::Debug>(result: Result<T, BlobError>, what: &str) {
    match result {
        Err(BlobError::NotFound(_)) => {}
        other => panic!("{what}: expected NotFound, got {other:?}"),
    }
}

#[track_caller]
fn assert_invalid<T: std::fmt::Debug>(result: Result<T, BlobError>, what: &str) {
    match result {
        Err(BlobError::InvalidKey(_)) => {}
        other => panic!("{what}: expected InvalidKey, got {other:?}"),
    }
}

pub async fn put_bytes_then_get_and_head(store: &dyn BlobStore) {
    let key = format!("{}/clips/clip_000.mp4", fresh_prefix());
    let bytes = pattern(70_001, 3);
    must_put(store, &key, bytes.clone(), "video/mp4").await;
    assert_eq!(
        must_get(store, &key).await,
        bytes,
        "get_bytes must return what put_bytes stored"
    );
    let head = store.head(&key).await.expect("head of a stored object");
    assert_eq!(
        head,
        Some(BlobMeta {
            key: key.clone(),
            size_bytes: bytes.len() as u64,
            content_type: Some("video/mp4".into()),
        }),
        "head must report the key, size and content type"
    );

    let empty = format!("{}/empty.json", fresh_prefix());
    must_put(store, &empty, Vec::new(), "application/json").await;
    assert_eq!(
        must_get(store, &empty).await,
        Vec::<u8>::new(),
        "an empty object roundtrips"
    );
    assert_eq!(
        store
            .head(&empty)
            .await
            .expect("head")
            .map(|m| m.size_bytes),
        Some(0)
    );
}

pub async fn put_file_then_get_to_file(store: &dyn BlobStore) {
    let scratch = Scratch::new();
    let src = scratch.path("source.bin");
    let bytes = pattern(300_007, 11);
    std::fs::write(&src, &bytes).expect("write the source file");
    let key = format!("{}/uploads/original.png", fresh_prefix());
    store
        .put_file(&key, &src, "image/png")
        .await
        .unwrap_or_else(|e| panic!("put_file {key:?} failed: {e}"));

    // The store must own its copy: changing the source afterwards does not reach it.
    std::fs::write(&src, b"changed").expect("rewrite the source file");
    assert_eq!(
        must_get(store, &key).await,
        bytes,
        "put_file must store the file's bytes at put time"
    );

    let dest = scratch.path("dest.bin");
    store
        .get_to_file(&key, &dest)
        .await
        .unwrap_or_else(|e| panic!("get_to_file {key:?} failed: {e}"));
    assert_eq!(
        std::fs::read(&dest).expect("read dest"),
        bytes,
        "get_to_file must write the object's bytes"
    );
    let head = store
        .head(&key)
        .await
        .expect("head")
        .expect("object present");
    assert_eq!(head.size_bytes, bytes.len() as u64);
    assert_eq!(head.content_type.as_deref(), Some("image/png"));

    // The caller owns dest: writing into it must not change the stored object.
    std::fs::write(&dest, b"scribbled").expect("rewrite dest");
    assert_eq!(
        must_get(store, &key).await,
        bytes,
        "editing a downloaded file must not change the object"
    );

    // Downloading over an existing file replaces it.
    store
        .get_to_file(&key, &dest)
        .await
        .expect("get_to_file over an existing file");
    assert_eq!(std::fs::read(&dest).expect("read dest"), bytes);
}

/// `head` of a missing key is `Ok(None)`, `get_*` is `NotFound`; a prefix is not an object.
pub async fn missing_keys(store: &dyn BlobStore) {
    let prefix = fresh_prefix();
    let missing = format!("{prefix}/missing.bin");
    assert_eq!(
        store.head(&missing).await.expect("head of a missing key"),
        None
    );
    assert_not_found(
        store.get_bytes(&missing).await,
        "get_bytes of a missing key",
    );
    let scratch = Scratch::new();
    assert_not_found(
        store.get_to_file(&missing, &scratch.path("x")).await,
        "get_to_file of a missing key",
    );

    must_put(
        store,
        &format!("{prefix}/dir/inner.txt"),
        b"x".to_vec(),
        "text/plain",
    )
    .await;
    let dir = format!("{prefix}/dir");
    assert_eq!(
        store.head(&dir).await.expect("head of a prefix"),
        None,
        "a prefix is not an object"
    );
    assert_not_found(store.get_bytes(&dir).await, "get_bytes of a prefix");
}

pub async fn overwrite_replaces_the_whole_object(store: &dyn BlobStore) {
    let key = format!("{}/metadata.json", fresh_prefix());
    must_put(store, &key, pattern(50_000, 1), "application/octet-stream").await;
    let shorter = b"{\"v\":2}".to_vec();
    must_put(store, &key, shorter.clone(), "application/json").await;
    assert_eq!(
        must_get(store, &key).await,
        shorter,
        "an overwrite must replace every byte, not just a prefix"
    );
    let head = store
        .head(&key)
        .await
        .expect("head")
        .expect("object present");
    assert_eq!(head.size_bytes, shorter.len() as u64);
    assert_eq!(
        head.content_type.as_deref(),
        Some("application/json"),
        "an overwrite replaces the content type"
    );

    let scratch = Scratch::new();
    let src = scratch.path("longer.bin");
    let longer = pattern(120_000, 9);
    std::fs::write(&src, &longer).expect("write source");
    store
        .put_file(&key, &src, "video/mp4")
        .await
        .expect("put_file over an object");
    assert_eq!(must_get(store, &key).await, longer);
}

/// Puts are atomic: while one task keeps replacing an object with one of two contents, readers
/// only ever see one of them whole.
pub async fn readers_never_see_a_partial_object(store: &dyn BlobStore) {
    let key = format!("{}/racing.bin", fresh_prefix());
    let a = vec![b'a'; 256 * 1024];
    let b = vec![b'b'; 64 * 1024];
    must_put(store, &key, a.clone(), "application/octet-stream").await;
    let writer = async {
        for i in 0..12 {
            let next = if i % 2 == 0 { b.clone() } else { a.clone() };
            must_put(store, &key, next, "application/octet-stream").await;
        }
    };
    let reader = async {
        for _ in 0..24 {
            let got = must_get(store, &key).await;
            assert!(
                got == a || got == b,
                "a reader saw a partial object ({} bytes)",
                got.len()
            );
            tokio::task::yield_now().await;
        }
    };
    tokio::join!(writer, reader);
}

/// Renewing restarts an object's age (which only the backend's own clock shows) and changes
/// nothing a reader sees: same bytes, same content type. A missing key is `NotFound`.
pub async fn renew_keeps_the_object(store: &dyn BlobStore) {
    let prefix = fresh_prefix();
    let key = format!("{prefix}/generations/clips/clip_000.mp4");
    let original = pattern(30_000, 9);
    must_put(store, &key, original.clone(), "video/mp4").await;
    store.renew(&key).await.expect("renew an existing object");
    store.renew(&key).await.expect("renew again");
    assert_eq!(
        must_get(store, &key).await,
        original,
        "renew keeps the bytes"
    );
    let head = store.head(&key).await.expect("head").expect("still there");
    assert_eq!(head.content_type.as_deref(), Some("video/mp4"));
    assert_eq!(head.size_bytes, original.len() as u64);
    match store.renew(&format!("{prefix}/missing.mp4")).await {
        Err(BlobError::NotFound(_)) => {}
        other => panic!("renew of a missing key must be NotFound, got {other:?}"),
    }
}

pub async fn copy_duplicates_an_object(store: &dyn BlobStore) {
    let prefix = fresh_prefix();
    let from = format!("{prefix}/cache/clip.mp4");
    let to = format!("{prefix}/generations/clip_000.mp4");
    let original = pattern(40_000, 5);
    must_put(store, &from, original.clone(), "video/mp4").await;
    store
        .copy(&from, &to)
        .await
        .expect("copy of an existing object");
    assert_eq!(
        must_get(store, &to).await,
        original,
        "the copy must hold the source's bytes"
    );
    assert_eq!(
        must_get(store, &from).await,
        original,
        "copy must leave the source in place"
    );
    let head = store.head(&to).await.expect("head").expect("copy present");
    assert_eq!(
        head.content_type.as_deref(),
        Some("video/mp4"),
        "copy must keep the content type"
    );
    assert_eq!(head.size_bytes, original.len() as u64);

    // The two objects are independent from now on, whichever one is overwritten or deleted.
    must_put(store, &from, b"new source".to_vec(), "text/plain").await;
    assert_eq!(
        must_get(store, &to).await,
        original,
        "overwriting the source must not change the copy"
    );
    must_put(store, &to, b"new copy".to_vec(), "text/plain").await;
    assert_eq!(
        must_get(store, &from).await,
        b"new source",
        "overwriting the copy must not change the source"
    );
    store.delete(&from).await.expect("delete source");
    assert_eq!(
        must_get(store, &to).await,
        b"new copy",
        "deleting the source must not remove the copy"
    );

    // Copying onto an existing object replaces it.
    let other = format!("{prefix}/other.bin");
    must_put(store, &other, pattern(10, 1), "application/octet-stream").await;
    store
        .copy(&other, &to)
        .await
        .expect("copy over an existing object");
    assert_eq!(must_get(store, &to).await, pattern(10, 1));

    assert_not_found(
        store
            .copy(&format!("{prefix}/absent"), &format!("{prefix}/x"))
            .await,
        "copy of a missing key",
    );
    assert_eq!(
        store.head(&format!("{prefix}/x")).await.expect("head"),
        None,
        "a failed copy must create nothing"
    );
}

pub async fn delete_is_idempotent(store: &dyn BlobStore) {
    let prefix = fresh_prefix();
    let key = format!("{prefix}/temp/scratch.bin");
    let sibling = format!("{prefix}/temp/keep.bin");
    must_put(store, &key, b"bye".to_vec(), "application/octet-stream").await;
    must_put(
        store,
        &sibling,
        b"stay".to_vec(),
        "application/octet-stream",
    )
    .await;
    store
        .delete(&key)
        .await
        .expect("delete of an existing object");
    assert_eq!(
        store.head(&key).await.expect("head"),
        None,
        "a deleted object must be gone"
    );
    assert_not_found(store.get_bytes(&key).await, "get_bytes after delete");
    store
        .delete(&key)
        .await
        .expect("a second delete must be Ok");
    store
        .delete(&format!("{prefix}/never/existed"))
        .await
        .expect("delete of a key that never existed must be Ok");
    assert_eq!(
        must_get(store, &sibling).await,
        b"stay",
        "delete must touch only its key"
    );

    // A key whose whole "directory" was deleted can be reused as an object name.
    store.delete(&sibling).await.expect("delete sibling");
    let reuse = format!("{prefix}/temp");
    must_put(store, &reuse, b"now an object".to_vec(), "text/plain").await;
    assert_eq!(must_get(store, &reuse).await, b"now an object");
}

/// `list` returns every object whose key starts with the prefix (a plain string prefix, as in
/// S3), sorted by key, with sizes; a trailing `/` bounds it to one "directory".
pub async fn list_is_sorted_and_bounded_by_the_prefix(store: &dyn BlobStore) {
    let prefix = fresh_prefix();
    let keys_and_sizes = [
        (format!("{prefix}/a/b/z.bin"), 3usize),
        (format!("{prefix}/a/b/c/deep.bin"), 5),
        (format!("{prefix}/a/b/0.bin"), 1),
        (format!("{prefix}/a/bc/sibling.bin"), 7),
        (format!("{prefix}/a/b.txt"), 2),
        (format!("{prefix}/b/other.bin"), 4),
    ];
    for (key, size) in &keys_and_sizes {
        must_put(store, key, vec![0u8; *size], "application/octet-stream").await;
    }
    let listed = |metas: Vec<BlobMeta>| -> Vec<(String, u64)> {
        metas.into_iter().map(|m| (m.key, m.size_bytes)).collect()
    };
    let expect = |suffixes: &[(&str, u64)]| -> Vec<(String, u64)> {
        suffixes
            .iter()
            .map(|(s, n)| (format!("{prefix}/{s}"), *n))
            .collect()
    };

    let dir = listed(
        store
            .list(&format!("{prefix}/a/b/"))
            .await
            .expect("list a/b/"),
    );
    assert_eq!(
        dir,
        expect(&[("a/b/0.bin", 1), ("a/b/c/deep.bin", 5), ("a/b/z.bin", 3)]),
        "list of `a/b/` must hold exactly the objects under a/b/, recursively, sorted, and not a/bc/"
    );
    let bare = listed(
        store
            .list(&format!("{prefix}/a/b"))
            .await
            .expect("list a/b"),
    );
    assert_eq!(
        bare,
        expect(&[
            ("a/b.txt", 2),
            ("a/b/0.bin", 1),
            ("a/b/c/deep.bin", 5),
            ("a/b/z.bin", 3),
            ("a/bc/sibling.bin", 7)
        ]),
        "list of `a/b` is a string prefix: it also matches a/b.txt and a/bc/"
    );
    let all = listed(
        store
            .list(&format!("{prefix}/"))
            .await
            .expect("list everything under the prefix"),
    );
    let mut expected_all: Vec<(String, u64)> = keys_and_sizes
        .iter()
        .map(|(k, n)| (k.clone(), *n as u64))
        .collect();
    expected_all.sort();
    assert_eq!(
        all, expected_all,
        "list must return every object under the prefix, sorted by key"
    );
    let content_types: Vec<Option<String>> = store
        .list(&format!("{prefix}/b/"))
        .await
        .expect("list b/")
        .into_iter()
        .map(|m| m.content_type)
        .collect();
    assert!(
        content_types
            .iter()
            .all(|ct| ct.is_none() || ct.as_deref() == Some("application/octet-stream")),
        "a listed content type, when reported, must be the stored one: {content_types:?}"
    );
    assert!(
        store
            .list(&format!("{prefix}/nothing/"))
            .await
            .expect("list of an empty prefix")
            .is_empty(),
        "a prefix with no objects lists nothing"
    );
}

/// Every operation checks its keys first; `list` checks its prefix (the empty prefix is allowed).
pub async fn invalid_keys_are_rejected(store: &dyn BlobStore) {
    let scratch = Scratch::new();
    let src = scratch.path("src.bin");
    std::fs::write(&src, b"x").expect("write source");
    let good = format!("{}/good.bin", fresh_prefix());
    must_put(store, &good, b"x".to_vec(), "application/octet-stream").await;
    for bad in INVALID_KEYS {
        let ct = "application/octet-stream";
        assert_invalid(
            store.put_bytes(bad, b"x".to_vec(), ct).await,
            &format!("put_bytes {bad:?}"),
        );
        assert_invalid(
            store.put_file(bad, &src, ct).await,
            &format!("put_file {bad:?}"),
        );
        assert_invalid(store.get_bytes(bad).await, &format!("get_bytes {bad:?}"));
        assert_invalid(
            store.get_to_file(bad, &scratch.path("dest")).await,
            &format!("get_to_file {bad:?}"),
        );
        assert_invalid(store.head(bad).await, &format!("head {bad:?}"));
        assert_invalid(store.copy(bad, &good).await, &format!("copy from {bad:?}"));
        assert_invalid(store.copy(&good, bad).await, &format!("copy to {bad:?}"));
        assert_invalid(store.delete(bad).await, &format!("delete {bad:?}"));
        assert_invalid(
            store.presign_get(bad, Duration::from_secs(60)).await,
            &format!("presign_get {bad:?}"),
        );
        if !bad.is_empty() {
            assert_invalid(store.list(bad).await, &format!("list {bad:?}"));
        }
    }
    assert_eq!(
        must_get(store, &good).await,
        b"x",
        "refused operations must not touch other objects"
    );
}

/// `presign_get` gives a URL. A `file://` URL (the embedded store) is read back here; for
/// `http(s)` only the shape is checked (see [`presign_get_serves_the_object`]).
pub async fn presign_get_returns_a_url(store: &dyn BlobStore) {
    let key = format!("{}/compositions/final file #1.mp4", fresh_prefix());
    let bytes = pattern(12_345, 77);
    must_put(store, &key, bytes.clone(), "video/mp4").await;
    let url = store
        .presign_get(&key, Duration::from_secs(900))
        .await
        .unwrap_or_else(|e| panic!("presign_get {key:?} failed: {e}"));
    if url.starts_with("file://") {
        let fetched = fetch_file_url(url.clone())
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(
            fetched, bytes,
            "the presigned file URL must serve the object's bytes"
        );
    } else {
        assert!(
            url.starts_with("https://") || url.starts_with("http://"),
            "a presigned URL must be http(s) or file: {url}"
        );
        assert!(!url.contains(' '), "a presigned URL must be encoded: {url}");
    }
}

/// Fetches a presigned URL with `fetch` (an HTTP client for S3) and compares the bytes.
pub async fn presign_get_serves_the_object<F, Fut>(store: &dyn BlobStore, fetch: F)
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<Vec<u8>, String>>,
{
    let key = format!("{}/compositions/thumbnail.jpg", fresh_prefix());
    let bytes = pattern(4_096, 42);
    must_put(store, &key, bytes.clone(), "image/jpeg").await;
    let url = store
        .presign_get(&key, Duration::from_secs(300))
        .await
        .expect("presign_get");
    let fetched = fetch(url.clone())
        .await
        .unwrap_or_else(|e| panic!("fetching {url}: {e}"));
    assert_eq!(
        fetched, bytes,
        "the presigned URL must serve the object's bytes"
    );
}

/// Reads a `file://` URL, undoing percent-encoding. A fetcher for [`presign_get_serves_the_object`].
pub async fn fetch_file_url(url: String) -> Result<Vec<u8>, String> {
    let encoded = url
        .strip_prefix("file://")
        .ok_or_else(|| format!("not a file URL: {url}"))?;
    let path = percent_encoding::percent_decode_str(encoded)
        .decode_utf8()
        .map_err(|_| format!("URL path is not UTF-8: {encoded}"))?;
    tokio::fs::read(Path::new(path.as_ref()))
        .await
        .map_err(|e| format!("cannot read {path}: {e}"))
}

/// `media_source` names the object by its key and locates its bytes: a local file is read here,
/// a URL with `fetch`. A missing object is `NotFound`.
pub async fn media_source_locates_the_object<F, Fut>(store: &dyn BlobStore, fetch: F)
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<u8>, String>>,
{
    let key = format!("{}/media source ü #1.mp4", fresh_prefix());
    let bytes = pattern(3000, 11);
    must_put(store, &key, bytes.clone(), "video/mp4").await;
    let source = store
        .media_source(&key, Duration::from_secs(300))
        .await
        .unwrap_or_else(|e| panic!("media_source {key:?} failed: {e}"));
    assert_eq!(source.key, key, "a media source is named by its key");
    let fetched = match &source.location {
        MediaLocation::Path(p) => tokio::fs::read(p).await.map_err(|e| e.to_string()),
        MediaLocation::Url(u) => fetch(u.clone()).await,
    }
    .unwrap_or_else(|e| panic!("reading {source:?}: {e}"));
    assert_eq!(
        fetched, bytes,
        "the media source must serve the object's bytes"
    );
    assert_not_found(
        store
            .media_source(
                &format!("{}/absent.mp4", fresh_prefix()),
                Duration::from_secs(60),
            )
            .await,
        "media_source of a missing object",
    );
}
