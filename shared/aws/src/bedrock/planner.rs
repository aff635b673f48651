//! The Bedrock scene planner: one Converse call whose only allowed answer is a call of the
//! `submit_plan` tool, whose input schema is the plan draft's, so the model's structured output
//! arrives already shaped as a `PlanDraft` rather than as prose to be parsed.

use super::document::{document_to_json, json_to_document};
use super::error::Failure;
use async_trait::async_trait;
use aws_sdk_bedrockruntime::Client;
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ConversationRole, ConverseOutput, InferenceConfiguration, Message,
    SpecificToolChoice, SystemContentBlock, Tool, ToolChoice, ToolConfiguration, ToolInputSchema,
    ToolSpecification,
};
use std::time::Duration;
use vidpipe_domain::plan::{Plan, PlanDraft, PlanError};
use vidpipe_domain::ports::Planner;
use vidpipe_domain::request::GenerationRequest;

/// The one tool the model is offered, and forced, to call.
pub const SUBMIT_PLAN_TOOL: &str = "submit_plan";

/// A plan of a dozen scenes with long narrations is a few thousand tokens; the cap only guards
/// against a model that never stops.
const MAX_TOKENS: i32 = 4096;

/// How often a passing failure (throttling, 5xx, a model not ready) is retried before the plan
/// step gives up with `PlanError::Unavailable`. This sits above the SDK's own retries: those
/// cover a burst, these a model that needs seconds to become ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannerRetry {
    /// Calls in all, the first included; at least 1.
    pub attempts: u32,
    /// Wait before the second call; doubled before each later one.
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for PlannerRetry {
    fn default() -> Self {
        Self {
            attempts: 3,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(8),
        }
    }
}

impl PlannerRetry {
    fn delay_before(&self, retry: u32) -> Duration {
        let factor = 1u32
            .checked_shl(retry.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// Plans through Bedrock's Converse API with any model that supports forced tool use.
#[derive(Debug, Clone)]
pub struct BedrockPlanner {
    client: Client,
    model_id: String,
    retry: PlannerRetry,
}

impl BedrockPlanner {
    pub const NAME: &'static str = "bedrock";

    /// `model_id` is a Bedrock model id or inference profile (`VIDPIPE_BEDROCK_MODEL`).
    pub fn new(client: Client, model_id: impl Into<String>) -> Self {
        Self {
            client,
            model_id: model_id.into(),
            retry: PlannerRetry::default(),
        }
    }

    pub fn with_retry(mut self, retry: PlannerRetry) -> Self {
        self.retry = PlannerRetry {
            attempts: retry.attempts.max(1),
            ..retry
        };
        self
    }

    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    async fn converse_once(&self, request: &GenerationRequest) -> Result<PlanDraft, Attempt> {
        let scenes = u32::from(request.clip_count.get());
        let output = self
            .client
            .converse()
            .model_id(&self.model_id)
            .system(SystemContentBlock::Text(system_prompt(scenes)))
            .messages(user_message(request).map_err(Attempt::Final)?)
            .tool_config(tool_config(scenes).map_err(Attempt::Final)?)
            .inference_config(
                InferenceConfiguration::builder()
                    .max_tokens(MAX_TOKENS)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| match Failure::of("Converse", &e) {
                Failure::Throttled => Attempt::Passing("Converse was throttled".to_owned()),
                Failure::Unavailable(m) => Attempt::Passing(m),
                // A refused request (bad model id, no access, schema the model cannot take) is
                // permanent: the caller falls back to the rules planner as for a bad plan.
                Failure::Rejected(m) | Failure::Failed(m) => Attempt::Final(PlanError::Invalid(
                    format!("Converse refused the request: {m}"),
                )),
            })?;
        let message = match output.output() {
            Some(ConverseOutput::Message(m)) => m,
            _ => {
                return Err(Attempt::Final(PlanError::Invalid(
                    "Converse answered without a message".to_owned(),
                )));
            }
        };
        let tool_use = message
            .content()
            .iter()
            .find_map(|block| match block {
                ContentBlock::ToolUse(t) if t.name() == SUBMIT_PLAN_TOOL => Some(t),
                _ => None,
            })
            .ok_or_else(|| {
                Attempt::Final(PlanError::Invalid(format!(
                    "the model answered without calling {SUBMIT_PLAN_TOOL} (stop reason {})",
                    output.stop_reason().as_str()
                )))
            })?;
        serde_json::from_value(document_to_json(tool_use.input())).map_err(|e| {
            Attempt::Final(PlanError::Invalid(format!(
                "{SUBMIT_PLAN_TOOL} input is not a plan: {e}"
            )))
        })
    }
}

/// One call's outcome when it did not produce a draft.
enum Attempt {
    /// Worth another call after a pause.
    Passing(String),
    Final(PlanError),
}

#[async_trait]
impl Planner for BedrockPlanner {
    fn name(&self) -> &str {
        Self::NAME
    }

    async fn plan(&self, request: &GenerationRequest) -> Result<Plan, PlanError> {
        let mut attempt = 0;
        let draft = loop {
            attempt += 1;
            match self.converse_once(request).await {
                Ok(draft) => break draft,
                Err(Attempt::Final(e)) => return Err(e),
                Err(Attempt::Passing(m)) if attempt >= self.retry.attempts => {
                    return Err(PlanError::Unavailable(format!(
                        "{m} (after {attempt} attempts)"
                    )));
                }
                Err(Attempt::Passing(m)) => {
                    tracing::warn!(model = %self.model_id, attempt, "bedrock planner: {m}");
                    tokio::time::sleep(self.retry.delay_before(attempt)).await;
                }
            }
        };
        draft.into_plan(Self::NAME, request)
    }
}

fn system_prompt(scenes: u32) -> String {
    format!(
        "You are the storyboard planner of a short-video generator. Split the user's text into \
         exactly {scenes} scenes, in the order the text tells them, so that every sentence of the \
         text belongs to some scene and none is left out or repeated. For each scene give: \
         visual_prompt, a concrete description of what the camera sees (subject, setting, \
         lighting, camera move) for a video model, without any on-screen text; caption, a short \
         on-screen line of at most 12 words; narration, the scene's part of the user's text as a \
         narrator would say it; weight, an integer from 1 to 100 giving the scene's share of \
         screen time relative to the others. Answer only by calling the {SUBMIT_PLAN_TOOL} tool."
    )
}

fn user_message(request: &GenerationRequest) -> Result<Message, PlanError> {
    let text = format!(
        "Scenes: {}\nVideo length: {} seconds\nAspect ratio: {}\nText:\n{}",
        request.clip_count.get(),
        request.duration_seconds,
        request.aspect_ratio.as_str(),
        request.prompt.as_str()
    );
    Message::builder()
        .role(ConversationRole::User)
        .content(ContentBlock::Text(text))
        .build()
        .map_err(|e| PlanError::Invalid(format!("cannot build the Converse message: {e}")))
}

fn tool_config(scenes: u32) -> Result<ToolConfiguration, PlanError> {
    let build = |e: aws_smithy_types::error::operation::BuildError| {
        PlanError::Invalid(format!("cannot build the {SUBMIT_PLAN_TOOL} tool: {e}"))
    };
    let spec = ToolSpecification::builder()
        .name(SUBMIT_PLAN_TOOL)
        .description("Submit the storyboard: the scenes in order, each with its fields.")
        .input_schema(ToolInputSchema::Json(json_to_document(
            &PlanDraft::json_schema(scenes),
        )))
        .build()
        .map_err(build)?;
    let choice = SpecificToolChoice::builder()
        .name(SUBMIT_PLAN_TOOL)
        .build()
        .map_err(build)?;
    ToolConfiguration::builder()
        .tools(Tool::ToolSpec(spec))
        .tool_choice(ToolChoice::Tool(choice))
        .build()
        .map_err(build)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let retry = PlannerRetry {
            attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(300),
        };
        let delays: Vec<_> = (1..=4).map(|r| retry.delay_before(r)).collect();
        assert_eq!(
            delays,
            [100, 200, 300, 300].map(Duration::from_millis).to_vec()
        );
    }
}
