//! vidpipe's domain: validated requests, jobs and their state machine, scene planning, timeline math
//! and the port traits the adapters implement. Nothing here touches AWS, the network or processes.

pub mod asset;
pub mod batch;
pub mod captions;
pub mod composition;
pub mod edit;
pub mod error;
pub mod events;
pub mod job;
pub mod keys;
pub mod loudness;
pub mod media;
pub mod mp3;
pub mod names;
pub mod narration;
pub mod plan;
pub mod ports;
pub mod processing;
pub mod quota;
pub mod request;
pub mod steps;
pub mod timeline;
pub mod upload;
pub mod webhook;

pub use asset::{Asset, AssetId, AssetKind};
pub use captions::{CaptionOptions, CaptionPosition, CaptionSize, CaptionStyle};
pub use composition::{Composition, CompositionId, CompositionStatus};
pub use error::{ErrorClass, FieldError, ValidationErrors};
pub use job::{
    ClipRecord, ClipStatus, Job, JobError, JobId, JobStatus, Outputs, Stage, StageTiming,
};
pub use plan::{Plan, Scene, SceneRole};
pub use request::{
    AspectRatio, Brand, ClipCount, Corner, Fps, GenerationRequest, GenerationRequestBody, LogoSpec,
    MusicSpec, Prompt, Resolution, Transition, TransitionKind,
};
pub use timeline::{CaptionCue, ClipFit, Timeline, TimelineClip};
