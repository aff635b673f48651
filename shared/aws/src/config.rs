//! Building the SDK clients the adapters take, with the emulator quirks applied in one place.
//!
//! This module reads no environment of its own: the Lambda crate's `Config::from_env()` does that
//! once per cold start (`VIDPIPE_TABLE`, `VIDPIPE_BUCKET`, `VIDPIPE_STATE_MACHINE_ARN`,
//! `AWS_ENDPOINT_URL`) and passes names and clients in. The SDK's own default chain still finds
//! credentials and region, and honours `AWS_ENDPOINT_URL` when it loads; [`lambda_sdk_config`]
//! reads only the variables Lambda itself sets.

use aws_config::{BehaviorVersion, ConfigLoader, Region, SdkConfig};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

/// The three SDK clients the adapters need, from one loaded configuration.
#[derive(Debug, Clone)]
pub struct AwsClients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub s3: aws_sdk_s3::Client,
    pub sfn: aws_sdk_sfn::Client,
}

impl AwsClients {
    pub fn new(sdk: &SdkConfig) -> Self {
        Self {
            dynamodb: dynamodb_client(sdk),
            s3: s3_client(sdk),
            sfn: sfn_client(sdk),
        }
    }
}

/// The default provider chain (credentials, region), with `endpoint_url` overriding every
/// service's endpoint when given. Load once per cold start and share the result.
pub async fn load_sdk_config(endpoint_url: Option<&str>) -> SdkConfig {
    let mut loader = defaults();
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// The SDK's defaults with one HTTPS client: rustls with ring, chosen over the SDK's default
/// aws-lc because ring is a fraction of the size in every bootstrap and builds without cmake for
/// arm64. Credential providers (container, IMDS) use the same client.
fn defaults() -> ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest()).http_client(https())
}

fn https() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// What a Lambda function needs, and no more: the region and credentials Lambda puts in the
/// environment (`AWS_REGION`; `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`),
/// standard retries and the SDK's connect timeout. [`load_sdk_config`]'s default chain also links
/// the profile-file parser and the STS, SSO, ECS and IMDS credential providers, about 0.4 MB of
/// every bootstrap, none of which a Lambda function ever uses. The API's route functions, which
/// must stay small, start with this.
pub fn lambda_sdk_config(endpoint_url: Option<&str>) -> SdkConfig {
    use aws_config::environment::credentials::EnvironmentVariableCredentialsProvider;
    use aws_credential_types::provider::SharedCredentialsProvider;
    use aws_smithy_async::rt::sleep::{SharedAsyncSleep, TokioSleep};
    use aws_smithy_async::time::SharedTimeSource;
    use aws_smithy_types::retry::RetryConfig;
    use aws_smithy_types::timeout::TimeoutConfig;
    let region = std::env::var("AWS_REGION")
        .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
        .ok()
        .map(Region::new);
    let mut builder = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .credentials_provider(SharedCredentialsProvider::new(
            EnvironmentVariableCredentialsProvider::new(),
        ))
        .http_client(https())
        .sleep_impl(SharedAsyncSleep::new(TokioSleep::new()))
        .time_source(SharedTimeSource::default())
        .retry_config(RetryConfig::standard())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(std::time::Duration::from_millis(3100))
                .build(),
        );
    builder.set_region(region);
    if let Some(url) = endpoint_url {
        builder = builder.endpoint_url(url);
    }
    builder.build()
}

pub fn dynamodb_client(sdk: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(sdk)
}

/// Path-style addressing whenever the endpoint is overridden: emulators (moto, s3s-fs) serve one
/// host, and virtual-hosted names such as `bucket.127.0.0.1` do not resolve.
pub fn s3_client(sdk: &SdkConfig) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(sdk.endpoint_url().is_some())
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

pub fn sfn_client(sdk: &SdkConfig) -> aws_sdk_sfn::Client {
    aws_sdk_sfn::Client::new(sdk)
}

/// An SDK configuration for an emulator at `endpoint_url`: dummy credentials and `us-east-1`,
/// given explicitly rather than through the process environment, so tests running in parallel
/// never depend on or disturb each other's settings. Never for real AWS.
pub async fn emulator_sdk_config(endpoint_url: &str) -> SdkConfig {
    let credentials =
        aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "vidpipe-emulator");
    defaults()
        .region(Region::new("us-east-1"))
        .credentials_provider(credentials)
        .endpoint_url(endpoint_url)
        .load()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::presigning::PresigningConfig;
    use std::time::Duration;

    #[tokio::test]
    async fn an_endpoint_override_switches_s3_to_path_style() {
        // Presigning is offline, so the URL shows the addressing style without a server.
        let clients = AwsClients::new(&emulator_sdk_config("http://127.0.0.1:1").await);
        let presigned = clients
            .s3
            .get_object()
            .bucket("media")
            .key("a/b.mp4")
            .presigned(PresigningConfig::expires_in(Duration::from_secs(60)).expect("ttl"))
            .await
            .expect("presign");
        assert!(
            presigned
                .uri()
                .starts_with("http://127.0.0.1:1/media/a/b.mp4?"),
            "{}",
            presigned.uri()
        );
    }
}
