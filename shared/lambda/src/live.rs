//! The live-progress functions of the stack's WebSocket API, one Lambda each: `$connect` (the
//! bearer JWT verified against the issuer's keys), `$disconnect`, `$default` (subscribe and
//! unsubscribe frames) and the pusher on the jobs table's stream. Each builds the
//! [`Live`] service once per cold start; the work is in `vidpipe_pipeline::live`.
//!
//! Their settings beyond [`Config`]: `VIDPIPE_LIVE_TABLE` (connections and subscriptions),
//! `VIDPIPE_LIVE_ENDPOINT` (the stage's `@connections` management URL), and for `$connect`
//! `VIDPIPE_JWT_ISSUER` and `VIDPIPE_JWT_AUDIENCE` (comma-separated).

use crate::config::{Config, ConfigError};
use crate::jwt::{JwtVerifier, connect_token};
use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::dynamodb::Event as StreamEvent;
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use lambda_runtime::{LambdaEvent, service_fn};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::OnceCell;
use vidpipe_aws::connections::ConnectionsSender;
use vidpipe_aws::dynamo::DynamoLiveStore;
use vidpipe_aws::{DynamoJobStore, config::load_sdk_config};
use vidpipe_pipeline::live::Live;

/// Which of the WebSocket API's functions this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveRoute {
    Connect,
    Disconnect,
    Message,
}

fn env(name: &'static str) -> Result<String, ConfigError> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or(ConfigError::Missing(name))
}

async fn live_service() -> Result<(Live, Config), ConfigError> {
    let config = Config::from_env()?;
    let sdk = load_sdk_config(config.endpoint_url.as_deref()).await;
    let dynamodb = vidpipe_aws::config::dynamodb_client(&sdk);
    let records = Arc::new(DynamoJobStore::new(dynamodb.clone(), config.table()?));
    let blobs = crate::wiring::media_bucket(vidpipe_aws::config::s3_client(&sdk), &config)?;
    let live = Live {
        store: Arc::new(DynamoLiveStore::new(dynamodb, env("VIDPIPE_LIVE_TABLE")?)),
        jobs: records.clone(),
        processes: records,
        blobs: Arc::new(blobs),
        sender: Arc::new(ConnectionsSender::new(&sdk, &env("VIDPIPE_LIVE_ENDPOINT")?)),
    };
    Ok((live, config))
}

fn answer(status: i64) -> ApiGatewayProxyResponse {
    ApiGatewayProxyResponse {
        status_code: status,
        ..Default::default()
    }
}

/// One WebSocket route's function for its whole life.
pub async fn serve_live(route: LiveRoute) -> Result<(), lambda_runtime::Error> {
    crate::init_tracing();
    let (live, config) = live_service().await?;
    let auth = match route {
        LiveRoute::Connect if !config.trust_tenant_header => Some((
            env("VIDPIPE_JWT_ISSUER")?,
            env("VIDPIPE_JWT_AUDIENCE")?
                .split(',')
                .map(|a| a.trim().to_owned())
                .filter(|a| !a.is_empty())
                .collect::<Vec<_>>(),
        )),
        _ => None,
    };
    // The issuer's keys are read on the first connect, not at start, so a slow issuer never
    // fails the cold start; a failed read is tried again on the next connect.
    let keys: OnceCell<JwtVerifier> = OnceCell::new();
    let (live, auth, keys) = (&live, &auth, &keys);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            let req = event.payload;
            let Some(connection) = req.request_context.connection_id.clone() else {
                return Ok::<_, lambda_runtime::Error>(answer(400));
            };
            let outcome = match route {
                LiveRoute::Connect => {
                    return Ok(connect(live, auth.as_ref(), keys, &connection, &req).await);
                }
                LiveRoute::Disconnect => live.disconnect(&connection).await,
                LiveRoute::Message => {
                    live.message(&connection, req.body.as_deref().unwrap_or(""))
                        .await
                }
            };
            Ok(match outcome {
                Ok(()) => answer(200),
                Err(e) => {
                    tracing::error!(error = %e, connection, ?route, "live route failed");
                    answer(500)
                }
            })
        },
    ))
    .await
}

/// `$connect`: any answer but 2xx refuses the connection. With a subprotocol token, the
/// subprotocol is echoed, as browsers require of the server.
async fn connect(
    live: &Live,
    auth: Option<&(String, Vec<String>)>,
    keys: &OnceCell<JwtVerifier>,
    connection: &str,
    req: &ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse {
    let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
    let query = |name: &str| req.query_string_parameters.first(name);
    let protocols = header("sec-websocket-protocol");
    let (tenant, protocol) = match auth {
        // Emulation only (VIDPIPE_TRUST_TENANT_HEADER), as over HTTP.
        None => match header(vidpipe_http::context::TENANT_HEADER).or(query("tenant")) {
            Some(t) if !t.is_empty() => (t.to_owned(), None),
            _ => return answer(401),
        },
        Some((issuer, audiences)) => {
            let Some((token, protocol)) = connect_token(query("token"), protocols) else {
                return answer(401);
            };
            let verifier = match keys
                .get_or_try_init(|| JwtVerifier::discover(issuer, audiences))
                .await
            {
                Ok(v) => v,
                Err(e) => {
                    tracing::error!(error = %e, "the issuer's keys could not be read");
                    return answer(503);
                }
            };
            match verifier.verify(&token, chrono::Utc::now().timestamp()) {
                Ok(tenant) => (tenant, protocol),
                Err(e) => {
                    tracing::info!(error = %e, connection, "connect refused");
                    return answer(401);
                }
            }
        }
    };
    if let Err(e) = live.connect(connection, &tenant).await {
        tracing::error!(error = %e, connection, "connection not recorded");
        return answer(500);
    }
    let mut ok = answer(200);
    if let Some(p) = protocol.and_then(|p| p.parse().ok()) {
        ok.headers.insert("sec-websocket-protocol", p);
    }
    ok
}

/// The job a jobs-table item belongs to: a job's record and its clips (`JOB#<id>`), a
/// processing record (`PROC#<id>`). Other items (quotas, webhooks, uploads) tell nobody.
pub fn job_of_keys(keys: &serde_json::Value) -> Option<String> {
    let pk = keys.get("PK")?.get("S")?.as_str()?;
    pk.strip_prefix("JOB#")
        .or_else(|| pk.strip_prefix("PROC#"))
        .map(str::to_owned)
}

/// The pusher: each job changed in the batch is told to its subscribers once, in the order its
/// first record came. A connection's failure never fails the batch; only failing to read a job
/// or its subscribers reports that job's first record as a batch item failure, so the stream
/// mapping retries from there (bounded by its retry and age limits, bisecting the batch).
pub async fn push_batch(live: &Live, event: StreamEvent) -> DynamoDbEventResponse {
    let mut jobs: BTreeMap<usize, (String, Option<String>)> = BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    for (i, record) in event.records.iter().enumerate() {
        let keys = serde_json::to_value(&record.change.keys).unwrap_or_default();
        if let Some(job) = job_of_keys(&keys)
            && seen.insert(job.clone())
        {
            jobs.insert(i, (job, record.change.sequence_number.clone()));
        }
    }
    let mut failures = Vec::new();
    for (job, sequence) in jobs.into_values() {
        match live.job_changed(&job).await {
            Ok(report) => tracing::info!(
                job,
                sent = report.events_sent,
                removed = report.connections_removed,
                failed = report.failures,
                "pushed"
            ),
            Err(e) => {
                tracing::error!(error = %e, job, "subscribers not told; the batch is retried from this job");
                failures.push(DynamoDbBatchItemFailure {
                    item_identifier: sequence,
                });
                // Later records are retried with it: the mapping resumes at the first failure.
                break;
            }
        }
    }
    DynamoDbEventResponse {
        batch_item_failures: failures,
    }
}

/// The pusher function for its whole life.
pub async fn serve_pusher() -> Result<(), lambda_runtime::Error> {
    crate::init_tracing();
    let (live, _) = live_service().await?;
    let live = &live;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<StreamEvent>| async move {
            Ok::<_, lambda_runtime::Error>(push_batch(live, event.payload).await)
        },
    ))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_job_and_processing_items_name_a_job() {
        let keys = |pk: &str| serde_json::json!({"PK": {"S": pk}, "SK": {"S": "META"}});
        assert_eq!(job_of_keys(&keys("JOB#job_1")), Some("job_1".into()));
        assert_eq!(job_of_keys(&keys("PROC#ab12")), Some("ab12".into()));
        assert_eq!(job_of_keys(&keys("QUOTA#alice")), None);
        assert_eq!(job_of_keys(&serde_json::json!({})), None);
    }
}
