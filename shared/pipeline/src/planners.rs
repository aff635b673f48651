//! Planner adapters. The rules planner lives in the domain (it is pure); this wraps it in the
//! `Planner` port so runners can swap in an LLM planner without knowing which one they hold.

use async_trait::async_trait;
use vidpipe_domain::GenerationRequest;
use vidpipe_domain::plan::{Plan, PlanError, RulesPlanner};
use vidpipe_domain::ports::Planner;

#[derive(Debug, Clone, Default)]
pub struct Rules(pub RulesPlanner);

#[async_trait]
impl Planner for Rules {
    fn name(&self) -> &str {
        RulesPlanner::NAME
    }

    async fn plan(&self, request: &GenerationRequest) -> Result<Plan, PlanError> {
        self.0.plan(request)
    }
}
