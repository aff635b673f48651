//! AI services reached over plain HTTP, as adapters of the domain's ports: Replicate for clips,
//! OpenAI-compatible servers (OpenAI, Ollama, vLLM, LocalAI) for plans and stills.

pub mod openai;
pub mod replicate;
pub mod secret;
pub mod webhook;
