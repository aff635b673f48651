//! Lambda entrypoint for the HTTP API: wiring only. Routing, validation, problems and OpenAPI live
//! in `vidpipe_http`.

use std::convert::Infallible;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    vidpipe_lambda::init_tracing();
    let config = vidpipe_lambda::Config::from_env()?;
    let aws = vidpipe_lambda::Aws::load(&config).await;
    let deps = vidpipe_lambda::without_media(&config, &aws).await?;
    let state = vidpipe_http::ApiState {
        uploads: Arc::new(aws.blob_store(&config)?),
        service: Arc::new(vidpipe_lambda::service(&config, &aws, deps)?),
        processing: vidpipe_lambda::upload_service(&config, &aws)?.map(Arc::new),
        base_path: String::new(),
        trust_tenant_header: config.trust_tenant_header,
    };
    let state = &state;
    lambda_http::run(lambda_http::service_fn(move |req| async move {
        Ok::<_, Infallible>(vidpipe_http::handle(state, req).await)
    }))
    .await
}
