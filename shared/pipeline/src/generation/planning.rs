//! An LLM planner with the rules plan beneath it: whatever the model returns is checked
//! (`PlanDraft::into_plan`), and an unusable answer or an unreachable model gives the rules plan,
//! with the reason recorded on the plan so the job says it fell back and why.

use crate::failure::public_reason;
use async_trait::async_trait;
use std::sync::Arc;
use vidpipe_domain::plan::{Plan, PlanError, RulesPlanner};
use vidpipe_domain::ports::Planner;
use vidpipe_domain::request::GenerationRequest;

pub struct FallbackPlanner {
    primary: Arc<dyn Planner>,
}

impl FallbackPlanner {
    pub fn new(primary: Arc<dyn Planner>) -> Self {
        Self { primary }
    }
}

#[async_trait]
impl Planner for FallbackPlanner {
    fn name(&self) -> &str {
        self.primary.name()
    }

    async fn plan(&self, request: &GenerationRequest) -> Result<Plan, PlanError> {
        // The primary retries passing failures itself; what reaches here is final.
        let outcome = self.primary.plan(request).await;
        let reason = match outcome {
            Ok(plan)
                if plan.scenes.len() == request.clip_count.get() as usize
                    && plan.composed_frames() == request.total_frames() =>
            {
                return Ok(plan);
            }
            Ok(plan) => format!(
                "{} scenes covering {} frames; wanted {} covering {}",
                plan.scenes.len(),
                plan.composed_frames(),
                request.clip_count.get(),
                request.total_frames()
            ),
            Err(e) => public_reason(&e.to_string()),
        };
        tracing::warn!(planner = self.primary.name(), %reason, "planner fell back to the rules");
        let mut plan = RulesPlanner.plan(request)?;
        plan.fallback = Some(format!("{}: {reason}", self.primary.name()));
        Ok(plan)
    }
}
