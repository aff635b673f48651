//! API tokens kept in SSM Parameter Store, read once per cold start. A SecureString parameter, or
//! a Secrets Manager secret through its `/aws/reference/secretsmanager/NAME` parameter path: one
//! client serves both. Values never reach a log or an error.

use aws_config::SdkConfig;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The message names the parameter, never its value.
    #[error("cannot read the secret parameter {name}: {why}")]
    Unreadable { name: String, why: String },
}

pub struct Secrets {
    client: aws_sdk_ssm::Client,
}

impl Secrets {
    pub fn new(sdk: &SdkConfig) -> Self {
        Self {
            client: aws_sdk_ssm::Client::new(sdk),
        }
    }

    /// The decrypted value of one parameter.
    pub async fn read(&self, name: &str) -> Result<String, SecretError> {
        let unreadable = |why: String| SecretError::Unreadable {
            name: name.to_owned(),
            why,
        };
        let out = self
            .client
            .get_parameter()
            .name(name)
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| {
                let service = e.as_service_error().map(|s| s.to_string());
                unreadable(service.unwrap_or_else(|| "the request failed".into()))
            })?;
        out.parameter
            .and_then(|p| p.value)
            .filter(|v| !v.trim().is_empty())
            .map(|v| v.trim().to_owned())
            .ok_or_else(|| unreadable("it has no value".into()))
    }
}
