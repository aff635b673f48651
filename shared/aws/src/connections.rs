//! The live-progress sender on AWS: API Gateway's management API (`PostToConnection`) for the
//! WebSocket API's connections. A `GoneException` (HTTP 410) means the client went away for
//! good; the caller removes the connection.

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_apigatewaymanagement::operation::post_to_connection::PostToConnectionError;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use vidpipe_domain::ports::{LiveSender, SendError};

/// Posts frames to the connections of one WebSocket API stage.
#[derive(Clone)]
pub struct ConnectionsSender {
    client: aws_sdk_apigatewaymanagement::Client,
}

impl ConnectionsSender {
    /// `endpoint` is the stage's management URL, `https://{api}.execute-api.{region}.{suffix}/{stage}`
    /// (or the emulated gateway's).
    pub fn new(sdk: &SdkConfig, endpoint: &str) -> Self {
        let config = aws_sdk_apigatewaymanagement::config::Builder::from(sdk)
            .endpoint_url(endpoint)
            .build();
        Self {
            client: aws_sdk_apigatewaymanagement::Client::from_conf(config),
        }
    }
}

#[async_trait]
impl LiveSender for ConnectionsSender {
    async fn send(&self, connection_id: &str, text: &str) -> Result<(), SendError> {
        match self
            .client
            .post_to_connection()
            .connection_id(connection_id)
            .data(Blob::new(text.as_bytes()))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(err) => match err.as_service_error() {
                Some(PostToConnectionError::GoneException(_)) => {
                    Err(SendError::Gone(connection_id.to_owned()))
                }
                _ => Err(SendError::Failed {
                    connection: connection_id.to_owned(),
                    message: crate::error::describe("PostToConnection", &err),
                }),
            },
        }
    }
}
