//! The manifest published beside a source's outputs (`{stem}_manifest.json`), and its cost
//! figures: Lambda seconds by the function's memory, the Fargate worker's by its task size.

use super::types::Timing;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use vidpipe_domain::processing::{OutputRecord, Route, SourceFacts, SourceRef};

/// Lambda's arm64 price per GB-second (us-east-1, 2026), used for the manifest's cost figures.
pub const LAMBDA_ARM64_USD_PER_GB_SECOND: f64 = 0.000_013_333_4;

/// Fargate's Linux/arm64 prices (us-east-1, 2026): the worker's seconds are billed at these.
pub const FARGATE_ARM64_USD_PER_VCPU_HOUR: f64 = 0.032_38;
pub const FARGATE_ARM64_USD_PER_GB_HOUR: f64 = 0.003_56;

/// The worker task's size, as the template gives it (CPU units of 1/1024 vCPU, MiB).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FargateSize {
    pub cpu_units: u32,
    pub memory_mb: u32,
}

impl FargateSize {
    pub fn usd_per_second(&self) -> f64 {
        (self.cpu_units as f64 / 1024.0 * FARGATE_ARM64_USD_PER_VCPU_HOUR
            + self.memory_mb as f64 / 1024.0 * FARGATE_ARM64_USD_PER_GB_HOUR)
            / 3600.0
    }
}

/// The manifest published beside the outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub source: SourceRef,
    pub source_id: String,
    pub route: Route,
    pub source_facts: SourceFacts,
    pub trim: TrimSummary,
    pub outputs: Vec<OutputRecord>,
    pub thumbnail_key: String,
    pub timings: Vec<Timing>,
    pub cost: CostFigures,
    pub created_at: chrono::DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrimSummary {
    pub intro_seconds: f64,
    pub outro_seconds: f64,
    pub output_seconds: f64,
    pub frames: u64,
    pub frame_rate: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostFigures {
    /// Sum of every Lambda step's seconds (segments counted each: they run in parallel, and
    /// are paid for each).
    pub compute_seconds: f64,
    pub memory_mb: Option<u32>,
    pub usd_per_gb_second: f64,
    /// Seconds the Fargate worker spent transcoding (zero on the other routes).
    #[serde(default)]
    pub worker_seconds: f64,
    #[serde(default)]
    pub worker_size: Option<FargateSize>,
    /// `None` where a size that was used is unknown (on one machine, no memory is billed).
    pub estimated_usd: Option<f64>,
    pub estimated_usd_per_output_minute: Option<f64>,
}

impl CostFigures {
    pub fn of(
        timings: &[Timing],
        memory_mb: Option<u32>,
        worker_size: Option<FargateSize>,
        output_seconds: f64,
    ) -> CostFigures {
        let (worker, lambda): (Vec<&Timing>, Vec<&Timing>) =
            timings.iter().partition(|t| t.step.on_worker());
        let compute_seconds: f64 = lambda.iter().map(|t| t.seconds).sum();
        let worker_seconds: f64 = worker.iter().map(|t| t.seconds).sum();
        let lambda_usd = memory_mb
            .map(|mb| compute_seconds * mb as f64 / 1024.0 * LAMBDA_ARM64_USD_PER_GB_SECOND);
        let worker_usd = if worker_seconds > 0.0 {
            worker_size.map(|s| worker_seconds * s.usd_per_second())
        } else {
            Some(0.0)
        };
        let estimated = lambda_usd.zip(worker_usd).map(|(l, w)| l + w);
        let output_minutes = (output_seconds / 60.0).max(1.0 / 60.0);
        CostFigures {
            compute_seconds,
            memory_mb,
            usd_per_gb_second: LAMBDA_ARM64_USD_PER_GB_SECOND,
            worker_seconds,
            worker_size: worker_size.filter(|_| worker_seconds > 0.0),
            estimated_usd: estimated,
            estimated_usd_per_output_minute: estimated.map(|usd| usd / output_minutes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vidpipe_domain::steps::ProcessingStep;

    fn t(step: ProcessingStep, seconds: f64) -> Timing {
        Timing {
            step,
            segment: None,
            seconds,
        }
    }

    #[test]
    fn cost_bills_lambda_seconds_by_memory_and_worker_seconds_by_task_size() {
        let lambda = [
            t(ProcessingStep::Probe, 1.0),
            t(ProcessingStep::Transcode, 9.0),
            t(ProcessingStep::Publish, 2.0),
        ];
        let c = CostFigures::of(&lambda, Some(2048), None, 120.0);
        assert_eq!(c.compute_seconds, 12.0);
        let usd = 12.0 * 2.0 * LAMBDA_ARM64_USD_PER_GB_SECOND;
        assert!((c.estimated_usd.unwrap() - usd).abs() < 1e-12);
        assert!((c.estimated_usd_per_output_minute.unwrap() - usd / 2.0).abs() < 1e-12);
        assert_eq!((c.worker_seconds, c.worker_size), (0.0, None));

        let size = FargateSize {
            cpu_units: 4096,
            memory_mb: 8192,
        };
        let worker = [
            t(ProcessingStep::Probe, 1.0),
            t(ProcessingStep::WorkerTranscode, 3600.0),
            t(ProcessingStep::Publish, 2.0),
        ];
        let c = CostFigures::of(&worker, Some(1024), Some(size), 600.0);
        assert_eq!((c.compute_seconds, c.worker_seconds), (3.0, 3600.0));
        // One hour of 4 vCPU and 8 GB, plus 3 Lambda seconds at 1 GB.
        let usd = 4.0 * FARGATE_ARM64_USD_PER_VCPU_HOUR
            + 8.0 * FARGATE_ARM64_USD_PER_GB_HOUR
            + 3.0 * LAMBDA_ARM64_USD_PER_GB_SECOND;
        assert!((c.estimated_usd.unwrap() - usd).abs() < 1e-9);
        // Worker seconds of an unknown size make the estimate unknown, not low.
        assert_eq!(
            CostFigures::of(&worker, Some(1024), None, 600.0).estimated_usd,
            None
        );
        assert_eq!(
            CostFigures::of(&lambda, None, Some(size), 600.0).estimated_usd,
            None
        );
    }
}
