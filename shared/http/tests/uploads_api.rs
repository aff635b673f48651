//! The upload and processing-job routes in process: HTTP API v2 events through
//! `vidpipe_http::handle`, over SQLite records, the filesystem blob store, a signer that records
//! what it was asked to sign (and keeps multipart parts as a store would), and a starter that
//! records the executions it was asked for. Every route is also tried across tenants.

use async_trait::async_trait;
use chrono::Utc;
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tempfile::TempDir;
use vidpipe_domain::ports::{
    BlobError, BlobStore, OrchestratorError, ProcessStarter, ProcessStore, SignedUpload,
    UploadSigner,
};
use vidpipe_domain::processing::{
    OutputRecord, ProcessFailure, ProcessJob, ProcessStatus, Route, SourceRef,
};
use vidpipe_domain::upload::UploadedPart;
use vidpipe_http::ApiState;
use vidpipe_pipeline::cursor::CursorSeal;
use vidpipe_pipeline::embedded::SqliteJobStore;
use vidpipe_pipeline::local::{LocalOptions, LocalStack};
use vidpipe_pipeline::uploads::{DOWNLOAD_TTL, UploadPolicy, UploadService};
use vidpipe_pipeline::{EmbeddedOrchestrator, RunnerConfig, Service};

const ALICE: &str = "alice";
const BOB: &str = "bob";
const MIB: u64 = 1024 * 1024;

/// Signs nothing but remembers every request, and holds multipart parts like a store: a test
/// "uploads" a part by pushing it, and `complete` writes the joined object into the blob store.
#[derive(Default)]
struct FakeSigner {
    puts: Mutex<Vec<(String, String, u64)>>,
    part_urls: Mutex<Vec<(String, u32, u64)>>,
    parts: Mutex<BTreeMap<String, Vec<UploadedPart>>>,
    completed: Mutex<Vec<(String, Vec<u32>)>>,
    aborted: Mutex<Vec<String>>,
    created: std::sync::atomic::AtomicU32,
    blobs: Mutex<Option<Arc<dyn BlobStore>>>,
}

#[async_trait]
impl UploadSigner for FakeSigner {
    async fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        size_bytes: u64,
        ttl: Duration,
    ) -> Result<SignedUpload, BlobError> {
        self.puts
            .lock()
            .unwrap()
            .push((key.into(), content_type.into(), size_bytes));
        Ok(SignedUpload {
            url: format!("https://media.example.test/{key}?ttl={}", ttl.as_secs()),
            headers: vec![
                ("content-length".into(), size_bytes.to_string()),
                ("content-type".into(), content_type.into()),
            ],
        })
    }

    async fn create_multipart(&self, _: &str, _: &str) -> Result<String, BlobError> {
        let n = self
            .created
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        let id = format!("mpu-{n}");
        self.parts.lock().unwrap().insert(id.clone(), Vec::new());
        Ok(id)
    }

    async fn presign_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        size_bytes: u64,
        _: Duration,
    ) -> Result<SignedUpload, BlobError> {
        self.part_urls
            .lock()
            .unwrap()
            .push((upload_id.into(), part_number, size_bytes));
        Ok(SignedUpload {
            url: format!(
                "https://media.example.test/{key}?uploadId={upload_id}&partNumber={part_number}"
            ),
            headers: vec![("content-length".into(), size_bytes.to_string())],
        })
    }

    async fn list_parts(&self, _: &str, upload_id: &str) -> Result<Vec<UploadedPart>, BlobError> {
        Ok(self
            .parts
            .lock()
            .unwrap()
            .get(upload_id)
            .cloned()
            .unwrap_or_default())
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[UploadedPart],
    ) -> Result<(), BlobError> {
        let total: u64 = parts.iter().map(|p| p.size_bytes).sum();
        self.completed
            .lock()
            .unwrap()
            .push((upload_id.into(), parts.iter().map(|p| p.number).collect()));
        let blobs = self.blobs.lock().unwrap().clone().unwrap();
        blobs
            .put_bytes(key, vec![0; total as usize], "video/mp4")
            .await
    }

    async fn abort_multipart(&self, _: &str, upload_id: &str) -> Result<(), BlobError> {
        self.aborted.lock().unwrap().push(upload_id.into());
        self.parts.lock().unwrap().remove(upload_id);
        Ok(())
    }
}

impl FakeSigner {
    fn upload_part(&self, upload_id: &str, number: u32, size_bytes: u64) {
        let mut parts = self.parts.lock().unwrap();
        let list = parts.get_mut(upload_id).expect("a live multipart upload");
        list.retain(|p| p.number != number);
        list.push(UploadedPart {
            number,
            etag: format!("\"etag-{number}\""),
            size_bytes,
        });
        list.sort_by_key(|p| p.number);
    }
}

/// Remembers the executions asked for; a name asked twice is one execution, as in Step Functions.
#[derive(Default)]
struct FakeStarter(Mutex<Vec<(String, String)>>);

#[async_trait]
impl ProcessStarter for FakeStarter {
    async fn start_processing(
        &self,
        source: &SourceRef,
        name: &str,
    ) -> Result<(), OrchestratorError> {
        let mut started = self.0.lock().unwrap();
        if !started.iter().any(|(n, _)| n == name) {
            started.push((name.into(), source.key.clone()));
        }
        Ok(())
    }
}

struct Api {
    state: ApiState,
    signer: Arc<FakeSigner>,
    starter: Arc<FakeStarter>,
    records: Arc<SqliteJobStore>,
    blobs: Arc<dyn BlobStore>,
    _stack: LocalStack,
    _home: TempDir,
}

/// Files over 10 MiB go multipart in 5 MiB parts, so tests stay small.
async fn api() -> Api {
    let home = tempfile::tempdir().unwrap();
    let options = LocalOptions {
        home: Some(home.path().to_path_buf()),
        ..LocalOptions::default()
    };
    let stack = LocalStack::open_with(options, None, RunnerConfig::default())
        .await
        .unwrap();
    let orchestrator = Arc::new(EmbeddedOrchestrator::new(stack.runner().clone()));
    let service = Arc::new(Service::new(stack.deps().clone(), orchestrator));
    let blobs = stack.deps().blobs.clone();
    let records = Arc::new(SqliteJobStore::open(home.path().join("uploads.sqlite3")).unwrap());
    let signer = Arc::new(FakeSigner::default());
    *signer.blobs.lock().unwrap() = Some(blobs.clone());
    let starter = Arc::new(FakeStarter::default());
    let processing = UploadService {
        uploads: records.clone(),
        records: records.clone(),
        blobs: blobs.clone(),
        signer: signer.clone(),
        starter: Some(starter.clone()),
        policy: UploadPolicy {
            single_put_max: 10 * MIB,
            part_size: 5 * MIB,
        },
        cursors: Some(CursorSeal::ephemeral().unwrap()),
        webhook_rules: Default::default(),
    };
    let state = ApiState {
        service,
        uploads: signer.clone(),
        processing: Some(Arc::new(processing)),
        base_path: String::new(),
        trust_tenant_header: false,
    };
    Api {
        state,
        signer,
        starter,
        records,
        blobs,
        _stack: stack,
        _home: home,
    }
}

struct Reply {
    status: StatusCode,
    response: Response<Body>,
    json: Value,
}

impl Api {
    async fn call(&self, method: Method, path: &str, tenant: &str, body: Option<Value>) -> Reply {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let mut headers = json!({ "host": "api.example.test" });
        if body.is_some() {
            headers["content-type"] = "application/json".into();
        }
        let event = json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": path,
            "rawQueryString": query,
            "headers": headers,
            "requestContext": {
                "accountId": "123456789012", "apiId": "api-id", "domainName": "api.example.test",
                "domainPrefix": "api", "requestId": "gw-req-1", "routeKey": "$default",
                "stage": "$default", "time": "01/Jan/2026:00:00:00 +0000", "timeEpoch": 1767225600000u64,
                "http": { "method": method.as_str(), "path": path, "protocol": "HTTP/1.1",
                          "sourceIp": "192.0.2.1", "userAgent": "uploads-test" },
                "authorizer": { "jwt": { "claims": { "sub": tenant }, "scopes": null } }
            },
            "body": body.map(|b| b.to_string()),
            "isBase64Encoded": false
        });
        let req: Request = lambda_http::request::from_str(&event.to_string()).unwrap();
        let response = vidpipe_http::handle(&self.state, req).await;
        let status = response.status();
        let json = serde_json::from_slice(response.body().as_ref()).unwrap_or(Value::Null);
        Reply {
            status,
            response,
            json,
        }
    }

    /// A processing record for `tenant` as the pipeline would have left it.
    async fn seed_job(
        &self,
        tenant: &str,
        file: &str,
        status: ProcessStatus,
        age: i64,
    ) -> ProcessJob {
        let source = SourceRef {
            bucket: "media".into(),
            key: format!("raw/{tenant}/launch/{file}"),
            version: Some("v1".into()),
        };
        self.blobs
            .put_bytes(&source.key, vec![7; 64], "video/mp4")
            .await
            .unwrap();
        let at = Utc::now() - chrono::TimeDelta::seconds(age);
        let mut job = ProcessJob::new(&source, at);
        job.route = Some(Route::SinglePass);
        let job = self.records.save_process(&job).await.unwrap();
        let path = job.path.clone().unwrap();
        let done = match status {
            ProcessStatus::Running => return job,
            ProcessStatus::Failed => job
                .fail(
                    ProcessFailure {
                        error: vidpipe_domain::names::SOURCE_REJECTED.into(),
                        reason: "the file is not readable media: garbage".into(),
                    },
                    at,
                )
                .unwrap(),
            ProcessStatus::Succeeded => {
                let outputs = ["youtube", "reels", "tiktok"]
                    .iter()
                    .map(|r| OutputRecord {
                        rendition: (*r).into(),
                        key: path.rendition_key(r),
                        width: 640,
                        height: 360,
                        video_codec: "h264".into(),
                        pix_fmt: "yuv420p".into(),
                        duration_seconds: 6.0,
                        frames: Some(180),
                        video_bitrate: Some(800_000),
                        audio_codec: Some("aac".into()),
                        size_bytes: 1000,
                    })
                    .collect();
                job.succeed(outputs, path.thumbnail_key(), path.manifest_key(), at)
                    .unwrap()
            }
        };
        self.records.save_process(&done).await.unwrap()
    }
}

fn upload_body(file: &str, size: u64) -> Value {
    json!({ "project": "launch", "filename": file, "size_bytes": size, "content_type": "video/mp4" })
}

#[tokio::test]
async fn a_small_upload_gets_one_put_bound_to_its_size_under_the_tenants_prefix() {
    let api = api().await;
    let r = api
        .call(
            Method::POST,
            "/v1/uploads",
            ALICE,
            Some(upload_body("take 1.mp4", 4096)),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    let v = &r.json;
    assert_eq!(v["mode"], "single");
    assert_eq!(v["status"], "pending");
    assert_eq!(v["key"], "raw/alice/launch/take 1.mp4");
    assert_eq!(v["upload"]["method"], "PUT");
    assert_eq!(v["upload"]["headers"]["content-length"], "4096");
    assert!(v.get("parts").is_none());
    let id = v["upload_id"].as_str().unwrap();
    assert_eq!(
        r.response.headers()["location"],
        format!("https://api.example.test/v1/uploads/{id}/complete").as_str()
    );
    assert_eq!(
        *api.signer.puts.lock().unwrap(),
        [(
            "raw/alice/launch/take 1.mp4".to_owned(),
            "video/mp4".to_owned(),
            4096
        )]
    );

    // Completing before the file is there is a conflict; a file of another size is refused,
    // naming size_bytes; the right size completes, and again is harmless.
    let complete = format!("/v1/uploads/{id}/complete");
    let r = api.call(Method::POST, &complete, ALICE, None).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.json);
    api.blobs
        .put_bytes("raw/alice/launch/take 1.mp4", vec![1; 20_000], "video/mp4")
        .await
        .unwrap();
    let r = api.call(Method::POST, &complete, ALICE, None).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.json);
    assert_eq!(r.json["errors"][0]["field"], "size_bytes");
    assert!(
        r.json["errors"][0]["rule"]
            .as_str()
            .unwrap()
            .contains("20000")
    );
    api.blobs
        .put_bytes("raw/alice/launch/take 1.mp4", vec![1; 4096], "video/mp4")
        .await
        .unwrap();
    for _ in 0..2 {
        let r = api.call(Method::POST, &complete, ALICE, None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        assert_eq!(r.json["status"], "completed");
    }
    let r = api
        .call(Method::DELETE, &format!("/v1/uploads/{id}"), ALICE, None)
        .await;
    assert_eq!(
        r.status,
        StatusCode::CONFLICT,
        "a completed upload cannot be aborted"
    );
}

#[tokio::test]
async fn a_large_upload_is_multipart_with_a_url_per_part_and_completes_only_whole() {
    let api = api().await;
    let size = 12 * MIB + 5;
    let r = api
        .call(
            Method::POST,
            "/v1/uploads",
            ALICE,
            Some(upload_body("keynote.mov", size)),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    let v = &r.json;
    assert_eq!(v["mode"], "multipart");
    assert_eq!(v["part_size"], 5 * MIB);
    let parts = v["parts"].as_array().unwrap();
    let sizes: Vec<u64> = parts
        .iter()
        .map(|p| p["size_bytes"].as_u64().unwrap())
        .collect();
    assert_eq!(sizes, [5 * MIB, 5 * MIB, 2 * MIB + 5]);
    assert_eq!(parts[2]["part_number"], 3);
    assert_eq!(
        parts[2]["headers"]["content-length"],
        (2 * MIB + 5).to_string()
    );
    assert!(v.get("upload").is_none());
    let id = v["upload_id"].as_str().unwrap().to_owned();
    let complete = format!("/v1/uploads/{id}/complete");

    // Part 2 missing, part 3 short: both named, nothing joined.
    api.signer.upload_part("mpu-1", 1, 5 * MIB);
    api.signer.upload_part("mpu-1", 3, 2 * MIB);
    let r = api.call(Method::POST, &complete, ALICE, None).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.json);
    let fields: Vec<&str> = r.json["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["parts", "parts[2].size_bytes"], "{}", r.json);
    assert!(api.signer.completed.lock().unwrap().is_empty());

    // Bob can neither complete nor abort it: to him it does not exist.
    for (method, path) in [
        (Method::POST, complete.clone()),
        (Method::DELETE, format!("/v1/uploads/{id}")),
    ] {
        let r = api.call(method, &path, BOB, None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.json);
    }

    api.signer.upload_part("mpu-1", 2, 5 * MIB);
    api.signer.upload_part("mpu-1", 3, 2 * MIB + 5);
    let r = api.call(Method::POST, &complete, ALICE, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["status"], "completed");
    assert_eq!(
        *api.signer.completed.lock().unwrap(),
        [("mpu-1".to_owned(), vec![1, 2, 3])]
    );
    let stored = api
        .blobs
        .head("raw/alice/launch/keynote.mov")
        .await
        .unwrap();
    assert_eq!(stored.map(|m| m.size_bytes), Some(size));
}

#[tokio::test]
async fn an_abandoned_multipart_upload_is_aborted_and_cannot_complete() {
    let api = api().await;
    let r = api
        .call(
            Method::POST,
            "/v1/uploads",
            ALICE,
            Some(upload_body("a.mp4", 11 * MIB)),
        )
        .await;
    let id = r.json["upload_id"].as_str().unwrap().to_owned();
    // Announcing the same file again replaces the first announcement and drops its parts.
    let again = api
        .call(
            Method::POST,
            "/v1/uploads",
            ALICE,
            Some(upload_body("a.mp4", 11 * MIB)),
        )
        .await;
    assert_eq!(again.json["upload_id"], id.as_str());
    assert_eq!(*api.signer.aborted.lock().unwrap(), ["mpu-1"]);
    for _ in 0..2 {
        let r = api
            .call(Method::DELETE, &format!("/v1/uploads/{id}"), ALICE, None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        assert_eq!(r.json["status"], "aborted");
    }
    assert_eq!(*api.signer.aborted.lock().unwrap(), ["mpu-1", "mpu-2"]);
    let r = api
        .call(
            Method::POST,
            &format!("/v1/uploads/{id}/complete"),
            ALICE,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.json);
    let r = api
        .call(Method::DELETE, "/v1/uploads/upl_nothexatall", ALICE, None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn announcements_are_refused_by_the_rule_they_break() {
    let api = api().await;
    // A webhook target must be public https.
    for bad in [
        "http://hooks.example.com/x",
        "https://192.168.1.1/x",
        "https://[fc00::1]/x",
    ] {
        let mut body = upload_body("w.mp4", 10);
        body["webhook_url"] = json!(bad);
        let r = api
            .call(Method::POST, "/v1/uploads", ALICE, Some(body))
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {}",
            r.json
        );
        assert_eq!(r.json["errors"][0]["field"], "webhook_url");
    }
    let post = |body: Value| api.call(Method::POST, "/v1/uploads", ALICE, Some(body));
    let r = post(json!({})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = r.json["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["project", "filename", "size_bytes", "content_type"]
    );
    for file in [
        "../../bob/launch/x.mp4",
        "a/b.mp4",
        "x\u{1}.mp4",
        "notes.txt",
    ] {
        let r = post(upload_body(file, 10)).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{file:?}");
        assert_eq!(r.json["errors"][0]["field"], "filename");
    }
    let r = post(json!({"project": "../bob", "filename": "a.mp4", "size_bytes": 1, "content_type": "video/mp4"})).await;
    assert_eq!(r.json["errors"][0]["field"], "project");
    let r = post(json!({"project": "launch", "filename": "a.mp4", "size_bytes": 1, "content_type": "image/png"})).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", r.json);
    let r = post(upload_body("a.mp4", 11 * 1024 * MIB)).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.json);
    // Another tenant's prefix: forbidden, and nothing signed.
    let r = post(json!({"client": BOB, "project": "launch", "filename": "a.mp4", "size_bytes": 1, "content_type": "video/mp4"})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.json);
    assert_eq!(r.json["errors"][0]["field"], "client");
    assert_eq!(r.json["type"], "urn:vidpipe:problem:forbidden");
    assert!(api.signer.puts.lock().unwrap().is_empty());
    assert!(api.signer.part_urls.lock().unwrap().is_empty());
}

#[tokio::test]
async fn processing_jobs_list_newest_first_in_pages_and_only_the_callers() {
    let api = api().await;
    let old = api
        .seed_job(ALICE, "old.mp4", ProcessStatus::Succeeded, 30)
        .await;
    let mid = api
        .seed_job(ALICE, "mid.mp4", ProcessStatus::Failed, 20)
        .await;
    let new = api
        .seed_job(ALICE, "new.mp4", ProcessStatus::Running, 10)
        .await;
    api.seed_job(BOB, "bobs.mp4", ProcessStatus::Succeeded, 5)
        .await;

    let mut seen = Vec::new();
    let mut path = "/v1/processing-jobs?limit=2".to_owned();
    for _ in 0..3 {
        let r = api.call(Method::GET, &path, ALICE, None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        for item in r.json["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_owned());
        }
        match r.json["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/processing-jobs?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, [new.id.clone(), mid.id.clone(), old.id.clone()]);
    let r = api
        .call(Method::GET, "/v1/processing-jobs", BOB, None)
        .await;
    assert_eq!(r.json["items"].as_array().unwrap().len(), 1);
    // Alice's cursor is sealed for her: opaque, and refused for Bob.
    let r = api
        .call(Method::GET, "/v1/processing-jobs?limit=1", ALICE, None)
        .await;
    let cursor = r.json["next_cursor"].as_str().unwrap().to_owned();
    assert!(!cursor.bytes().all(|b| b.is_ascii_hexdigit()), "{cursor}");
    let r = api
        .call(
            Method::GET,
            &format!("/v1/processing-jobs?cursor={cursor}"),
            BOB,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.json);
    let r = api
        .call(Method::GET, "/v1/processing-jobs?cursor=zz", ALICE, None)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    let r = api
        .call(
            Method::GET,
            &format!("/v1/processing-jobs/{}", mid.id),
            ALICE,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["status"], "failed");
    assert_eq!(
        r.json["error"]["reason"],
        "the file is not readable media: garbage"
    );
    assert_eq!(r.json["route"], "single_pass");
    assert_eq!(r.json["project"], "launch");
    let r = api
        .call(
            Method::GET,
            &format!("/v1/processing-jobs/{}", old.id),
            ALICE,
            None,
        )
        .await;
    assert_eq!(r.json["renditions"].as_array().unwrap().len(), 3);
    assert_eq!(r.json["renditions"][0]["frames"], 180);
}

#[tokio::test]
async fn downloads_sign_every_rendition_and_the_thumbnail_for_a_day() {
    let api = api().await;
    let done = api
        .seed_job(ALICE, "done.mp4", ProcessStatus::Succeeded, 1)
        .await;
    let failed = api
        .seed_job(ALICE, "bad.mp4", ProcessStatus::Failed, 1)
        .await;
    let before = Utc::now();
    let r = api
        .call(
            Method::GET,
            &format!("/v1/processing-jobs/{}/download", done.id),
            ALICE,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let names: Vec<&str> = r.json["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["youtube", "reels", "tiktok", "thumbnail"]);
    assert_eq!(
        r.json["outputs"][3]["key"],
        "processed/alice/launch/done_thumbnail.jpg"
    );
    let expires: chrono::DateTime<Utc> = r.json["expires_at"].as_str().unwrap().parse().unwrap();
    let ttl = chrono::TimeDelta::from_std(DOWNLOAD_TTL).unwrap();
    assert!(expires >= before + ttl && expires <= Utc::now() + ttl);
    assert_eq!(DOWNLOAD_TTL, Duration::from_secs(24 * 3600));
    let r = api
        .call(
            Method::GET,
            &format!("/v1/processing-jobs/{}/download", failed.id),
            ALICE,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn a_retry_starts_once_and_a_second_retry_answers_the_same_execution() {
    let api = api().await;
    let failed = api
        .seed_job(ALICE, "bad.mp4", ProcessStatus::Failed, 1)
        .await;
    let done = api
        .seed_job(ALICE, "done.mp4", ProcessStatus::Succeeded, 1)
        .await;
    let first_run = api
        .seed_job(ALICE, "busy.mp4", ProcessStatus::Running, 1)
        .await;
    let retry = format!("/v1/processing-jobs/{}/retry", failed.id);
    let r = api.call(Method::POST, &retry, ALICE, None).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json);
    let execution = format!("{}-retry-1", failed.id);
    assert_eq!(r.json["execution"], execution.as_str());
    assert_eq!(r.json["job"]["status"], "running");
    assert_eq!(r.json["job"]["retries"], 1);
    let again = api.call(Method::POST, &retry, ALICE, None).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.json);
    assert_eq!(again.json["execution"], execution.as_str());
    assert_eq!(
        *api.starter.0.lock().unwrap(),
        [(execution.clone(), "raw/alice/launch/bad.mp4".to_owned())]
    );
    for id in [&done.id, &first_run.id] {
        let r = api
            .call(
                Method::POST,
                &format!("/v1/processing-jobs/{id}/retry"),
                ALICE,
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.json);
    }
}

#[tokio::test]
async fn another_tenants_processing_job_is_not_found_on_every_route() {
    let api = api().await;
    let alices = api.seed_job(ALICE, "a.mp4", ProcessStatus::Failed, 1).await;
    let done = api
        .seed_job(ALICE, "b.mp4", ProcessStatus::Succeeded, 1)
        .await;
    for (method, path) in [
        (Method::GET, format!("/v1/processing-jobs/{}", alices.id)),
        (
            Method::GET,
            format!("/v1/processing-jobs/{}/download", done.id),
        ),
        (
            Method::POST,
            format!("/v1/processing-jobs/{}/retry", alices.id),
        ),
        (
            Method::GET,
            format!("/v1/processing-jobs/{}/deliveries", alices.id),
        ),
        (Method::GET, "/v1/processing-jobs/not-an-id".to_owned()),
        (
            Method::GET,
            "/v1/processing-jobs/not-an-id/deliveries".to_owned(),
        ),
    ] {
        let r = api.call(method, &path, BOB, None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.json);
    }
    assert!(api.starter.0.lock().unwrap().is_empty());
    // The owner reads the job's delivery log (nothing was sent for a seeded job).
    let r = api
        .call(
            Method::GET,
            &format!("/v1/processing-jobs/{}/deliveries", alices.id),
            ALICE,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["kind"], "processing");
    assert_eq!(r.json["job_id"], alices.id.as_str());
    assert_eq!(r.json["items"], json!([]));
    let unchanged = api.records.get_process(&alices.id).await.unwrap().unwrap();
    assert_eq!(unchanged.status, ProcessStatus::Failed);
}
