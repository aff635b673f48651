//! Generation: a prompt becomes a planned, generated and composed MP4. Laid out like
//! [`crate::processing`]:
//!
//! | module | what lives there |
//! |---|---|
//! | [`types`] | the values the steps hand each other (ids and keys, never media) |
//! | [`steps`] | one async function per task of `statemachine/generation.asl.json` |
//! | [`clips`] | the clip step: cache, provider chain with fallbacks, submit and poll, leases |
//! | [`planning`] | an LLM planner with the rules plan to fall back on |
//! | [`worker`] | the Fargate worker's hand-off: what it leaves in `temp/` and how finalize and RecordFailure read it |
//! | [`runner`] | the embedded runner, walking the same steps in the ASL's order |
//! | [`manifest`] | `metadata.json`, written beside the composition |
//! | [`recompose`] | a finished job's clips laid out again, with edits, as a new composition |

pub mod clips;
mod levels;
pub mod manifest;
pub mod narration;
pub mod planning;
pub mod recompose;
pub mod runner;
pub mod steps;
pub mod timeline;
pub mod types;
pub mod worker;

pub use clips::{ClipLimits, ProviderChain, cancel_outstanding, generate_clip};
pub use planning::FallbackPlanner;
pub use runner::{EmbeddedOrchestrator, EmbeddedRunner, RunEvent, RunnerConfig};
pub use steps::{StepDeps, compose, finalize, plan, record_failure};
pub use types::*;
pub use worker::{
    WORKER_COMPOSE_OUTPUT, WORKER_FAILURE, finalize_any, run_worker, run_worker_composition,
};
