//! One Lambda per API route. Each route's bootstrap is a thin `main.rs` that names its route and
//! its [`Wiring`]; the wiring builds only the clients that route calls, so the linker leaves the
//! rest of the SDK out of the bootstrap, and [`API_FUNCTIONS`] states what the route's role
//! grants, which `tests/suite/stack_wiring.rs` holds `template.yaml` to exactly.

use crate::config::{Config, ConfigError};
use crate::wiring::NoMedia;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use vidpipe_aws::{
    DynamoJobStore, S3BlobStore, S3PutSigner, S3ReadOnly, S3Timelines, SfnOrchestrator,
};
use vidpipe_domain::ErrorClass;
use vidpipe_domain::plan::RulesPlanner;
use vidpipe_domain::ports::{
    BlobError, BlobMeta, BlobStore, ClipProvider, Orchestrator, OrchestratorError, SignedUpload,
    UploadSigner,
};
use vidpipe_domain::request::Choices;
use vidpipe_http::ApiState;
use vidpipe_http::routes::Operation;
use vidpipe_pipeline::cursor::CursorSeal;
use vidpipe_pipeline::generation::{ClipLimits, ProviderChain};
use vidpipe_pipeline::uploads::UploadService;
use vidpipe_pipeline::{Service, StepDeps};

/// What a route's function may touch. Its role in `template.yaml` grants exactly these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Grant {
    /// Read job, asset, upload and processing records.
    TableRead,
    /// Write them too, tenants' quota counters included.
    TableWrite,
    /// HEAD and GET media objects, and presign GETs of them.
    MediaRead,
    /// Presigned PUTs of brand assets under `uploads/`.
    AssetUpload,
    /// Presigned and multipart uploads of raw footage under `raw/`.
    RawUpload,
    /// Start generation executions.
    StartGeneration,
    /// Stop (and describe) generation executions.
    StopGeneration,
    /// Start processing executions (retries).
    StartProcessing,
    /// Read the provider tokens: cancelling a provider's running call needs its token.
    ProviderSecrets,
    /// PUT a timeline render's document, `compositions/{id}/timeline.json`, and nothing else.
    TimelineWrite,
}

/// A route's function: its template logical id, its binary and what its role grants.
#[derive(Debug, Clone, Copy)]
pub struct ApiFunction {
    pub operation: Operation,
    pub logical_id: &'static str,
    pub bin: &'static str,
    pub grants: &'static [Grant],
}

use Grant::*;

const RECORDS: &[Grant] = &[TableRead];
const RECORDS_AND_MEDIA: &[Grant] = &[TableRead, MediaRead];
const ASSETS: &[Grant] = &[TableWrite, AssetUpload];
const SUBMIT: &[Grant] = &[TableWrite, MediaRead, StartGeneration];
const CANCEL: &[Grant] = &[TableWrite, StopGeneration, ProviderSecrets];
const UPLOADS: &[Grant] = &[TableWrite, MediaRead, RawUpload];
const RETRY: &[Grant] = &[TableWrite, MediaRead, StartProcessing];
/// A recompose records a composition (the job's assets checked by their records), claims the
/// tenant's quotas for it as for a job, and starts its execution.
const RECOMPOSE: &[Grant] = &[TableWrite, StartGeneration];
/// A timeline is validated against the tenant's records and the clip cache (read), its document
/// stored and its composition recorded, and its execution started; a dry run only reads.
const TIMELINES: &[Grant] = &[TableWrite, MediaRead, TimelineWrite, StartGeneration];
/// `GET /v1/webhook-secret` makes the secret on first use, and the rotation writes it. (The
/// deliveries routes only read: [`Records`].)
pub const WEBHOOK_SECRETS: &[Grant] = &[TableWrite];

macro_rules! function {
    ($op:ident, $id:literal, $bin:literal, $grants:expr) => {
        ApiFunction {
            operation: Operation::$op,
            logical_id: $id,
            bin: $bin,
            grants: $grants,
        }
    };
}

/// Every route's function, in route-table order.
pub static API_FUNCTIONS: &[ApiFunction] = &[
    function!(
        SubmitGeneration,
        "SubmitGenerationFunction",
        "vidpipe-api-submit-generation",
        SUBMIT
    ),
    function!(
        ListGenerations,
        "ListGenerationsFunction",
        "vidpipe-api-list-generations",
        RECORDS
    ),
    function!(
        GetGeneration,
        "GetGenerationFunction",
        "vidpipe-api-get-generation",
        RECORDS_AND_MEDIA
    ),
    function!(
        CancelGeneration,
        "CancelGenerationFunction",
        "vidpipe-api-cancel-generation",
        CANCEL
    ),
    function!(
        DownloadGeneration,
        "DownloadGenerationFunction",
        "vidpipe-api-download-generation",
        RECORDS_AND_MEDIA
    ),
    function!(
        CreateAsset,
        "CreateAssetFunction",
        "vidpipe-api-create-asset",
        ASSETS
    ),
    function!(
        GetAsset,
        "GetAssetFunction",
        "vidpipe-api-get-asset",
        RECORDS_AND_MEDIA
    ),
    function!(
        CreateUpload,
        "CreateUploadFunction",
        "vidpipe-api-create-upload",
        UPLOADS
    ),
    function!(
        CompleteUpload,
        "CompleteUploadFunction",
        "vidpipe-api-complete-upload",
        UPLOADS
    ),
    function!(
        AbortUpload,
        "AbortUploadFunction",
        "vidpipe-api-abort-upload",
        UPLOADS
    ),
    function!(
        ListProcessingJobs,
        "ListProcessingJobsFunction",
        "vidpipe-api-list-processing-jobs",
        RECORDS
    ),
    function!(
        GetProcessingJob,
        "GetProcessingJobFunction",
        "vidpipe-api-get-processing-job",
        RECORDS_AND_MEDIA
    ),
    function!(
        DownloadProcessingJob,
        "DownloadProcessingJobFunction",
        "vidpipe-api-download-processing-job",
        RECORDS_AND_MEDIA
    ),
    function!(
        RetryProcessingJob,
        "RetryProcessingJobFunction",
        "vidpipe-api-retry-processing-job",
        RETRY
    ),
    function!(
        GetWebhookSecret,
        "GetWebhookSecretFunction",
        "vidpipe-api-get-webhook-secret",
        WEBHOOK_SECRETS
    ),
    function!(
        RotateWebhookSecret,
        "RotateWebhookSecretFunction",
        "vidpipe-api-rotate-webhook-secret",
        WEBHOOK_SECRETS
    ),
    function!(
        ListGenerationDeliveries,
        "ListGenerationDeliveriesFunction",
        "vidpipe-api-list-generation-deliveries",
        RECORDS
    ),
    function!(
        ListProcessingDeliveries,
        "ListProcessingDeliveriesFunction",
        "vidpipe-api-list-processing-deliveries",
        RECORDS
    ),
    // A batch submits its items exactly as single submissions are submitted (the batch record
    // is one more table write), so it needs what a submit needs and nothing more.
    function!(
        SubmitGenerationBatch,
        "SubmitGenerationBatchFunction",
        "vidpipe-api-submit-generation-batch",
        SUBMIT
    ),
    function!(
        GetGenerationBatch,
        "GetGenerationBatchFunction",
        "vidpipe-api-get-generation-batch",
        RECORDS
    ),
    function!(
        RecomposeGeneration,
        "RecomposeGenerationFunction",
        "vidpipe-api-recompose-generation",
        RECOMPOSE
    ),
    // Each completed version carries presigned URLs, as a generation's download does.
    function!(
        ListCompositions,
        "ListCompositionsFunction",
        "vidpipe-api-list-compositions",
        RECORDS_AND_MEDIA
    ),
    // Validates a timeline and predicts it (the tenant's assets and generations read, the clip
    // cache HEADed); a render is accepted here and rendered by the state machine.
    function!(
        CreateComposition,
        "CreateCompositionFunction",
        "vidpipe-api-create-composition",
        TIMELINES
    ),
    // A timeline render's record, with presigned URLs once completed.
    function!(
        GetComposition,
        "GetCompositionFunction",
        "vidpipe-api-get-composition",
        RECORDS_AND_MEDIA
    ),
];

/// The function deployed for a route.
pub fn function_for(operation: Operation) -> &'static ApiFunction {
    API_FUNCTIONS
        .iter()
        .find(|f| f.operation == operation)
        .expect("every operation has a function (checked by the route table's tests)")
}

/// Builds a route's [`ApiState`] from the clients its grants allow, and nothing else.
pub trait Wiring {
    /// What the wiring's clients call; must equal the route's [`ApiFunction::grants`].
    const GRANTS: &'static [Grant];
    fn state(config: &Config) -> impl Future<Output = Result<ApiState, ConfigError>> + Send;
}

/// The whole life of one route's function: configuration and clients once per cold start, then
/// one request per invocation.
pub async fn serve<W: Wiring>(operation: Operation) -> Result<(), lambda_http::Error> {
    crate::init_tracing();
    let function = function_for(operation);
    if W::GRANTS != function.grants {
        // A main.rs naming the wrong wiring would run with clients its role cannot use.
        return Err(ConfigError::Invalid {
            name: "wiring",
            why: format!(
                "{} is wired for {:?} but its role grants {:?}",
                function.bin,
                W::GRANTS,
                function.grants
            ),
        }
        .into());
    }
    let config = Config::from_env()?;
    let state = W::state(&config).await?;
    let state = &state;
    lambda_http::run(lambda_http::service_fn(move |req| async move {
        Ok::<_, Infallible>(vidpipe_http::handle_only(state, operation, req).await)
    }))
    .await
}

/// Job, asset and processing records only.
pub struct Records;
/// Records, and media objects to read and presign.
pub struct RecordsAndMedia;
/// Records written, brand assets presigned for upload.
pub struct Assets;
/// Jobs admitted (quotas counted), their assets checked, executions started.
pub struct Submit;
/// Jobs cancelled: executions stopped, providers' running calls cancelled, quota released.
pub struct Cancel;
/// Compositions recorded for completed jobs, their executions started.
pub struct Recompose;
/// Timelines validated and predicted, or stored, recorded and their executions started.
pub struct Timelines;
/// Raw uploads announced, completed and aborted.
pub struct Uploads;
/// Failed processing jobs started again from their raw object.
pub struct Retry;

impl Wiring for Records {
    const GRANTS: &'static [Grant] = RECORDS;
    async fn state(config: &Config) -> Result<ApiState, ConfigError> {
        let clients = Clients::load(config);
        let store = clients.store(config)?;
        state(
            config,
            store.clone(),
            Arc::new(Unwired),
            Arc::new(Unwired),
            Some(store),
            None,
        )
    }
}

impl Wiring for RecordsAndMedia {
    const GRANTS: &'static [Grant] = RECORDS_AND_MEDIA;
    async fn state(config: &Config) -> Result<ApiState, ConfigError> {
        let clients = Clients::load(config);
        let store = clients.store(config)?;
        let media: Arc<dyn BlobStore> = Arc::new(S3ReadOnly(clients.bucket(config)?));
        state(
            config,
            store.clone(),
            media,
            Arc::new(Unwired),
            Some(store),
            None,
        )
    }
}

impl Wiring for Assets {
    const GRANTS: &'static [Grant] = ASSETS;
    async fn state(config: &Config) -> Result<ApiState, ConfigError> {
        let clients = Clients::load(config);
        let store = clients.store(config)?;
        let mut state = state(
            config,
            store,
            Arc::new(Unwired),
            Arc::new(Unwired),
            None,
            None,
        )?;
        state.uploads = Arc::new(S3PutSigner(clients.bucket(config)?));
        Ok(state)
    }
}

impl Wiring for Submit {
    const GRANTS: &'static [Grant] = SUBMIT;
    async fn state(config: &Config) -> Result<ApiState, ConfigError> {
        let clients = Clients::load(config);
        let store = clients.store(config)?;
        let media: Arc<dyn BlobStore> = Arc::new(S3ReadOnly(clients.bucket(config)?));
        let orchestrator = clients.orchestrator(config)?;
        state(config, store, media, orchestrator, None, None)
    }
}

impl Wiring for Recompose {
    const GRANTS: &'static [Grant] = RECOMPOSE;
    async fn state(config: &Config) -> Result<ApiState, ConfigError> {
        let clients = Clients::load(config);
        let store = clients.store(config)?;
        let orchestrator = clients.orchestrator(config)?;
        state(config, store, Arc::new(Unwired), orchestrator, None, None)
    }
}

impl Wiring for Timelines {
    const GRANTS: &'static [Grant] = TIMELINES;
    async fn state(config: &Config) -> Result<ApiState, ConfigError> {
        let clients = Clients::load(config);
        let store = clients.store(config)?;
        let media: Arc<dyn BlobStore> = Arc::new(S3Timelines(clients.bucket(config)?));
        let orchestrator = clients.orchestrator(config)?;
        // The stack's own chain, so a dry run and a render's prediction name and price the
        // providers the generation function will call.
        let chain = crate::wiring::described_chain(config);
        state(config, store, media, orchestrator, None, Some(chain))
    }
}

impl Wiring for Cancel {
    const GRANTS: &'static [Grant] = CANCEL;
    async fn state(config: &Config) -> Result<ApiState, ConfigError> {
        let clients = Clients::load(config);
        let store = clients.store(config)?;
        let orchestrator = clients.orchestrator(config)?;
        let env = |k: &str| config.ai_env.get(k);
        let secrets = crate::ai::SecretValues::resolve(&env, &clients.sdk).await?;
        let cancellers = crate::ai::cancellers(&config.providers, &secrets.over(&env))?;
        state(
            config,
            store,
            Arc::new(Unwired),
            orchestrator,
            None,
            Some(cancellers),
        )
    }
}

impl Wiring for Uploads {
    const GRANTS: &'static [Grant] = UPLOADS;
    async fn state(config: &Config) -> Result<ApiState, ConfigError> {
        let clients = Clients::load(config);
        let store = clients.store(config)?;
        let bucket = clients.bucket(config)?;
        let mut state = state(
            config,
            store.clone(),
            Arc::new(Unwired),
            Arc::new(Unwired),
            None,
            None,
        )?;
        state.processing = Some(Arc::new(UploadService {
            uploads: store.clone(),
            records: store,
            blobs: Arc::new(S3ReadOnly(bucket.clone())),
            signer: Arc::new(bucket),
            starter: None,
            policy: config.upload,
            webhook_rules: config.webhook_settings().url_rules,
            cursors: Some(cursor_seal(config)?),
        }));
        Ok(state)
    }
}

impl Wiring for Retry {
    const GRANTS: &'static [Grant] = RETRY;
    async fn state(config: &Config) -> Result<ApiState, ConfigError> {
        let clients = Clients::load(config);
        let store = clients.store(config)?;
        let arn = config
            .processing_state_machine_arn
            .clone()
            .ok_or(ConfigError::Missing("VIDPIPE_PROCESSING_STATE_MACHINE_ARN"))?;
        let sfn = vidpipe_aws::config::sfn_client(&clients.sdk);
        let mut state = state(
            config,
            store.clone(),
            Arc::new(Unwired),
            Arc::new(Unwired),
            None,
            None,
        )?;
        state.processing = Some(Arc::new(UploadService {
            uploads: store.clone(),
            records: store,
            blobs: Arc::new(S3ReadOnly(clients.bucket(config)?)),
            signer: Arc::new(Unwired),
            starter: Some(Arc::new(crate::dispatch::SfnProcessStarter::new(sfn, arn))),
            policy: config.upload,
            webhook_rules: config.webhook_settings().url_rules,
            cursors: Some(cursor_seal(config)?),
        }));
        Ok(state)
    }
}

/// A tenant's webhook secret, read (made on first use) and rotated: the table, nothing else.
pub struct WebhookSecrets;

impl Wiring for WebhookSecrets {
    const GRANTS: &'static [Grant] = WEBHOOK_SECRETS;
    async fn state(config: &Config) -> Result<ApiState, ConfigError> {
        let clients = Clients::load(config);
        let store = clients.store(config)?;
        state(
            config,
            store,
            Arc::new(Unwired),
            Arc::new(Unwired),
            None,
            None,
        )
    }
}

/// The SDK configuration, and the clients built from it only when a wiring asks: building a
/// client links its endpoint rules, which for S3 alone are a sizeable share of a bootstrap.
struct Clients {
    sdk: aws_config::SdkConfig,
}

impl Clients {
    fn load(config: &Config) -> Self {
        Self {
            sdk: vidpipe_aws::config::lambda_sdk_config(config.endpoint_url.as_deref()),
        }
    }

    fn store(&self, config: &Config) -> Result<Arc<DynamoJobStore>, ConfigError> {
        Ok(Arc::new(DynamoJobStore::new(
            vidpipe_aws::config::dynamodb_client(&self.sdk),
            config.table()?,
        )))
    }

    fn bucket(&self, config: &Config) -> Result<S3BlobStore, ConfigError> {
        crate::wiring::media_bucket(vidpipe_aws::config::s3_client(&self.sdk), config)
    }

    /// The generation state machine, for the routes that start or stop its executions.
    fn orchestrator(&self, config: &Config) -> Result<Arc<SfnOrchestrator>, ConfigError> {
        let arn = config
            .state_machine_arn
            .clone()
            .ok_or(ConfigError::Missing("VIDPIPE_STATE_MACHINE_ARN"))?;
        let sfn = vidpipe_aws::config::sfn_client(&self.sdk);
        Ok(Arc::new(SfnOrchestrator::new(sfn, arn)))
    }
}

/// The API state over a job store, the media bucket as far as the route may touch it, and the
/// orchestrator if it starts or stops executions. `processing_reads` wires the processing routes'
/// record reads; `cancellers` are the providers whose running calls a cancel stops, or the chain a
/// timeline is predicted with.
fn state(
    config: &Config,
    store: Arc<DynamoJobStore>,
    media: Arc<dyn BlobStore>,
    orchestrator: Arc<dyn Orchestrator>,
    processing_reads: Option<Arc<DynamoJobStore>>,
    cancellers: Option<Vec<Arc<dyn ClipProvider>>>,
) -> Result<ApiState, ConfigError> {
    let absent = Arc::new(NoMedia::new());
    let providers = match cancellers {
        Some(list) if !list.is_empty() => list,
        _ => vec![absent.clone() as Arc<dyn ClipProvider>],
    };
    let deps = StepDeps {
        jobs: store.clone(),
        blobs: media.clone(),
        planner: Arc::new(RulesPlanner),
        providers: ProviderChain::new(providers),
        narrators: None,
        leases: Some(store.clone()),
        quotas: Some(store.clone()),
        // Submit and upload announcements check webhook URLs by the stack's rules; the webhook
        // routes read the tenant's secrets and deliveries from the same table.
        webhooks: Some(crate::wiring::webhooks(config, &store)?),
        clip_limits: ClipLimits::default(),
        media: absent,
        scratch_dir: config.scratch_dir.clone(),
        worker_threshold_frames: config.compose_worker_threshold_frames,
        memory_mb: config.memory_mb,
    };
    let service = Service::new(deps, orchestrator)
        // The steps run in other functions, with the deployment's chain and planner.
        .with_choices(Choices::of(
            config
                .providers
                .iter()
                .map(|k| k.as_str().to_owned())
                .collect(),
            config.planner.as_str(),
        ))
        .with_quota_limits(config.quota_limits)
        .with_batches(store.clone())
        .with_cursor_seal(cursor_seal(config)?);
    let processing = match processing_reads {
        Some(records) => Some(Arc::new(UploadService {
            uploads: records.clone(),
            records,
            blobs: media,
            signer: Arc::new(Unwired),
            starter: None,
            policy: config.upload,
            webhook_rules: config.webhook_settings().url_rules,
            cursors: Some(cursor_seal(config)?),
        })),
        None => None,
    };
    Ok(ApiState {
        service: Arc::new(service),
        uploads: Arc::new(Unwired),
        processing,
        base_path: String::new(),
        trust_tenant_header: config.trust_tenant_header,
    })
}

/// The stack's cursor key, shared by every route's function so a cursor one issued pages on
/// another; without one (a development setup), a key of this instance's own.
fn cursor_seal(config: &Config) -> Result<CursorSeal, ConfigError> {
    let sealed = match &config.cursor_key {
        Some(key) => CursorSeal::from_secret(key.material()),
        // Only the list routes are given the key; the others issue no cursors.
        None => CursorSeal::ephemeral(),
    };
    sealed.map_err(|e| ConfigError::Invalid {
        name: "VIDPIPE_CURSOR_KEY",
        why: e.to_string(),
    })
}

/// What a route's function has no client for: the media bucket, uploads, the orchestrator. Only a
/// wiring mistake reaches it (the route's role could not make the call either), and it fails as
/// a permanent error naming what is missing.
struct Unwired;

impl Unwired {
    fn blob(what: &str) -> BlobError {
        BlobError::Backend {
            message: format!("this route's function has no media bucket access ({what})"),
            class: ErrorClass::Permanent,
            source: None,
        }
    }
}

#[async_trait::async_trait]
impl BlobStore for Unwired {
    async fn put_file(&self, key: &str, _: &std::path::Path, _: &str) -> Result<(), BlobError> {
        Err(Self::blob(key))
    }
    async fn put_bytes(&self, key: &str, _: Vec<u8>, _: &str) -> Result<(), BlobError> {
        Err(Self::blob(key))
    }
    async fn get_to_file(&self, key: &str, _: &std::path::Path) -> Result<(), BlobError> {
        Err(Self::blob(key))
    }
    async fn get_bytes(&self, key: &str) -> Result<Vec<u8>, BlobError> {
        Err(Self::blob(key))
    }
    async fn head(&self, key: &str) -> Result<Option<BlobMeta>, BlobError> {
        Err(Self::blob(key))
    }
    async fn copy(&self, from: &str, _: &str) -> Result<(), BlobError> {
        Err(Self::blob(from))
    }
    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        Err(Self::blob(key))
    }
    async fn list(&self, prefix: &str) -> Result<Vec<BlobMeta>, BlobError> {
        Err(Self::blob(prefix))
    }
    async fn presign_get(&self, key: &str, _: std::time::Duration) -> Result<String, BlobError> {
        Err(Self::blob(key))
    }
    async fn media_source(
        &self,
        key: &str,
        _: std::time::Duration,
    ) -> Result<vidpipe_domain::media::MediaSource, BlobError> {
        Err(Self::blob(key))
    }
}

#[async_trait::async_trait]
impl UploadSigner for Unwired {
    async fn presign_put(
        &self,
        key: &str,
        _: &str,
        _: u64,
        _: std::time::Duration,
    ) -> Result<SignedUpload, BlobError> {
        Err(Self::blob(key))
    }
}

#[async_trait::async_trait]
impl Orchestrator for Unwired {
    async fn start(&self, job: &vidpipe_domain::job::JobId) -> Result<(), OrchestratorError> {
        Err(unwired_orchestrator(job))
    }
    async fn cancel(&self, job: &vidpipe_domain::job::JobId) -> Result<(), OrchestratorError> {
        Err(unwired_orchestrator(job))
    }
}

fn unwired_orchestrator(job: &vidpipe_domain::job::JobId) -> OrchestratorError {
    OrchestratorError::Backend {
        message: format!("this route's function starts and stops no executions (job {job})"),
        class: ErrorClass::Permanent,
        source: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_has_exactly_one_function_with_a_distinct_name() {
        let routes = vidpipe_http::routes::ROUTES;
        assert_eq!(API_FUNCTIONS.len(), routes.len());
        for (route, function) in routes.iter().zip(API_FUNCTIONS) {
            assert_eq!(route.operation, function.operation, "route-table order");
            assert!(function.logical_id.ends_with("Function"));
            assert!(function.bin.starts_with("vidpipe-api-"));
        }
        let mut ids: Vec<_> = API_FUNCTIONS.iter().map(|f| f.logical_id).collect();
        let mut bins: Vec<_> = API_FUNCTIONS.iter().map(|f| f.bin).collect();
        ids.sort();
        ids.dedup();
        bins.sort();
        bins.dedup();
        assert_eq!(ids.len(), API_FUNCTIONS.len());
        assert_eq!(bins.len(), API_FUNCTIONS.len());
    }

    #[test]
    fn read_routes_write_nothing() {
        for f in API_FUNCTIONS {
            let reads = matches!(
                f.operation,
                Operation::ListGenerations
                    | Operation::GetGeneration
                    | Operation::DownloadGeneration
                    | Operation::GetAsset
                    | Operation::ListProcessingJobs
                    | Operation::GetProcessingJob
                    | Operation::DownloadProcessingJob
                    | Operation::ListGenerationDeliveries
                    | Operation::ListProcessingDeliveries
                    | Operation::GetGenerationBatch
                    | Operation::ListCompositions
                    | Operation::GetComposition
            );
            assert_eq!(reads, !f.grants.contains(&TableWrite), "{}", f.bin);
            if reads {
                assert!(
                    f.grants.iter().all(|g| matches!(g, TableRead | MediaRead)),
                    "{} may only read",
                    f.bin
                );
            }
        }
    }
}
