//! Amazon Bedrock adapters: an LLM scene planner over the Converse API ([`BedrockPlanner`]),
//! Nova Reel video clips through asynchronous invocations ([`NovaReelProvider`]) and Nova Canvas
//! stills through a synchronous `InvokeModel` ([`NovaCanvasProvider`]).
//!
//! All three take an SDK client built by [`BedrockConfig::client`] and never read the
//! environment themselves; [`BedrockConfig::from_lookup`] is where the `VIDPIPE_BEDROCK_*`
//! settings are read, once, by whoever wires the adapters.

mod canvas;
mod config;
mod document;
mod error;
mod planner;
mod reel;

pub use canvas::{CanvasSize, NovaCanvasProvider, canvas_size};
pub use config::{
    BedrockConfig, BedrockConfigError, DEFAULT_CANVAS_MODEL, DEFAULT_CANVAS_USD_PER_IMAGE,
    DEFAULT_REEL_MODEL, DEFAULT_REEL_PREFIX, DEFAULT_REEL_USD_PER_SECOND,
};
pub use document::{document_to_json, json_to_document};
pub use planner::{BedrockPlanner, PlannerRetry, SUBMIT_PLAN_TOOL};
pub use reel::{NovaReelProvider, REEL_SECONDS, reel_request_token};
