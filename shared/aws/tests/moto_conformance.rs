//! Runs the port conformance suites against the AWS adapters on a moto server, plus what only the
//! AWS side has: the single-table item layout and TTL, server-side encryption, multipart uploads,
//! presigned URLs fetched over HTTP, Step Functions execution naming, and the processing records
//! (whose conformance suite does not exist yet, so their contract is checked here directly).
//!
//! Each test starts its own moto server (a child process on a free port, killed on drop), so
//! tests run in parallel without sharing state. moto comes from `scripts/setup.sh`; it is found
//! on `PATH` (`source scripts/env.sh`) or in the project's `.tools/venv`, and runs through
//! `tests/moto_serialized.py`: `moto_server` with DynamoDB requests serialised, because moto's
//! threaded server otherwise lets two conditional writes on one item both succeed.

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::types::ServerSideEncryption;
use aws_sdk_sfn::types::ExecutionStatus;
use chrono::{TimeDelta, Utc};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Bytes;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vidpipe_aws::config::{dynamodb_client, emulator_sdk_config, s3_client, sfn_client};
use vidpipe_aws::dynamo::{self, DynamoJobStore, DynamoLiveStore};
use vidpipe_aws::sfn::{Started, start_named};
use vidpipe_aws::{Encryption, MultipartOptions, S3BlobStore, SfnOrchestrator};
use vidpipe_domain::ErrorClass;
use vidpipe_domain::asset::{Asset, AssetId, AssetKind};
use vidpipe_domain::job::{ClipRecord, ClipStatus, JobId, JobStatus};
use vidpipe_domain::ports::{
    BlobStore, JobStore, LeaseStore, Orchestrator, OrchestratorError, ProcessStore, UploadSigner,
};
use vidpipe_domain::processing::{ProcessFailure, ProcessJob, ProcessStatus, SourceRef};
use vidpipe_pipeline::conformance::{
    batch_store, blob_store, composition_store, job_store, lease_store, live_store, process_store,
    quota_store, webhook_store,
};

const TABLE: &str = "vidpipe-test";
const LIVE_TABLE: &str = "vidpipe-live-test";
const BUCKET: &str = "vidpipe-test";

/// A moto server of our own, on a free port; killed when dropped, even if the test panics.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    async fn start() -> Self {
        let port = free_port();
        let launcher = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/moto_serialized.py");
        let child = Command::new(moto_python())
            .arg(launcher)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto (tests/moto_serialized.py)");
        let mut moto = Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        moto.wait_ready(port).await;
        moto
    }

    /// Polls until moto answers HTTP, failing fast if the process died.
    async fn wait_ready(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("poll moto_server") {
                panic!("moto_server exited before it was ready: {status}");
            }
            if http_get(format!("http://127.0.0.1:{port}/moto-api/data.json"))
                .await
                .is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer on port {port} within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn sdk(&self) -> aws_config::SdkConfig {
        emulator_sdk_config(&self.endpoint).await
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    // Bound then released: a tiny window in which another process could take it, which is
    // acceptable for tests (moto would then fail to start and the test says so).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

/// The Python that has moto: the interpreter named on `moto_server`'s `#!` line. moto runs
/// through `tests/moto_serialized.py`, which is `moto_server` with DynamoDB requests serialised
/// (see that file for why).
fn moto_python() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("moto_server"))
        .find(|p| p.is_file());
    let in_venv =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/venv/bin/moto_server");
    let moto_server = on_path
        .or_else(|| in_venv.is_file().then_some(in_venv))
        .expect("moto_server not found on PATH or in .tools/venv: run scripts/setup.sh, then `source scripts/env.sh`");
    let script = std::fs::read_to_string(&moto_server)
        .unwrap_or_else(|e| panic!("read {}: {e}", moto_server.display()));
    let shebang = script
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("#!"))
        .unwrap_or_else(|| panic!("{} has no #! line", moto_server.display()));
    let mut words = shebang.split_whitespace();
    let first = words.next().expect("an interpreter on the #! line");
    // `#!/usr/bin/env python3` names the interpreter second.
    let interpreter = if first.ends_with("/env") {
        words.next().expect("env's argument")
    } else {
        first
    };
    PathBuf::from(interpreter)
}

async fn http_get(url: String) -> Result<Vec<u8>, String> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<Bytes>>();
    let uri: hyper::Uri = url.parse().map_err(|e| format!("bad URL {url}: {e}"))?;
    let response = client
        .get(uri)
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?
        .to_bytes();
    if !status.is_success() {
        return Err(format!(
            "GET {url}: HTTP {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    Ok(body.to_vec())
}

async fn http_send(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> Result<u16, String> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let mut request = hyper::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let response = client
        .request(request)
        .await
        .map_err(|e| format!("{method} {url}: {e}"))?;
    Ok(response.status().as_u16())
}

async fn job_store_on(moto: &Moto) -> DynamoJobStore {
    DynamoJobStore::new(dynamodb_client(&moto.sdk().await), TABLE)
}

async fn table_on(moto: &Moto) -> aws_sdk_dynamodb::Client {
    let client = dynamodb_client(&moto.sdk().await);
    dynamo::create_table(&client, TABLE)
        .await
        .expect("create the table");
    client
}

async fn bucket_on(moto: &Moto) -> aws_sdk_s3::Client {
    let client = s3_client(&moto.sdk().await);
    client
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("create the bucket");
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamo_job_store_conforms() {
    let moto = Moto::start().await;
    table_on(&moto).await;
    // Two clients, each with its own connections: two independent writers on one table.
    let a = job_store_on(&moto).await;
    let b = job_store_on(&moto).await;
    job_store::run_all(&a, &b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamo_process_store_conforms() {
    let moto = Moto::start().await;
    let client = table_on(&moto).await;
    let store = DynamoJobStore::new(client, TABLE);
    process_store::run_all(&store).await;
    process_store::upload_store_run_all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamo_lease_store_conforms() {
    let moto = Moto::start().await;
    table_on(&moto).await;
    // Two clients, as two Lambdas sharing one provider's limit would be.
    let a = Arc::new(job_store_on(&moto).await);
    let b = Arc::new(job_store_on(&moto).await);
    lease_store::run_all(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamo_quota_store_conforms() {
    let moto = Moto::start().await;
    table_on(&moto).await;
    // Two clients, as two API Lambdas admitting one tenant's jobs would be.
    let a = Arc::new(job_store_on(&moto).await);
    let b = Arc::new(job_store_on(&moto).await);
    quota_store::run_all(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamo_webhook_stores_conform() {
    let moto = Moto::start().await;
    table_on(&moto).await;
    // Two clients, as the API rotating and a pipeline step signing would be.
    let a = Arc::new(job_store_on(&moto).await);
    let b = Arc::new(job_store_on(&moto).await);
    webhook_store::secret_store_run_all(a.clone(), b).await;
    webhook_store::delivery_log_run_all(&*a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamo_batch_store_conforms() {
    let moto = Moto::start().await;
    table_on(&moto).await;
    // Two clients, as the batch route writing and the batch read route reading would be.
    let a = job_store_on(&moto).await;
    let b = job_store_on(&moto).await;
    batch_store::run_all(&a, &b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamo_live_store_conforms() {
    let moto = Moto::start().await;
    let a = dynamodb_client(&moto.sdk().await);
    vidpipe_aws::dynamo::create_live_table(&a, LIVE_TABLE)
        .await
        .expect("create the live table");
    // Two clients, as the subscribe function and the pusher would be.
    let b = dynamodb_client(&moto.sdk().await);
    live_store::run_all(
        Arc::new(DynamoLiveStore::new(a, LIVE_TABLE)),
        Arc::new(DynamoLiveStore::new(b, LIVE_TABLE)),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamo_composition_store_conforms() {
    let moto = Moto::start().await;
    table_on(&moto).await;
    // Two clients, as the compose step writing and the API listing would be.
    let a = job_store_on(&moto).await;
    let b = job_store_on(&moto).await;
    composition_store::run_all(&a, &a, &b).await;
}

/// A tenant's quotas are items under `QUOTA#<tenant>`: `ACTIVE` with the set of claimed jobs,
/// `DAY#<date>` with the seconds charged and a TTL two days past the day, and one `CLAIM#<job>`
/// per claimed job; a release deletes the claim and takes the job out of the set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamo_quota_items_follow_the_single_table_layout() {
    use vidpipe_domain::ports::QuotaStore;
    use vidpipe_domain::quota::{Admission, QuotaClaim, QuotaLimits};
    let moto = Moto::start().await;
    let client = table_on(&moto).await;
    let dynamo = DynamoJobStore::new(client.clone(), TABLE);
    // The store is also a LeaseStore, whose methods share these names.
    let store: &dyn QuotaStore = &dynamo;
    let now = Utc::now();
    let limits = QuotaLimits::from_settings(2, 10);
    for job in ["job_a", "job_b"] {
        let claim = QuotaClaim::new("acme", job, 30, now);
        assert_eq!(
            store.acquire(&claim, &limits).await.unwrap(),
            Admission::Granted
        );
    }
    let item = |sk: String| {
        let client = client.clone();
        async move {
            client
                .get_item()
                .table_name(TABLE)
                .key("PK", AttributeValue::S(dynamo::quota_pk("acme")))
                .key("SK", AttributeValue::S(sk))
                .send()
                .await
                .expect("get item")
                .item
        }
    };
    let active = item(dynamo::SK_QUOTA_ACTIVE.into())
        .await
        .expect("ACTIVE item");
    let mut members = active[dynamo::ATTR_ACTIVE]
        .as_ss()
        .expect("a string set")
        .clone();
    members.sort();
    assert_eq!(members, ["job_a", "job_b"]);
    let day = item(dynamo::quota_day_sk(now.date_naive()))
        .await
        .expect("DAY item");
    assert_eq!(day[dynamo::ATTR_USED].as_n().unwrap(), "60");
    let ttl: i64 = day["expires_at"].as_n().unwrap().parse().unwrap();
    let day_end = (now.date_naive() + chrono::Days::new(1))
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp();
    assert_eq!(
        ttl,
        day_end + 2 * 86_400,
        "expires two days after the day ends"
    );
    let claim = item(dynamo::quota_claim_sk("job_a"))
        .await
        .expect("CLAIM item");
    assert_eq!(claim[dynamo::ATTR_SECONDS].as_n().unwrap(), "30");
    assert_eq!(
        claim[dynamo::ATTR_DAY].as_s().unwrap(),
        &now.date_naive().to_string()
    );
    assert_eq!(claim["entity"].as_s().unwrap(), "quota");

    store.release("acme", "job_a", true).await.unwrap();
    assert!(item(dynamo::quota_claim_sk("job_a")).await.is_none());
    let active = item(dynamo::SK_QUOTA_ACTIVE.into())
        .await
        .expect("ACTIVE item");
    assert_eq!(active[dynamo::ATTR_ACTIVE].as_ss().unwrap(), &["job_b"]);
    let day = item(dynamo::quota_day_sk(now.date_naive())).await.unwrap();
    assert_eq!(day[dynamo::ATTR_USED].as_n().unwrap(), "30", "refunded");
    store.release("acme", "job_b", false).await.unwrap();
    let active = item(dynamo::SK_QUOTA_ACTIVE.into())
        .await
        .expect("ACTIVE item");
    assert!(
        !active.contains_key(dynamo::ATTR_ACTIVE),
        "the emptied set is gone, as DynamoDB has no empty sets"
    );
}

/// A pool is one item, `LEASE#<pool>` / `LEASE`: the holders map with each expiry in epoch
/// milliseconds, a version bumped by every write, and `expires_at` an hour past the latest lease.
/// A refusal writes nothing; a release that empties the pool keeps the item, to expire by TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamo_lease_items_follow_the_single_table_layout() {
    let moto = Moto::start().await;
    let client = table_on(&moto).await;
    let store = DynamoJobStore::new(client.clone(), TABLE);
    let pool = "replicate#video";
    let (a, b) = ("job_1/0", "job_2/3");
    let lease = |pool: &'static str, holder: &'static str, limit: u32, secs: u64| {
        let store = store.clone();
        async move {
            let before = Utc::now().timestamp_millis();
            let granted = store
                .acquire(pool, holder, limit, Duration::from_secs(secs))
                .await
                .expect("acquire");
            (granted, before, Utc::now().timestamp_millis())
        }
    };
    let holders = |item: &HashMap<String, AttributeValue>| -> HashMap<String, i64> {
        match item.get(dynamo::ATTR_HOLDERS) {
            Some(AttributeValue::M(map)) => map
                .iter()
                .map(|(k, v)| match v {
                    AttributeValue::N(n) => (k.clone(), n.parse().expect("epoch ms")),
                    other => panic!("expiry of {k}: {other:?}"),
                })
                .collect(),
            other => panic!("holders: expected a map, got {other:?}"),
        }
    };

    let (granted, before, after) = lease(pool, a, 1, 60).await;
    assert!(granted);
    let pk = dynamo::lease_pk(pool);
    assert_eq!(pk, "LEASE#replicate#video");
    let item = raw_item(&client, &pk, dynamo::SK_LEASE).await;
    assert_eq!(s_attr(&item, dynamo::ATTR_ENTITY), "lease");
    assert_eq!(s_attr(&item, dynamo::ATTR_POOL), pool);
    assert_eq!(n_attr(&item, dynamo::ATTR_VERSION), 1);
    let held = holders(&item);
    assert_eq!(held.keys().collect::<Vec<_>>(), [a]);
    let expiry = held[a];
    assert!(
        (before + 60_000..=after + 60_000).contains(&expiry),
        "{expiry} is 60 s after the call"
    );
    let margin = dynamo::LEASE_TTL_MARGIN.num_seconds();
    assert_eq!(
        n_attr(&item, dynamo::ATTR_EXPIRES_AT),
        (expiry + 999) / 1000 + margin
    );

    let (granted, ..) = lease(pool, b, 1, 600).await;
    assert!(!granted, "the pool is full");
    let item = raw_item(&client, &pk, dynamo::SK_LEASE).await;
    assert_eq!(
        n_attr(&item, dynamo::ATTR_VERSION),
        1,
        "a refusal writes nothing"
    );

    let (granted, ..) = lease(pool, b, 2, 600).await;
    assert!(granted);
    let item = raw_item(&client, &pk, dynamo::SK_LEASE).await;
    assert_eq!(n_attr(&item, dynamo::ATTR_VERSION), 2);
    let held = holders(&item);
    assert_eq!(held.len(), 2, "{held:?}");
    assert_eq!(held[a], expiry, "adding b leaves a's expiry alone");
    assert_eq!(
        n_attr(&item, dynamo::ATTR_EXPIRES_AT),
        (held[b] + 999) / 1000 + margin,
        "the TTL follows the latest lease"
    );

    store.release(pool, a).await.expect("release a");
    store.release(pool, b).await.expect("release b");
    let item = raw_item(&client, &pk, dynamo::SK_LEASE).await;
    assert_eq!(n_attr(&item, dynamo::ATTR_VERSION), 4);
    assert!(holders(&item).is_empty(), "{item:?}");
    store.release(pool, b).await.expect("release again");
    let item = raw_item(&client, &pk, dynamo::SK_LEASE).await;
    assert_eq!(
        n_attr(&item, dynamo::ATTR_VERSION),
        4,
        "releasing an unheld lease writes nothing"
    );
    let now = Utc::now().timestamp();
    let ttl = n_attr(&item, dynamo::ATTR_EXPIRES_AT);
    assert!(
        (now + margin - 5..=now + margin + 1).contains(&ttl),
        "an empty pool's item expires a margin after its last write: {ttl} vs now {now}"
    );
}

fn item_key(pk: &str, sk: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (dynamo::ATTR_PK.to_owned(), AttributeValue::S(pk.to_owned())),
        (dynamo::ATTR_SK.to_owned(), AttributeValue::S(sk.to_owned())),
    ])
}

async fn raw_item(
    client: &aws_sdk_dynamodb::Client,
    pk: &str,
    sk: &str,
) -> HashMap<String, AttributeValue> {
    client
        .get_item()
        .table_name(TABLE)
        .set_key(Some(item_key(pk, sk)))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem")
        .item
        .unwrap_or_else(|| panic!("no item {pk} / {sk}"))
}

fn s_attr<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> &'a str {
    match item.get(name) {
        Some(AttributeValue::S(v)) => v,
        other => panic!("attribute {name}: expected a string, got {other:?}"),
    }
}

fn n_attr(item: &HashMap<String, AttributeValue>, name: &str) -> i64 {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().expect("a whole number"),
        other => panic!("attribute {name}: expected a number, got {other:?}"),
    }
}

/// The items on the table are the documented single-table layout, TTL is on, and only ended
/// jobs (with their guards and clips) carry `expires_at`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamo_items_follow_the_single_table_layout() {
    let moto = Moto::start().await;
    let client = table_on(&moto).await;
    let store = DynamoJobStore::new(client.clone(), TABLE);

    let ttl = client
        .describe_time_to_live()
        .table_name(TABLE)
        .send()
        .await
        .expect("DescribeTimeToLive");
    let ttl = ttl.time_to_live_description.expect("TTL description");
    assert_eq!(ttl.attribute_name(), Some(dynamo::ATTR_EXPIRES_AT));

    let owner = "tenant#1";
    let job = store
        .create(&job_store::sample_job(owner, Some("key-1")))
        .await
        .expect("create");
    let pk = format!("JOB#{}", job.id);
    let meta = raw_item(&client, &pk, "META").await;
    assert_eq!(s_attr(&meta, "entity"), "job");
    assert_eq!(s_attr(&meta, dynamo::ATTR_STATUS), "queued");
    assert_eq!(s_attr(&meta, dynamo::ATTR_OWNER), owner);
    assert_eq!(n_attr(&meta, dynamo::ATTR_VERSION), 1);
    assert_eq!(s_attr(&meta, dynamo::ATTR_IDEMPOTENCY_KEY), "key-1");
    assert_eq!(s_attr(&meta, dynamo::ATTR_GSI1PK), "TENANT#tenant#1");
    assert_eq!(
        s_attr(&meta, dynamo::ATTR_GSI1SK),
        dynamo::gsi1_sk(job.created_at, &job.id)
    );
    assert!(
        !meta.contains_key(dynamo::ATTR_EXPIRES_AT),
        "a live job must not expire"
    );
    let doc: serde_json::Value =
        serde_json::from_str(s_attr(&meta, dynamo::ATTR_DOC)).expect("doc is JSON");
    assert_eq!(doc["id"], job.id.as_str());

    // The guard escapes `#` in the owner, so it cannot collide with another (owner, key) pair.
    let guard = raw_item(&client, "IDEM#tenant%231#key-1", "META").await;
    assert_eq!(s_attr(&guard, dynamo::ATTR_JOB_ID), job.id.as_str());

    let clip = ClipRecord {
        index: 4,
        status: ClipStatus::Done,
        provider: "procedural".into(),
        key: Some("generations/x/clips/clip_004.mp4".into()),
        cache_hit: false,
        attempts: 1,
        frames: 90,
        error: None,
        updated_at: Utc::now(),
        handle: None,
        fallback: None,
        cost: None,
        polls: 0,
        compute_ms: 0,
        bytes: 0,
        thumbnail_key: Some("generations/x/thumbnails/clip_004.jpg".into()),
    };
    store.put_clip(&job.id, &clip).await.expect("put_clip");
    let clip_item = raw_item(&client, &pk, "CLIP#004").await;
    assert_eq!(s_attr(&clip_item, "entity"), "clip");
    assert_eq!(n_attr(&clip_item, dynamo::ATTR_CLIP_INDEX), 4);
    assert!(n_attr(&clip_item, dynamo::ATTR_EXPIRES_AT) > Utc::now().timestamp());
    match store.put_clip(&JobId::generate(), &clip).await {
        Err(vidpipe_domain::ports::StoreError::NotFound(_)) => {}
        other => panic!("put_clip of an unknown job must be NotFound, got {other:?}"),
    }

    let ended = store
        .save(
            &job.transition(JobStatus::Cancelled, Utc::now())
                .expect("queued -> cancelled"),
        )
        .await
        .expect("save");
    let meta = raw_item(&client, &pk, "META").await;
    let expected = (ended.updated_at + TimeDelta::days(90)).timestamp();
    assert_eq!(
        n_attr(&meta, dynamo::ATTR_EXPIRES_AT),
        expected,
        "an ended job expires 90 days after it ended"
    );
    assert_eq!(s_attr(&meta, dynamo::ATTR_STATUS), "cancelled");
    assert_eq!(n_attr(&meta, dynamo::ATTR_VERSION), 2);
    let guard = raw_item(&client, "IDEM#tenant%231#key-1", "META").await;
    assert_eq!(
        n_attr(&guard, dynamo::ATTR_EXPIRES_AT),
        expected,
        "the guard goes with its job"
    );

    let asset_id = AssetId::generate();
    let asset = Asset {
        key: vidpipe_domain::keys::upload(owner, &asset_id, "png"),
        id: asset_id.clone(),
        owner: owner.into(),
        kind: AssetKind::Logo,
        content_type: "image/png".into(),
        size_bytes: 10,
        width: Some(1),
        height: Some(1),
        duration_seconds: None,
        created_at: Utc::now(),
    };
    store.put_asset(&asset).await.expect("put_asset");
    let asset_item = raw_item(&client, &format!("ASSET#{asset_id}"), "META").await;
    assert_eq!(s_attr(&asset_item, "entity"), "asset");
    assert_eq!(s_attr(&asset_item, dynamo::ATTR_KIND), "logo");

    let err = store
        .list(owner, 10, Some("zz"))
        .await
        .expect_err("invalid cursor");
    assert_eq!(err.to_string(), "store backend error: invalid cursor");
    assert_eq!(err.class(), ErrorClass::Permanent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamo_errors_on_a_missing_table_are_permanent() {
    let moto = Moto::start().await;
    let store = DynamoJobStore::new(dynamodb_client(&moto.sdk().await), "no-such-table");
    let err = store.get(&JobId::generate()).await.expect_err("no table");
    assert_eq!(err.class(), ErrorClass::Permanent, "{err}");
    assert!(
        err.to_string().contains("ResourceNotFoundException"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_blob_store_conforms() {
    let moto = Moto::start().await;
    let client = bucket_on(&moto).await;
    let store = S3BlobStore::new(client, BUCKET);
    blob_store::run_all(&store).await;
    blob_store::presign_get_serves_the_object(&store, http_get).await;
    blob_store::media_source_locates_the_object(&store, http_get).await;
}

async fn head_sse(
    client: &aws_sdk_s3::Client,
    key: &str,
) -> aws_sdk_s3::operation::head_object::HeadObjectOutput {
    client
        .head_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .expect("HeadObject")
}

/// Every way an object gets written states its encryption, and files above the threshold are
/// uploaded in parts (S3 marks a multipart object's ETag with `-<parts>`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_writes_are_encrypted_and_large_files_go_multipart() {
    let moto = Moto::start().await;
    let client = bucket_on(&moto).await;
    let store = S3BlobStore::new(client.clone(), BUCKET).with_multipart(MultipartOptions {
        threshold: 6 * 1024 * 1024,
        part_size: 5 * 1024 * 1024,
        concurrency: 2,
    });
    let dir = std::env::temp_dir().join(format!("vidpipe-aws-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");

    store
        .put_bytes("enc/bytes.json", b"{}".to_vec(), "application/json")
        .await
        .expect("put_bytes");
    let small = dir.join("small.bin");
    std::fs::write(&small, vec![7u8; 1024]).expect("write small");
    store
        .put_file("enc/small.bin", &small, "application/octet-stream")
        .await
        .expect("put_file small");
    let big = dir.join("big.mp4");
    let big_bytes: Vec<u8> = (0..12 * 1024 * 1024 + 123)
        .map(|i: u32| (i % 251) as u8)
        .collect();
    std::fs::write(&big, &big_bytes).expect("write big");
    store
        .put_file("enc/big.mp4", &big, "video/mp4")
        .await
        .expect("put_file big");
    store
        .copy("enc/big.mp4", "enc/copy.mp4")
        .await
        .expect("copy");

    for key in [
        "enc/bytes.json",
        "enc/small.bin",
        "enc/big.mp4",
        "enc/copy.mp4",
    ] {
        let head = head_sse(&client, key).await;
        assert_eq!(
            head.server_side_encryption(),
            Some(&ServerSideEncryption::Aes256),
            "{key} must be encrypted"
        );
    }
    let head = head_sse(&client, "enc/big.mp4").await;
    assert!(
        head.e_tag()
            .is_some_and(|t| t.trim_matches('"').ends_with("-3")),
        "a 12 MiB file in 5 MiB parts is 3 parts: {:?}",
        head.e_tag()
    );
    assert_eq!(head.content_type(), Some("video/mp4"));
    assert_eq!(
        store.get_bytes("enc/big.mp4").await.expect("get big"),
        big_bytes
    );
    let back = dir.join("back.mp4");
    store
        .get_to_file("enc/copy.mp4", &back)
        .await
        .expect("get_to_file");
    assert_eq!(std::fs::read(&back).expect("read back"), big_bytes);
    let small_head = head_sse(&client, "enc/small.bin").await;
    assert!(
        !small_head.e_tag().is_some_and(|t| t.contains('-')),
        "a small file is one PutObject"
    );

    // SSE-KMS with a named key.
    let kms = S3BlobStore::new(client.clone(), BUCKET).with_encryption(Encryption::Kms {
        key_id: Some("alias/vidpipe-test".into()),
    });
    kms.put_bytes("enc/kms.bin", b"k".to_vec(), "application/octet-stream")
        .await
        .expect("put with kms");
    let head = head_sse(&client, "enc/kms.bin").await;
    assert_eq!(
        head.server_side_encryption(),
        Some(&ServerSideEncryption::AwsKms)
    );
    assert_eq!(head.ssekms_key_id(), Some("alias/vidpipe-test"));

    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_presign_put_accepts_an_upload() {
    let moto = Moto::start().await;
    let client = bucket_on(&moto).await;
    let store = S3BlobStore::new(client.clone(), BUCKET);
    let upload = store
        .presign_put(
            "uploads/alice/ast_1/original.png",
            "image/png",
            9,
            Duration::from_secs(600),
        )
        .await
        .expect("presign_put");
    assert_eq!(upload.method, "PUT");
    assert!(upload.url.contains("X-Amz-Signature="), "{}", upload.url);
    assert!(
        upload
            .headers
            .iter()
            .any(|(k, v)| k == "content-type" && v == "image/png"),
        "{:?}",
        upload.headers
    );
    let status = http_send("PUT", &upload.url, &upload.headers, b"png bytes".to_vec())
        .await
        .expect("upload");
    assert_eq!(status, 200);
    assert_eq!(
        store
            .get_bytes("uploads/alice/ast_1/original.png")
            .await
            .expect("get"),
        b"png bytes"
    );
    let head = store
        .head("uploads/alice/ast_1/original.png")
        .await
        .expect("head")
        .expect("object");
    assert_eq!(head.content_type.as_deref(), Some("image/png"));
    assert_eq!(
        head_sse(&client, "uploads/alice/ast_1/original.png")
            .await
            .server_side_encryption(),
        Some(&ServerSideEncryption::Aes256),
        "the signed upload carries the store's encryption"
    );

    // Through the port: the same signature, handed over as the domain's SignedUpload.
    let signed = UploadSigner::presign_put(
        &store,
        "uploads/alice/ast_2/original.png",
        "image/png",
        4,
        Duration::from_secs(600),
    )
    .await
    .expect("UploadSigner::presign_put");
    assert!(
        signed
            .headers
            .iter()
            .any(|(k, v)| k == "x-amz-server-side-encryption" && v == "AES256"),
        "{:?}",
        signed.headers
    );
    let status = http_send("PUT", &signed.url, &signed.headers, b"port".to_vec())
        .await
        .expect("upload");
    assert_eq!(status, 200);
    assert_eq!(
        store
            .get_bytes("uploads/alice/ast_2/original.png")
            .await
            .expect("get"),
        b"port"
    );
    assert!(matches!(
        UploadSigner::presign_put(&store, "../x", "image/png", 1, Duration::from_secs(60)).await,
        Err(vidpipe_domain::ports::BlobError::InvalidKey(_))
    ));

    match store
        .presign_get("a/b", Duration::from_secs(8 * 24 * 60 * 60))
        .await
    {
        Err(e) => assert_eq!(e.class(), ErrorClass::Permanent),
        Ok(url) => panic!("a ttl past 7 days must be refused, got {url}"),
    }
}

const PASS_MACHINE: &str =
    r#"{"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": true}}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sfn_start_is_idempotent_and_cancel_stops() {
    let moto = Moto::start().await;
    let client = sfn_client(&moto.sdk().await);
    let machine = client
        .create_state_machine()
        .name("vidpipe-generation")
        .definition(PASS_MACHINE)
        .role_arn("arn:aws:iam::123456789012:role/vidpipe-sfn")
        .send()
        .await
        .expect("create state machine");
    let orchestrator = SfnOrchestrator::try_new(client.clone(), machine.state_machine_arn())
        .expect("orchestrator");

    let job = JobId::generate();
    orchestrator.start(&job).await.expect("first start");
    orchestrator
        .start(&job)
        .await
        .expect("a second start is Ok");
    let executions = client
        .list_executions()
        .state_machine_arn(machine.state_machine_arn())
        .send()
        .await
        .expect("list executions");
    assert_eq!(
        executions.executions().len(),
        1,
        "two starts of one job make one execution"
    );
    let execution = &executions.executions()[0];
    assert_eq!(execution.name(), job.as_str());
    assert_eq!(
        execution.execution_arn(),
        orchestrator.execution_arn(&job).expect("execution arn")
    );
    let described = client
        .describe_execution()
        .execution_arn(orchestrator.execution_arn(&job).expect("execution arn"))
        .send()
        .await
        .expect("describe");
    assert_eq!(
        described.input(),
        Some(format!(r#"{{"job_id":"{job}"}}"#).as_str())
    );
    assert_eq!(
        orchestrator.is_running(&job).await.expect("is_running"),
        Some(true)
    );

    orchestrator.cancel(&job).await.expect("cancel");
    let described = client
        .describe_execution()
        .execution_arn(orchestrator.execution_arn(&job).expect("execution arn"))
        .send()
        .await
        .expect("describe");
    assert_eq!(described.status(), &ExecutionStatus::Aborted);
    orchestrator
        .cancel(&job)
        .await
        .expect("cancelling an ended execution is Ok");
    orchestrator
        .start(&job)
        .await
        .expect("starting an ended job again is Ok");
    let executions = client
        .list_executions()
        .state_machine_arn(machine.state_machine_arn())
        .send()
        .await
        .expect("list");
    assert_eq!(
        executions.executions().len(),
        1,
        "a restart after the end starts nothing new"
    );

    let never = JobId::generate();
    orchestrator
        .cancel(&never)
        .await
        .expect("cancelling a job that never started is Ok");
    assert_eq!(
        orchestrator.is_running(&never).await.expect("is_running"),
        None
    );

    match SfnOrchestrator::try_new(client.clone(), "not-an-arn") {
        Err(OrchestratorError::Backend { class, .. }) => assert_eq!(class, ErrorClass::Permanent),
        Ok(_) => panic!("a bad ARN must be refused"),
    }
    // Built without the check, a bad ARN fails each call, permanently.
    let unchecked = SfnOrchestrator::new(client.clone(), "not-an-arn");
    for result in [
        unchecked.start(&never).await,
        unchecked.cancel(&never).await,
    ] {
        match result {
            Err(OrchestratorError::Backend { class, .. }) => {
                assert_eq!(class, ErrorClass::Permanent)
            }
            Ok(()) => panic!("a bad ARN must fail"),
        }
    }
    let missing = SfnOrchestrator::new(
        client,
        "arn:aws:states:us-east-1:123456789012:stateMachine:absent",
    );
    match missing.start(&JobId::generate()).await {
        Err(OrchestratorError::Backend { class, message, .. }) => {
            assert_eq!(class, ErrorClass::Permanent, "{message}")
        }
        Ok(()) => panic!("starting a missing state machine must fail"),
    }
}

fn process_record(source: &SourceRef) -> ProcessJob {
    ProcessJob::new(source, Utc::now())
}

/// The processing records: a save roundtrips byte for byte, a second save of the same id replaces
/// the first (a re-run never adds a record), an unknown id is `None`, and the item follows the
/// documented layout (`PROC#<id>` / `META`, `expires_at` only once the record has ended).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamo_process_store_roundtrips_and_overwrites() {
    let moto = Moto::start().await;
    let client = table_on(&moto).await;
    let store = DynamoJobStore::new(client.clone(), TABLE);
    let source = SourceRef {
        bucket: "media".into(),
        key: "raw/acme/launch/My Clip ü.MOV".into(),
        version: Some("3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY".into()),
    };
    let id = source.id();
    assert_eq!(store.get_process(&id).await.expect("get"), None);

    let running = store
        .save_process(&process_record(&source))
        .await
        .expect("save");
    assert_eq!(
        store.get_process(&id).await.expect("get").as_ref(),
        Some(&running)
    );
    let item = raw_item(&client, &dynamo::process_pk(&id), dynamo::SK_META).await;
    assert_eq!(s_attr(&item, dynamo::ATTR_ENTITY), "process");
    assert_eq!(s_attr(&item, dynamo::ATTR_STATUS), "running");
    assert_eq!(s_attr(&item, dynamo::ATTR_SOURCE_KEY), source.key);
    assert!(!item.contains_key(dynamo::ATTR_EXPIRES_AT), "{item:?}");

    let mut failed = running.clone();
    failed.status = ProcessStatus::Failed;
    failed.updated_at = running.updated_at + TimeDelta::seconds(5);
    failed.error = Some(ProcessFailure {
        error: vidpipe_domain::names::SOURCE_REJECTED.into(),
        reason: "the file has no video stream".into(),
    });
    let failed = store.save_process(&failed).await.expect("overwrite");
    assert_eq!(
        store.get_process(&id).await.expect("get").as_ref(),
        Some(&failed)
    );
    let item = raw_item(&client, &dynamo::process_pk(&id), dynamo::SK_META).await;
    assert_eq!(s_attr(&item, dynamo::ATTR_STATUS), "failed");
    let retention = TimeDelta::seconds(dynamo::PROCESS_RETENTION.as_secs() as i64);
    assert_eq!(
        n_attr(&item, dynamo::ATTR_EXPIRES_AT),
        (failed.updated_at + retention).timestamp()
    );
    // Still exactly one item for the source: the put replaced, it did not add.
    let items = client
        .scan()
        .table_name(TABLE)
        .send()
        .await
        .expect("Scan")
        .items
        .unwrap_or_default();
    assert_eq!(items.len(), 1, "{items:?}");

    let other = SourceRef {
        version: Some("another-version".into()),
        ..source.clone()
    };
    assert_eq!(store.get_process(&other.id()).await.expect("get"), None);
}

/// The dispatcher's start: a deterministic name. A second start under it (a duplicate delivery)
/// never makes a second execution: while the first runs with the same input StartExecution is
/// idempotent, and otherwise (ended, other input) it is `AlreadyExists`, which is not an error.
/// A missing state machine is a permanent error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sfn_named_starts_are_idempotent() {
    let moto = Moto::start().await;
    let client = sfn_client(&moto.sdk().await);
    let machine = client
        .create_state_machine()
        .name("vidpipe-processing")
        .definition(PASS_MACHINE)
        .role_arn("arn:aws:iam::123456789012:role/vidpipe-sfn")
        .send()
        .await
        .expect("create state machine");
    let arn = machine.state_machine_arn();
    let name = "0123456789abcdef0123456789abcdef01234567";
    let input = r#"{"source":{"bucket":"media","key":"raw/a/b/c.mp4"}}"#;
    let start = |input: &str| start_named(&client, arn, name, input.to_owned());
    assert_eq!(start(input).await.expect("first start"), Started::Running);
    // This server does not execute state machines, so the first is still running.
    assert_eq!(start(input).await.expect("same input"), Started::Running);
    let other = r#"{"source":{"bucket":"media","key":"raw/a/b/c.mp4","version":"2"}}"#;
    assert_eq!(
        start(other).await.expect("other input"),
        Started::AlreadyExists
    );
    let executions = client
        .list_executions()
        .state_machine_arn(arn)
        .send()
        .await
        .expect("list executions");
    assert_eq!(executions.executions().len(), 1);
    assert_eq!(executions.executions()[0].name(), name);

    let missing = arn.replace("vidpipe-processing", "no-such-machine");
    let err = start_named(&client, &missing, name, input.to_owned())
        .await
        .expect_err("no such state machine");
    let OrchestratorError::Backend { class, .. } = &err;
    assert_eq!(*class, ErrorClass::Permanent, "{err}");
}
