//! vidpipe's cross-crate and end-to-end tests, as one test binary: every module below used to be
//! a test target of its own, and each of those linked the AWS SDK (disk and link time nine times
//! over). Run one part with a name filter, e.g.
//! `cargo test -p vidpipe-tests --test suite embedded_process`.
//!
//! - `embedded_*`: the one-machine stack (`LocalStack`), judged by ffprobe and pixels.
//! - `emulated_*`: the serverless stack on emulated AWS (`scripts/emulator/up`).
//! - `stack_wiring`: template.yaml, the ASL and the Rust code agree; `lambda_build`: every
//!   function builds as a release bootstrap.
//! - `error_name_literals`: no Rust file but `vidpipe_domain::names` spells an error name.
//! - `serve_*`: `vidpipe serve` (API parity, live socket, uploads, watch folder, restarts).
//! - `espeak_layer`: the espeak-ng Lambda layer's tree speaks on its own and fits the runtime.

mod embedded_ai;
mod embedded_failures;
mod embedded_generate;
mod embedded_narration;
mod embedded_process;
mod embedded_recompose;
mod embedded_recompose_voice;
mod embedded_validation;
mod embedded_webhooks;
mod emulated_ai;
mod emulated_batch;
mod emulated_failure;
mod emulated_generate;
mod emulated_live;
mod emulated_process;
mod emulated_quotas;
mod emulated_schemathesis;
mod emulated_uploads;
mod error_name_literals;
mod espeak_layer;
mod lambda_build;
mod serve_api;
mod serve_live;
mod serve_load;
mod serve_recompose;
mod serve_restart;
mod serve_support;
mod serve_uploads;
mod stack_wiring;
mod template_ai;
mod template_quotas;
