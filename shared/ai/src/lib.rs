//! AI services reached over plain HTTP, as adapters of the domain's ports: Replicate for clips,
//! OpenAI-compatible servers (OpenAI, Ollama, vLLM, LocalAI) for plans, stills and narration.

pub mod openai;
pub mod replicate;
pub mod secret;
pub mod speech;
pub mod webhook;
