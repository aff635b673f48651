//! Upload processing: a raw upload becomes trimmed, watermarked platform renditions, a thumbnail
//! and a manifest. Laid out like [`crate::generation`]:
//!
//! | module | what lives there |
//! |---|---|
//! | [`types`] | the values the steps hand each other (keys and numbers, never media) |
//! | [`steps`] | one async function per task of `statemachine/processing.asl.json` |
//! | [`worker`] | the Fargate worker's hand-off: what it leaves in `temp/` and how publish and RecordFailure read it |
//! | [`runner`] | the embedded runner, walking the same steps in the ASL's order |
//! | [`manifest`] | the manifest published beside the outputs, and its cost figures |

pub mod manifest;
pub mod runner;
pub mod steps;
pub mod types;
pub mod worker;

pub use manifest::{CostFigures, FargateSize, Manifest, TrimSummary};
pub use runner::{ProcessProgress, run_embedded};
pub use steps::{
    ProcessDeps, assemble, encode_audio, probe, publish, record_failure, render_segment, split,
    transcode,
};
pub use types::*;
pub use worker::{WORKER_FAILURE, WORKER_RENDERED, publish_any, run_worker};
