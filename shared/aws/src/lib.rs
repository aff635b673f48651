//! AWS adapters for the domain ports: DynamoDB for jobs and assets ([`DynamoJobStore`]), S3 for
//! blobs ([`S3BlobStore`]), Step Functions for orchestration ([`SfnOrchestrator`]), Bedrock for
//! plans and clips, Polly for narration ([`PollyNarrator`]).
//!
//! Constructors take SDK clients and resource names and never read the environment (apart from
//! `PollyNarrator::from_env`, named for it, for whoever wires the narrator); `config`
//! builds the clients (path-style S3 behind an emulator). Every SDK failure becomes the port's
//! error with a retryable or permanent class (see `error`).

pub mod bedrock;
pub mod config;
pub mod connections;
pub mod dynamo;
mod error;
pub mod polly;
pub mod s3;
pub mod s3_scoped;
pub mod secrets;
pub mod sfn;

pub use config::AwsClients;
pub use dynamo::DynamoJobStore;
pub use polly::PollyNarrator;
pub use s3::{Encryption, MultipartOptions, PresignedUpload, S3BlobStore};
pub use s3_scoped::{S3PutSigner, S3ReadOnly, S3Timelines};
pub use sfn::SfnOrchestrator;
