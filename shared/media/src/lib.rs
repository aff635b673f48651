//! vidpipe's media engine: ffmpeg and ffprobe run as processes with argument vectors, typed
//! filtergraphs, captions rendered in Rust, and the procedural clip provider.

pub mod captions;
pub mod compose;
pub mod edit_render;
pub mod filtergraph;
pub mod loudness;
pub mod motion;
pub mod narrate;
pub mod probe;
pub mod procedural;
pub mod process;
pub mod run;
pub mod tools;

pub use captions::CaptionImage;
pub use compose::FfmpegEngine;
pub use narrate::EspeakNarrator;
pub use probe::probe;
pub use procedural::ProceduralProvider;
pub use tools::Tools;
