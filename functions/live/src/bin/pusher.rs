//! The pusher: on the jobs table's stream, tells each changed job's subscribers what is new
//! (`PostToConnection`), removing gone connections. The work is in `vidpipe_pipeline::live`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    vidpipe_lambda::live::serve_pusher().await
}
