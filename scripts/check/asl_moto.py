#!/usr/bin/env python3
"""Runs statemachine/generation.asl.json in moto's Step Functions executor with stub step functions.

asl-validator checks the definition's shape; this checks what it *does*: the data flow between
states (`$.job_id` survives, each step gets the JSON shape its Rust type expects), Retry and Catch
routing, the Map's concurrency value coming out of `States.StringToJson`, the Choice on the plan
step's compose route (the worker's command, its network configuration from the
substituted lists, Finalize's input after it).

The stubs stand in for the Lambda functions (moto cannot run Lambda code without Docker, so
`LambdaFunction._invoke_lambda` is patched in process) and for the Fargate worker (moto's ECS
`run_task` is wrapped to write `temp/{job_id}/compose-output.json`, as the worker does; and
moto's port of the executor lacks the PascalCase<->camelCase mapping of ECS parameters, which
is patched back in from the botocore model). They
answer with the serde JSON shapes of shared/pipeline/src/generation/types.rs, and fail with the
`{"errorType", "errorMessage"}` body lambda_runtime sends, so the executor sees the same error
names the real functions report.

    .tools/venv/bin/python scripts/check/asl_moto.py [--quick]

--quick skips the scenarios that wait through real retry back-off (a few seconds each).
Exit status 0 when every scenario behaves as expected.
"""

from __future__ import annotations

import json
import sys
import time

# First: it sets the AWS environment boto3 and moto read.
from asl_harness import (REGION, ROOT, StepFailure, StubWorld, check, create_functions, execute, mock_stack, parse_args,
                         render_asl, require_keys, run_scenarios, stub_lambda)

import boto3
from moto.ec2.models.elastic_network_interfaces import NetworkInterface
from moto.ecs.models import EC2ContainerServiceBackend
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_ecs import (
    StateTaskServiceEcs,
)
from moto.stepfunctions.parser.utils import snake_to_camel_case

ASL = ROOT / "statemachine" / "generation.asl.json"
BUCKET = "vidpipe-media-check"
CLUSTER = "vidpipe-check"
CONTAINER = "worker"

# The one generation function, as the stack would name it; the stubs dispatch on the step its
# payload names, as vidpipe_lambda::generation does.
FUNCTIONS = {"GenerateFunctionArn": "generate"}


class World(StubWorld):
    """The stubs' per-scenario behaviour, and what they saw beyond the calls."""

    def __init__(self, scenes: int = 3, frames_per_scene: int = 48):
        super().__init__()
        self.scenes = scenes
        self.frames_per_scene = frames_per_scene
        self.running_clips = 0
        self.max_running_clips = 0
        self.ecs_commands: list[list[str]] = []
        self.ecs_network: list[dict] = []
        self.worker_writes_output = True
        self.finalize_read_worker_output = False
        # What the function's VIDPIPE_COMPOSE_WORKER_THRESHOLD_FRAMES would be: set only when
        # the stack has a worker.
        self.worker_threshold: int | None = None
        # A recompose's plan: the scenes it replaces (ClipTasks naming the composition).
        self.replaced: list[int] = []
        self.polled: set[tuple[str, int]] = set()
        # A timeline render's generate assets (layer indexes) and those the cache already holds.
        self.timeline_layers: list[int] = []
        self.timeline_cached: list[int] = []


WORLD = World()


def compose_output(job_id: str) -> dict:
    return {
        "job_id": job_id,
        "final_key": f"compositions/{job_id}/final.mp4",
        "thumbnail_key": f"compositions/{job_id}/thumbnail.jpg",
        "timeline_key": f"compositions/{job_id}/timeline.json",
        "probe": {
            "duration_seconds": 6.0,
            "width": 1280,
            "height": 720,
            "video_codec": "h264",
            "pix_fmt": "yuv420p",
            "audio_codec": None,
            "frames": 144,
            "size_bytes": 123456,
        },
        "tools": {"ffmpeg": "n8.1.2", "ffprobe": "n8.1.2"},
        "compose_seconds": 1.5,
    }


def invoke(function: str, envelope: dict) -> dict:
    """The generation function: `{"step", "input"}`, as vidpipe_lambda::generation::GenerationTask."""
    if function != "generate":
        raise StepFailure("VidPipe.Internal", f"no function {function}")
    require_keys("generate", envelope, {"step", "input"})
    return step(envelope["step"], envelope["input"])


def step(function: str, payload: dict) -> dict:
    """The stub steps: validate the input shape like serde would, then answer like the real step."""
    WORLD.record(function, payload)
    if function == "plan":
        require_keys(function, payload, {"job_id"})
        job = payload["job_id"]
        frames = WORLD.scenes * WORLD.frames_per_scene
        # ComposeRoute::for_frames: the worker only where the stack has one, past its threshold.
        threshold = WORLD.worker_threshold
        return {
            "job_id": job,
            "total_frames": frames,
            "route": "worker" if threshold is not None and frames > threshold else "lambda",
            "scenes": [{"job_id": job, "scene_index": i} for i in range(WORLD.scenes)],
        }
    if function == "plan_recompose":
        # recompose::plan: no planning, only the replaced scenes, the route by the same rule.
        require_keys(function, payload, {"job_id", "composition_id"})
        job, cmp = payload["job_id"], payload["composition_id"]
        frames = WORLD.scenes * WORLD.frames_per_scene
        threshold = WORLD.worker_threshold
        return {
            "job_id": job,
            "total_frames": frames,
            "route": "worker" if threshold is not None and frames > threshold else "lambda",
            "scenes": [{"job_id": job, "scene_index": i, "composition_id": cmp} for i in WORLD.replaced],
        }
    if function == "poll_clip":
        # The Map hands PollClip GenerateClip's whole ClipOutput: a ClipTask's fields and more.
        require_keys(function, payload, {"job_id", "scene_index", "key", "cache_hit"} | ({"composition_id", "wait_seconds"} & set(payload)))
        out = {k: payload[k] for k in ("job_id", "scene_index", "key", "cache_hit") if k in payload}
        if "composition_id" in payload:
            out["composition_id"] = payload["composition_id"]
        return out
    if function == "generate_clip":
        # ClipTask: the composition only on a recompose's replaced scene.
        require_keys(function, payload, {"job_id", "scene_index"} | ({"composition_id"} & set(payload)))
        if "composition_id" in payload:
            # A replaced scene's clip is the composition's; the first call has its provider still
            # working, so the Wait -> PollClip loop runs with the composition carried through it.
            job, i, cmp = payload["job_id"], payload["scene_index"], payload["composition_id"]
            out = {"job_id": job, "scene_index": i, "composition_id": cmp, "key": f"compositions/{cmp}/clips/clip_{i:03}.mp4", "cache_hit": False}
            if (cmp, i) not in WORLD.polled:
                WORLD.polled.add((cmp, i))
                out["wait_seconds"] = 1
            return out
        with WORLD.lock:
            WORLD.running_clips += 1
            WORLD.max_running_clips = max(WORLD.max_running_clips, WORLD.running_clips)
        time.sleep(0.2)
        with WORLD.lock:
            WORLD.running_clips -= 1
        job, i = payload["job_id"], payload["scene_index"]
        return {"job_id": job, "scene_index": i, "key": f"generations/{job}/clips/clip_{i:03}.mp4", "cache_hit": False}
    if function == "compose":
        require_keys(function, payload, {"job_id"} | ({"composition_id"} & set(payload)))
        if "composition_id" in payload:
            # recompose::render_step: the composition is recorded whole; its reference comes back.
            return {"job_id": payload["job_id"], "composition_id": payload["composition_id"]}
        return compose_output(payload["job_id"])
    if function == "finalize" and set(payload) == {"job_id", "composition_id"}:
        # FinalizeInput::Recomposed: recompose::finalize reports the composition's outputs.
        cmp = payload["composition_id"]
        return {
            "job_id": payload["job_id"],
            "status": "completed",
            "outputs": {
                "final_key": f"compositions/{cmp}/final.mp4",
                "thumbnail_key": f"compositions/{cmp}/thumbnail.jpg",
                "timeline_key": f"compositions/{cmp}/timeline.json",
                "metadata_key": f"compositions/{cmp}/metadata.json",
                "duration_seconds": 6.0,
                "size_bytes": 123456,
            },
        }
    if function == "finalize":
        # steps::FinalizeInput, untagged: a ComposeOutput, or {job_id} after the Fargate worker,
        # which left its ComposeOutput in S3.
        if set(payload) == {"job_id"}:
            key = f"temp/{payload['job_id']}/compose-output.json"
            try:
                body = boto3.client("s3", region_name=REGION).get_object(Bucket=BUCKET, Key=key)["Body"].read()
            except boto3.client("s3", region_name=REGION).exceptions.NoSuchKey:
                raise StepFailure("VidPipe.Internal", f"blob {key} not found") from None
            payload = json.loads(body)
            WORLD.finalize_read_worker_output = True
        require_keys(function, payload, set(compose_output("x")))
        job = payload["job_id"]
        return {
            "job_id": job,
            "status": "completed",
            "outputs": {
                "final_key": payload["final_key"],
                "thumbnail_key": payload["thumbnail_key"],
                "timeline_key": payload["timeline_key"],
                "metadata_key": f"compositions/{job}/metadata.json",
                "duration_seconds": payload["probe"]["duration_seconds"],
                "size_bytes": payload["probe"]["size_bytes"],
            },
        }
    if function == "record_failure":
        require_keys(function, payload, {"job_id", "error_type", "cause"} | ({"composition_id"} & set(payload)))
        if not all(isinstance(payload[k], str) for k in payload):
            raise StepFailure("VidPipe.Internal", "record-failure fields must be strings")
        return {"id": payload["job_id"], "status": "failed"}
    if function in ("plan_timeline", "render_timeline", "finalize_timeline"):
        # TimelineRef: the composition alone (a timeline render belongs to no job).
        require_keys(function, payload, {"composition_id"})
        cmp = payload["composition_id"]
        if function == "plan_timeline":
            frames = WORLD.scenes * WORLD.frames_per_scene
            threshold = WORLD.worker_threshold
            return {
                "composition_id": cmp,
                "total_frames": frames,
                "route": "worker" if threshold is not None and frames > threshold else "lambda",
                "clips": [{"composition_id": cmp, "layer": i} for i in WORLD.timeline_layers if i not in WORLD.timeline_cached],
            }
        if function == "render_timeline":
            return {"composition_id": cmp}
        return {
            "composition_id": cmp,
            "status": "completed",
            "outputs": {
                "final_key": f"compositions/{cmp}/final.mp4",
                "thumbnail_key": f"compositions/{cmp}/thumbnail.jpg",
                "timeline_key": f"compositions/{cmp}/timeline.json",
                "metadata_key": f"compositions/{cmp}/metadata.json",
                "duration_seconds": 2.0,
                "size_bytes": 4567,
            },
        }
    if function == "generate_timeline_clip":
        # TimelineClipTask, as the plan wrote it.
        require_keys(function, payload, {"composition_id", "layer"})
        return {"composition_id": payload["composition_id"], "layer": payload["layer"], "provider": "procedural", "cache_hit": False}
    if function == "record_timeline_failure":
        require_keys(function, payload, {"composition_id", "error_type", "cause"})
        if not all(isinstance(payload[k], str) for k in payload):
            raise StepFailure("VidPipe.Internal", "record-failure fields must be strings")
        return {"composition_id": payload["composition_id"]}
    raise StepFailure("VidPipe.Internal", f"no stub for {function}")


_original_run_task = EC2ContainerServiceBackend.run_task


def fake_run_task(self, *args, **kwargs):  # noqa: ANN001
    """Wraps moto's RunTask: does what the worker would (writes its ComposeOutput to S3)."""
    overrides = (args[3] if len(args) > 3 else kwargs.get("overrides")) or {}
    for c in overrides.get("containerOverrides", []):
        if c.get("name") == CONTAINER:
            command = c.get("command") or []
            WORLD.ecs_commands.append(command)
            # A recompose's worker records its composition itself and hands nothing on.
            if len(command) == 3 and command[:2] == ["compose", "--job-id"] and WORLD.worker_writes_output:
                job = command[2]
                boto3.client("s3", region_name=REGION).put_object(
                    Bucket=BUCKET,
                    Key=f"temp/{job}/compose-output.json",
                    Body=json.dumps(compose_output(job)).encode(),
                    ContentType="application/json",
                )
    if len(args) > 7:
        WORLD.ecs_network.append(args[7])
    return _original_run_task(self, *args, **kwargs)


def _operation(self, boto_service_name=None, service_action_name=None):
    import botocore.session

    service = self._get_boto_service_name(boto_service_name)
    action = snake_to_camel_case(self._get_boto_service_action(service_action_name))
    return botocore.session.get_session().get_service_model(service).operation_model(action)


def _ecs_normalise_parameters(self, parameters, boto_service_name=None, service_action_name=None):
    """Step Functions' PascalCase parameters -> the ECS API's camelCase, by the botocore shape.

    moto 5.2.5's port of the executor leaves this hook empty, so its ECS integration sends
    `Cluster` to botocore and fails; AWS (and LocalStack, where the executor comes from) map
    them. Mapping by the real RunTask shape also proves every parameter name in the ASL exists.
    """
    self._to_boto_request(parameters, _operation(self, boto_service_name, service_action_name).input_shape)


def _normalise_response(self, response, boto_service_name=None, service_action_name=None):
    """The ECS API's camelCase response -> the PascalCase Step Functions returns. Same moto gap."""
    self._from_boto_response(response, _operation(self, boto_service_name, service_action_name).output_shape)


def substitutions(
    account: str, *, fargate: bool, threshold: int, concurrency: int, cluster_arn: str, taskdef_arn: str, subnets: str, security_groups: str
) -> dict:
    """The template's DefinitionSubstitutions; `fargate` and `threshold` go where the template puts
    them, into the generation function's environment (here: the plan stub's world)."""
    WORLD.worker_threshold = threshold if fargate else None
    subs = {k: f"arn:aws:lambda:{REGION}:{account}:function:{v}" for k, v in FUNCTIONS.items()}
    subs.update(
        ClipConcurrency=str(concurrency),
        EcsClusterArn=cluster_arn,
        WorkerTaskDefinitionArn=taskdef_arn,
        WorkerContainerName=CONTAINER,
        FargateSubnets=subnets,
        FargateSecurityGroups=security_groups,
        FargateAssignPublicIp="DISABLED",
    )
    return subs


def render(subs: dict) -> str:
    return render_asl(ASL, subs)


def run(sfn, definition: str, job_id: str, timeout: float = 120.0, composition_id: str | None = None) -> dict:
    """One execution named after the job (or, for a recompose, its composition), as the API names it."""
    role = f"arn:aws:iam::{boto3.client('sts').get_caller_identity()['Account']}:role/sfn"
    payload = {"job_id": job_id, "extra": "dropped by Init"}
    if composition_id is not None:
        payload["composition_id"] = composition_id
    name = composition_id or job_id
    return execute(sfn, f"gen-{name}-{int(time.time() * 1000)}", definition, role, job_id, payload, timeout)


def run_timeline(sfn, definition: str, composition_id: str, timeout: float = 120.0) -> dict:
    """One timeline render's execution, named after its composition as the API names it."""
    role = f"arn:aws:iam::{boto3.client('sts').get_caller_identity()['Account']}:role/sfn"
    payload = {"timeline_id": composition_id}
    return execute(sfn, f"tl-{composition_id}-{int(time.time() * 1000)}", definition, role, composition_id, payload, timeout)


def scenarios(quick: bool):
    """Yields (name, fn(sfn, ctx)) pairs; ctx carries account and ECS ARNs."""

    def happy_lambda(sfn, ctx):
        global WORLD
        WORLD = World(scenes=5)
        d = run(sfn, render(substitutions(ctx["account"], fargate=True, threshold=10_000, concurrency=2, **ctx["ecs"])), "job-happy")
        check(d["status"] == "SUCCEEDED", "happy path succeeds", d)
        out = json.loads(d["output"])
        check(out["job_id"] == "job-happy" and out["status"] == "completed", "output is FinalizeOutput", out)
        check(out["outputs"]["metadata_key"] == "compositions/job-happy/metadata.json", "finalize got ComposeOutput", out)
        check(len(WORLD.called("generate_clip")) == 5, "one clip per scene", WORLD.calls)
        check(sorted(p["scene_index"] for p in WORLD.called("generate_clip")) == list(range(5)), "every scene index", WORLD.calls)
        # Unbounded, moto runs all five at once: exactly two proves the substituted value is used.
        check(WORLD.max_running_clips == 2, f"MaxConcurrencyPath honoured (saw {WORLD.max_running_clips} at once)")
        check(len(WORLD.called("compose")) == 1 and not WORLD.ecs_commands, "short job composes in Lambda", WORLD.calls)
        check(not WORLD.called("record_failure"), "no failure recorded", WORLD.calls)
        order = [n for n, _ in WORLD.calls if n != "generate_clip"]
        check(order == ["plan", "compose", "finalize"], "step order", order)

    def fargate(sfn, ctx):
        global WORLD
        WORLD = World(scenes=3, frames_per_scene=100)
        d = run(sfn, render(substitutions(ctx["account"], fargate=True, threshold=200, concurrency=4, **ctx["ecs"])), "job-long")
        check(d["status"] == "SUCCEEDED", "long job succeeds on Fargate", d)
        check(WORLD.ecs_commands == [["compose", "--job-id", "job-long"]], "worker command", WORLD.ecs_commands)
        net = ctx["ecs"]
        want_net = {"awsvpcConfiguration": {"subnets": net["subnets"].split(","), "securityGroups": [net["security_groups"]], "assignPublicIp": "DISABLED"}}
        check(WORLD.ecs_network == [want_net], "subnets and security groups split from the substituted lists", WORLD.ecs_network)
        check(not WORLD.called("compose"), "compose Lambda not used", WORLD.calls)
        check(WORLD.called("finalize")[0] == {"job_id": "job-long"}, "finalize got {job_id}", WORLD.calls)
        check(WORLD.finalize_read_worker_output, "finalize used the worker's ComposeOutput")

    def fargate_disabled(sfn, ctx):
        global WORLD
        WORLD = World(scenes=3, frames_per_scene=100)
        d = run(sfn, render(substitutions(ctx["account"], fargate=False, threshold=200, concurrency=4, **ctx["ecs"])), "job-nofargate")
        check(d["status"] == "SUCCEEDED" and not WORLD.ecs_commands and WORLD.called("compose"), "FargateEnabled=false composes in Lambda", d)

    def fargate_worker_failed(sfn, ctx):
        global WORLD
        WORLD = World(scenes=3, frames_per_scene=100)
        WORLD.worker_writes_output = False
        d = run(sfn, render(substitutions(ctx["account"], fargate=True, threshold=200, concurrency=4, **ctx["ecs"])), "job-worker-died")
        check(d["status"] == "FAILED" and d.get("error") == "GenerationFailed", "a worker that left no output fails the job", d)
        rec = WORLD.called("record_failure")
        check(len(rec) == 1 and rec[0]["error_type"] == "VidPipe.Internal", "recorded as finalize's error", rec)
        check(len(WORLD.called("finalize")) == 1, "finalize tried once (not retryable)", WORLD.calls)

    def permanent_clip_failure(sfn, ctx):
        global WORLD
        WORLD = World(scenes=2)
        WORLD.fail_next("generate_clip", "VidPipe.ProviderRejected", "VidPipe.ProviderRejected")
        d = run(sfn, render(substitutions(ctx["account"], fargate=False, threshold=1, concurrency=1, **ctx["ecs"])), "job-rejected")
        check(d["status"] == "FAILED" and d.get("error") == "GenerationFailed", "fails as GenerationFailed", d)
        check(d.get("cause", "").startswith("VidPipe.ProviderRejected: "), "cause starts with the step's error name", d)
        rec = WORLD.called("record_failure")
        check(len(rec) == 1 and rec[0]["job_id"] == "job-rejected" and rec[0]["error_type"] == "VidPipe.ProviderRejected", "failure recorded once", rec)
        check("ProviderRejected" in rec[0]["cause"], "cause carries the message", rec)
        check(len(WORLD.called("generate_clip")) == 1, "permanent errors are not retried", WORLD.calls)
        check(not WORLD.called("compose"), "nothing after the Map", WORLD.calls)

    def cancelled(sfn, ctx):
        global WORLD
        WORLD = World()
        WORLD.fail_next("plan", "VidPipe.Cancelled")
        d = run(sfn, render(substitutions(ctx["account"], fargate=False, threshold=1, concurrency=1, **ctx["ecs"])), "job-cancelled")
        check(d["status"] == "FAILED" and d.get("error") == "VidPipe.Cancelled", "cancel ends in the Cancelled state", d)
        check(len(WORLD.called("plan")) == 1, "Cancelled is not retried", WORLD.calls)
        check(not WORLD.called("record_failure"), "a cancel is not recorded as a failure", WORLD.calls)

    def clip_retry(sfn, ctx):
        global WORLD
        WORLD = World(scenes=1)
        WORLD.fail_next("generate_clip", "VidPipe.ProviderThrottled", "Lambda.TooManyRequestsException")
        d = run(sfn, render(substitutions(ctx["account"], fargate=False, threshold=1, concurrency=1, **ctx["ecs"])), "job-throttled")
        check(d["status"] == "SUCCEEDED", "retryable clip errors are retried", d)
        check(len(WORLD.called("generate_clip")) == 3, "two retries then success", WORLD.calls)

    def step_retries_exhausted(sfn, ctx):
        global WORLD
        WORLD = World(scenes=1)
        WORLD.fail_next("compose", "VidPipe.Transient", "VidPipe.Transient", "VidPipe.Transient", "VidPipe.Transient")
        d = run(sfn, render(substitutions(ctx["account"], fargate=False, threshold=1, concurrency=1, **ctx["ecs"])), "job-transient")
        check(d["status"] == "FAILED" and d.get("cause", "").startswith("VidPipe.Transient: "), "exhausted retries fail the job", d)
        check(len(WORLD.called("compose")) == 3, "RetryPolicy::STEP: 3 tries in all", WORLD.calls)
        check([p["error_type"] for p in WORLD.called("record_failure")] == ["VidPipe.Transient"], "recorded", WORLD.calls)

    def recompose_lambda(sfn, ctx):
        global WORLD
        WORLD = World(scenes=3)
        WORLD.replaced = [1]
        d = run(sfn, render(substitutions(ctx["account"], fargate=True, threshold=10_000, concurrency=2, **ctx["ecs"])), "job-rc", composition_id="cmp-rc")
        check(d["status"] == "SUCCEEDED", "recompose succeeds", d)
        out = json.loads(d["output"])
        check(out["outputs"]["metadata_key"] == "compositions/cmp-rc/metadata.json", "finalize reported the composition", out)
        order = [n for n, _ in WORLD.calls if n not in ("generate_clip", "poll_clip")]
        check(order == ["plan_recompose", "compose", "finalize"], "no planning: plan_recompose, compose, finalize", order)
        clips = WORLD.called("generate_clip") + WORLD.called("poll_clip")
        check(len(WORLD.called("generate_clip")) == 1 and len(WORLD.called("poll_clip")) == 1, "only the replaced scene, through Wait -> PollClip", WORLD.calls)
        check(all(p.get("composition_id") == "cmp-rc" and p["scene_index"] == 1 for p in clips), "the clip steps name the composition", clips)
        check(WORLD.called("compose") == [{"job_id": "job-rc", "composition_id": "cmp-rc"}], "compose got the composition", WORLD.calls)
        check(WORLD.called("finalize") == [{"job_id": "job-rc", "composition_id": "cmp-rc"}], "finalize got the composition", WORLD.calls)

    def recompose_fargate(sfn, ctx):
        global WORLD
        WORLD = World(scenes=3, frames_per_scene=100)
        d = run(sfn, render(substitutions(ctx["account"], fargate=True, threshold=200, concurrency=4, **ctx["ecs"])), "job-rclong", composition_id="cmp-rclong")
        check(d["status"] == "SUCCEEDED", "long recompose succeeds on Fargate", d)
        check(WORLD.ecs_commands == [["compose", "--job-id", "job-rclong", "--composition-id", "cmp-rclong"]], "worker command names the composition", WORLD.ecs_commands)
        check(not WORLD.called("compose") and not WORLD.called("generate_clip"), "no Lambda compose, no clips (nothing replaced)", WORLD.calls)
        check(WORLD.called("finalize") == [{"job_id": "job-rclong", "composition_id": "cmp-rclong"}], "finalize got the composition", WORLD.calls)

    def recompose_failure(sfn, ctx):
        global WORLD
        WORLD = World(scenes=2)
        WORLD.fail_next("compose", "VidPipe.InvalidMedia")
        d = run(sfn, render(substitutions(ctx["account"], fargate=False, threshold=1, concurrency=1, **ctx["ecs"])), "job-rcfail", composition_id="cmp-rcfail")
        check(d["status"] == "FAILED" and d.get("cause", "").startswith("VidPipe.InvalidMedia: "), "a failed render fails the execution", d)
        rec = WORLD.called("record_failure")
        check(len(rec) == 1 and rec[0]["composition_id"] == "cmp-rcfail" and rec[0]["job_id"] == "job-rcfail", "recorded on the composition", rec)

    def timeline_lambda(sfn, ctx):
        global WORLD
        WORLD = World(scenes=1)
        WORLD.timeline_layers = [0, 2, 3]
        WORLD.timeline_cached = [2]
        d = run_timeline(sfn, render(substitutions(ctx["account"], fargate=True, threshold=10_000, concurrency=2, **ctx["ecs"])), "cmp-tl")
        check(d["status"] == "SUCCEEDED", "timeline render succeeds", d)
        out = json.loads(d["output"])
        check(out["composition_id"] == "cmp-tl" and out["outputs"]["metadata_key"] == "compositions/cmp-tl/metadata.json", "output is TimelineDone", out)
        order = [n for n, _ in WORLD.calls if n != "generate_timeline_clip"]
        check(order == ["plan_timeline", "render_timeline", "finalize_timeline"], "no planning, no job steps", order)
        layers = sorted(p["layer"] for p in WORLD.called("generate_timeline_clip"))
        check(layers == [0, 3], "only the generate assets the cache lacks", WORLD.calls)
        check(not WORLD.ecs_commands, "a short timeline renders in Lambda", WORLD.ecs_commands)

    def timeline_fargate(sfn, ctx):
        global WORLD
        WORLD = World(scenes=3, frames_per_scene=100)
        d = run_timeline(sfn, render(substitutions(ctx["account"], fargate=True, threshold=200, concurrency=2, **ctx["ecs"])), "cmp-tllong")
        check(d["status"] == "SUCCEEDED", "long timeline succeeds on Fargate", d)
        check(WORLD.ecs_commands == [["timeline", "--composition-id", "cmp-tllong"]], "worker command names the composition", WORLD.ecs_commands)
        check(not WORLD.called("render_timeline"), "no Lambda render", WORLD.calls)
        check(WORLD.called("finalize_timeline") == [{"composition_id": "cmp-tllong"}], "finalize got the composition", WORLD.calls)

    def timeline_failure(sfn, ctx):
        global WORLD
        WORLD = World(scenes=1)
        WORLD.timeline_layers = [1]
        WORLD.fail_next("generate_timeline_clip", "VidPipe.ProviderRejected")
        d = run_timeline(sfn, render(substitutions(ctx["account"], fargate=False, threshold=1, concurrency=1, **ctx["ecs"])), "cmp-tlfail")
        check(d["status"] == "FAILED" and d.get("cause", "").startswith("VidPipe.ProviderRejected: "), "a failed clip fails the execution", d)
        rec = WORLD.called("record_timeline_failure")
        check(len(rec) == 1 and rec[0]["composition_id"] == "cmp-tlfail" and rec[0]["error_type"] == "VidPipe.ProviderRejected", "recorded on the composition", rec)
        check(not WORLD.called("record_failure") and not WORLD.called("render_timeline"), "no job failure, no render", WORLD.calls)

    yield "timeline: plan_timeline, uncached generate clips, render and finalize in Lambda", timeline_lambda
    yield "long timeline renders on Fargate", timeline_fargate
    yield "failed timeline clip -> RecordTimelineFailure", timeline_failure
    yield "happy path, Lambda compose, Map concurrency", happy_lambda
    yield "recompose: plan_recompose, replaced scene polled, compose and finalize the composition", recompose_lambda
    yield "long recompose on Fargate names the composition", recompose_fargate
    yield "failed recompose -> RecordFailure with the composition", recompose_failure
    yield "long job composes on Fargate", fargate
    yield "FargateEnabled=false never uses Fargate", fargate_disabled
    yield "Fargate worker without output -> RecordFailure", fargate_worker_failed
    yield "permanent clip error -> RecordFailure -> Failed", permanent_clip_failure
    yield "VidPipe.Cancelled -> Cancelled, not retried, not recorded", cancelled
    if not quick:
        yield "clip retries (CLIP policy back-off)", clip_retry
        yield "step retries exhausted (STEP policy back-off)", step_retries_exhausted


def main() -> int:
    args = parse_args(__doc__)
    stub_lambda(invoke)
    EC2ContainerServiceBackend.run_task = fake_run_task
    # moto 5.2.5's ECS reads an attribute its ENI model lacks when attaching a Fargate task's ENI.
    if not hasattr(NetworkInterface, "private_dns_name"):
        NetworkInterface.private_dns_name = property(lambda eni: f"ip-{eni.private_ip_address.replace('.', '-')}.ec2.internal")
    StateTaskServiceEcs._normalise_parameters = _ecs_normalise_parameters
    StateTaskServiceEcs._normalise_response = _normalise_response
    with mock_stack():
        account = boto3.client("sts").get_caller_identity()["Account"]
        create_functions(FUNCTIONS.values())
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        ecs = boto3.client("ecs")
        cluster_arn = ecs.create_cluster(clusterName=CLUSTER)["cluster"]["clusterArn"]
        taskdef_arn = ecs.register_task_definition(
            family="vidpipe-worker",
            requiresCompatibilities=["FARGATE"],
            networkMode="awsvpc",
            cpu="1024",
            memory="2048",
            containerDefinitions=[{"name": CONTAINER, "image": "vidpipe-worker:check", "entryPoint": ["vidpipe-worker"], "essential": True, "cpu": 1024, "memory": 2048}],
        )["taskDefinition"]["taskDefinitionArn"]
        ec2 = boto3.client("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24")["Subnet"]["SubnetId"] for i in range(2)]
        sg = ec2.create_security_group(GroupName="worker", Description="worker", VpcId=vpc)["GroupId"]
        ecs_ctx = {"cluster_arn": cluster_arn, "taskdef_arn": taskdef_arn, "subnets": ",".join(subnets), "security_groups": sg}
        ctx = {"account": account, "ecs": ecs_ctx}
        sfn = boto3.client("stepfunctions")
        failures = run_scenarios(sfn, scenarios(args.quick), sfn, ctx)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
