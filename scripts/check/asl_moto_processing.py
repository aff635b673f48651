#!/usr/bin/env python3
"""Runs statemachine/processing.asl.json in moto's Step Functions executor with a stub processing function.

asl-validator checks the definition's shape; this checks what it does: the `{"step", "input"}`
payload each task sends (the Rust `ProcessStep` enum), the data flow between steps (Probed ->
Transcode, or Split -> Parallel(Map, EncodeAudio) -> Assemble -> Publish), the Map's concurrency from the substituted
value, the route Choice (`worker` runs `vidpipe-worker process` through ecs:runTask.sync, with the
probe's output in the container's environment, and a task that exits non-zero is recorded), that
SNS and EventBridge really receive
the event through moto's own sns:publish and events:putEvents integrations (an SQS queue
subscribed to the topic, an EventBridge rule with an SQS target), and the failure path (the
source from the execution input, the error name, the failure event, the Fail state).

    .tools/venv/bin/python scripts/check/asl_moto_processing.py [--quick]

--quick skips the scenario that waits through real retry back-off.
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

sys.path.insert(0, str(ROOT / "scripts" / "emulator"))
from vidpipe_emulator.moto_patches import install_ecs_runner  # noqa: E402  - the emulator's runTask.sync hook
ASL = ROOT / "statemachine" / "processing.asl.json"
FUNCTION = "vidpipe-process"
SOURCE = {"bucket": "media", "key": "raw/acme/launch/My Clip ü.MOV", "version": "v1"}
PROBED_KEYS = {"source", "source_id", "path", "facts", "window", "route", "has_audio", "timings"}
SPLIT_KEYS = {"probed", "segments", "audio_key", "thumbnail_key", "timings"}


class World(StubWorld):
    """What the stub did, and how it should behave in this scenario."""

    def __init__(self, route: str = "single_pass", segments: int = 3):
        super().__init__()
        self.route = route
        self.segments = segments
        self.running = 0
        self.max_running = 0
        self.render_started: list[float] = []
        self.audio_span: tuple[float, float] | None = None
        # The record had already succeeded when record_failure ran (a lost Publish response).
        self.record_succeeded = False


WORLD = World()
CLUSTER = "arn:aws:ecs:us-east-1:123456789012:cluster/vidpipe-worker"
TASK_DEFINITION = "arn:aws:ecs:us-east-1:123456789012:task-definition/vidpipe-worker:1"


class StubWorker:
    """Stands in for the Fargate task: records what it was asked to run and stops at once, with
    the exit code the scenario wants (the emulator's EcsRunner runs the real binary)."""

    def __init__(self):
        self.runs: list[dict] = []
        self.exit_code = 0
        self.tasks: dict[str, dict] = {}

    def run(self, cluster: str, task_definition: str, overrides: dict) -> dict:
        c = (overrides.get("ContainerOverrides") or [{}])[0]
        self.runs.append({"cluster": cluster, "task_definition": task_definition, "container": c.get("Name"),
                          "command": c.get("Command"), "env": {e["Name"]: e["Value"] for e in c.get("Environment") or []}})
        arn = f"{cluster.replace(':cluster/', ':task/')}/{len(self.runs)}"
        self.tasks[arn] = {"TaskArn": arn, "ClusterArn": cluster, "LastStatus": "STOPPED", "StopCode": "EssentialContainerExited",
                           "StoppedReason": "Essential container in task exited",
                           "Containers": [{"Name": c.get("Name"), "ExitCode": self.exit_code}]}
        return {"TaskArn": arn, "ClusterArn": cluster, "LastStatus": "RUNNING"}

    def describe(self, task_arn: str) -> dict:
        return self.tasks[task_arn]


WORKER = StubWorker()


def probed() -> dict:
    return {
        "source": SOURCE,
        "source_id": "0" * 40,
        "path": {"client": "acme", "project": "launch", "stem": "My Clip ü", "extension": "MOV"},
        "facts": {"duration_seconds": 14.0},
        "window": {"start_seconds": 3.0, "rate": {"num": 30, "den": 1}, "frames": 180},
        "route": WORLD.route,
        "has_audio": True,
        "timings": [{"step": "probe", "seconds": 0.1}],
    }


def event(status: str, error: dict | None = None) -> dict:
    e = {"source_id": "0" * 40, "bucket": SOURCE["bucket"], "key": SOURCE["key"], "status": status, "outputs": []}
    if error:
        e["error"] = error
    else:
        e["manifest_key"] = "processed/acme/launch/My Clip ü_manifest.json"
        e["outputs"] = [f"processed/acme/launch/My Clip ü_{r}.mp4" for r in ("youtube", "reels", "tiktok")]
    return e


def step(envelope: dict) -> dict:
    """The stub function: checks the envelope and each input's shape as serde would."""
    if set(envelope) != {"step", "input"}:
        raise StepFailure("VidPipe.Internal", f"envelope keys {sorted(envelope)}")
    name, payload = envelope["step"], envelope["input"]
    WORLD.record(name, payload)
    if name == "probe":
        require_keys(name, payload, {"source"})
        if payload["source"] != SOURCE:
            raise StepFailure("VidPipe.Internal", f"probe got source {payload['source']}")
        return probed()
    if name in ("transcode", "split"):
        require_keys(name, payload, PROBED_KEYS)
        if name == "transcode":
            return {"probed": payload, "thumbnail_key": "t.jpg", "timings": []}
        segs = [{"index": i, "key": f"temp/s{i}.mp4", "first_frame": 60 * i, "input_offset": 0.0, "frames": 60} for i in range(WORLD.segments)]
        return {"probed": payload, "segments": segs, "audio_key": "temp/a.m4a", "thumbnail_key": "t.jpg", "timings": []}
    if name == "encode_audio":
        require_keys(name, payload, SPLIT_KEYS)
        started = time.monotonic()
        time.sleep(0.3)  # long enough that a sequential run would show in the renders' timing
        WORLD.audio_span = (started, time.monotonic())
        return {"step": "encode_audio", "seconds": 0.3}
    if name == "render_segment":
        require_keys(name, payload, {"probed", "segment"})
        with WORLD.lock:
            WORLD.render_started.append(time.monotonic())
            WORLD.running += 1
            WORLD.max_running = max(WORLD.max_running, WORLD.running)
        time.sleep(0.2)
        with WORLD.lock:
            WORLD.running -= 1
        i = payload["segment"]["index"]
        return {"index": i, "parts": [f"temp/p{i}_0.mp4", f"temp/p{i}_1.mp4"], "seconds": 0.2}
    if name == "assemble":
        require_keys(name, payload, {"split", "rendered", "audio"})
        require_keys(name, payload["split"], SPLIT_KEYS)
        if payload["audio"] != {"step": "encode_audio", "seconds": 0.3}:
            raise StepFailure("VidPipe.Internal", f"assemble got audio {payload['audio']}")
        return {"probed": payload["split"]["probed"], "thumbnail_key": payload["split"]["thumbnail_key"], "timings": []}
    if name == "publish":
        # processing::PublishInput: a Rendered, or after the worker the Probed itself.
        require_keys(name, payload, PROBED_KEYS if WORLD.route == "worker" else {"probed", "thumbnail_key", "timings"})
        return event("succeeded")
    if name == "record_failure":
        require_keys(name, payload, {"source", "error_type", "cause"})
        if not all(isinstance(v, str) for v in (payload["error_type"], payload["cause"])):
            raise StepFailure("VidPipe.Internal", "error_type and cause must be strings")
        if WORLD.record_succeeded:
            return event("succeeded")
        reason = json.loads(payload["cause"]).get("errorMessage", payload["cause"]) if payload["cause"].startswith("{") else payload["cause"]
        return event("failed", {"error": payload["error_type"], "reason": reason})
    raise StepFailure("VidPipe.Internal", f"no step {name}")


def drain(sqs, url: str, wait: float = 3.0) -> list[dict]:
    """Every message on a queue within `wait` seconds, deleted as read."""
    out, deadline = [], time.time() + wait
    while time.time() < deadline:
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]).get("Messages", [])
        for m in msgs:
            out.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        if out and not msgs:
            break
        time.sleep(0.1)
    return out


class Stack:
    def __init__(self):
        self.account = boto3.client("sts").get_caller_identity()["Account"]
        self.sfn = boto3.client("stepfunctions")
        self.sqs = boto3.client("sqs")
        sns = boto3.client("sns")
        self.topic = sns.create_topic(Name="processing")["TopicArn"]
        self.topic_q = self.sqs.create_queue(QueueName="topic-sub")["QueueUrl"]
        topic_q_arn = self.sqs.get_queue_attributes(QueueUrl=self.topic_q, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=self.topic, Protocol="sqs", Endpoint=topic_q_arn)
        self.events_q = self.sqs.create_queue(QueueName="events-target")["QueueUrl"]
        events_q_arn = self.sqs.get_queue_attributes(QueueUrl=self.events_q, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events = boto3.client("events")
        events.put_rule(Name="vidpipe-processing", EventPattern=json.dumps({"source": ["vidpipe"]}))
        events.put_targets(Rule="vidpipe-processing", Targets=[{"Id": "q", "Arn": events_q_arn}])

    def run(self, name: str, *, concurrency: int = 4, topic: str | None = None, timeout: float = 60.0) -> dict:
        subs = {
            "ProcessFunctionArn": f"arn:aws:lambda:{REGION}:{self.account}:function:{FUNCTION}",
            "SegmentConcurrency": str(concurrency),
            "NotificationTopicArn": topic or self.topic,
            "EventBusName": "default",
            "EcsClusterArn": CLUSTER,
            "WorkerTaskDefinitionArn": TASK_DEFINITION,
            "WorkerContainerName": "worker",
            "FargateSubnets": "subnet-a,subnet-b",
            "FargateSecurityGroups": "sg-a",
            "FargateAssignPublicIp": "DISABLED",
        }
        role = f"arn:aws:iam::{self.account}:role/sfn"
        return execute(self.sfn, f"proc-{name}-{int(time.time() * 1000)}", render_asl(ASL, subs), role, name,
                       {"source": SOURCE, "extra": "dropped by Init"}, timeout)

    def notifications(self) -> tuple[list[dict], list[dict]]:
        """(SNS messages as the subscribed queue got them, EventBridge events the rule forwarded)."""
        return drain(self.sqs, self.topic_q), drain(self.sqs, self.events_q)


def scenarios(quick: bool):
    def single_pass(st: Stack):
        global WORLD
        WORLD = World("single_pass")
        d = st.run("single")
        check(d["status"] == "SUCCEEDED", "single pass succeeds", d)
        check([s for s, _ in WORLD.calls] == ["probe", "transcode", "publish"], "steps", WORLD.calls)
        check(json.loads(d["output"]) == event("succeeded"), "the output is the ProcessEvent", d["output"])
        sns, evs = st.notifications()
        check(len(sns) == 1 and json.loads(sns[0]["Message"]) == event("succeeded"), "SNS got the event", sns)
        check(sns[0].get("MessageAttributes", {}).get("status", {}).get("Value") == "succeeded", "status attribute", sns)
        check(len(evs) == 1 and evs[0]["source"] == "vidpipe" and evs[0]["detail-type"] == "Processing Succeeded", "EventBridge got it", evs)
        check(evs[0]["detail"] == event("succeeded"), "event detail", evs)

    def segments(st: Stack):
        global WORLD
        WORLD = World("segments", segments=5)
        d = st.run("segments", concurrency=2)
        check(d["status"] == "SUCCEEDED", "segment path succeeds", d)
        order = [s for s, _ in WORLD.calls if s not in ("render_segment", "encode_audio")]
        check(order == ["probe", "split", "assemble", "publish"], "steps", WORLD.calls)
        names = [s for s, _ in WORLD.calls]
        check(names.count("encode_audio") == 1, "the audio is encoded once", WORLD.calls)
        # The audio runs beside the Map: a render starts while the audio is under way.
        start, end = WORLD.audio_span or (0.0, 0.0)
        check(any(start <= t < end for t in WORLD.render_started), "renders run while the audio encodes",
              (WORLD.audio_span, WORLD.render_started))
        renders = WORLD.called("render_segment")
        check(sorted(r["segment"]["index"] for r in renders) == list(range(5)), "one render per segment", renders)
        check(all(r["probed"]["route"] == "segments" for r in renders), "each render gets the probe", renders)
        check(WORLD.max_running == 2, f"MaxConcurrencyPath honoured (saw {WORLD.max_running} at once)")
        rendered = WORLD.called("assemble")[0]["rendered"]
        check(WORLD.called("encode_audio")[0] == WORLD.called("assemble")[0]["split"], "both get the split's plan", WORLD.calls)
        check([r["index"] for r in rendered] == list(range(5)), "assemble gets the renders in order", rendered)
        st.notifications()

    def worker_on_fargate(st: Stack):
        global WORLD
        WORLD = World("worker")
        WORKER.runs.clear()
        WORKER.exit_code = 0
        d = st.run("worker")
        check(d["status"] == "SUCCEEDED", "worker route succeeds", d)
        check([s for s, _ in WORLD.calls] == ["probe", "publish"], "no Lambda transcode or split", WORLD.calls)
        check(len(WORKER.runs) == 1, "one task", WORKER.runs)
        run = WORKER.runs[0]
        check((run["cluster"], run["task_definition"], run["container"], run["command"]) ==
              (CLUSTER, TASK_DEFINITION, "worker", ["process"]), "the worker's command", run)
        check(json.loads(run["env"].get("VIDPIPE_PROBED", "null")) == probed(), "VIDPIPE_PROBED is the probe's output", run)
        check(WORLD.called("publish")[0] == probed(), "publish gets the Probed after the worker", WORLD.calls)
        st.notifications()

    def worker_exits_non_zero(st: Stack):
        global WORLD
        WORLD = World("worker")
        WORKER.runs.clear()
        WORKER.exit_code = 1
        d = st.run("worker-failed")
        check(d["status"] == "FAILED" and len(WORKER.runs) == 1, "a failed task fails the upload", d)
        check(not WORLD.called("publish"), "nothing published", WORLD.calls)
        rec = WORLD.called("record_failure")
        check(len(rec) == 1 and rec[0]["error_type"] == "States.TaskFailed", "recorded as the task's failure", rec)
        cause = json.loads(rec[0]["cause"]) if rec else {}
        check(cause.get("Containers", [{}])[0].get("ExitCode") == 1, "the cause is the stopped task's description", cause)
        st.notifications()

    def rejected(st: Stack):
        global WORLD
        WORLD = World()
        WORLD.failures["probe"] = ["VidPipe.SourceRejected"]
        d = st.run("rejected")
        check(d["status"] == "FAILED" and d.get("error") == "ProcessingFailed", "fails as ProcessingFailed", d)
        check(d.get("cause", "").startswith("VidPipe.SourceRejected: "), "cause names the error", d)
        check(len(WORLD.called("probe")) == 1, "a rejection is not retried", WORLD.calls)
        rec = WORLD.called("record_failure")
        check(len(rec) == 1 and rec[0]["source"] == SOURCE and rec[0]["error_type"] == "VidPipe.SourceRejected", "recorded", rec)
        sns, evs = st.notifications()
        failed = json.loads(sns[0]["Message"]) if sns else {}
        check(len(sns) == 1 and failed["status"] == "failed" and failed["error"]["error"] == "VidPipe.SourceRejected", "SNS got the failure", sns)
        check("stub probe fails" in failed["error"]["reason"], "the reason is the step's message", failed)
        check(len(evs) == 1 and evs[0]["detail-type"] == "Processing Failed", "EventBridge got the failure", evs)

    def unknown_route(st: Stack):
        global WORLD
        WORLD = World("teleport")
        d = st.run("unknown-route")
        rec = WORLD.called("record_failure")
        check(d["status"] == "FAILED" and rec and rec[0]["error_type"] == "VidPipe.Internal" and "teleport" in rec[0]["cause"], "unknown route recorded", rec)
        st.notifications()

    def failure_after_success(st: Stack):
        global WORLD
        WORLD = World()
        WORLD.failures["publish"] = ["VidPipe.Internal"]
        WORLD.record_succeeded = True
        d = st.run("late-failure")
        check(d["status"] == "SUCCEEDED", "a run whose record succeeded stays a success", d)
        check(len(WORLD.called("record_failure")) == 1, "the failure went to record_failure", WORLD.calls)
        sns, evs = st.notifications()
        told = json.loads(sns[0]["Message"]) if sns else {}
        check(len(sns) == 1 and told["status"] == "succeeded", "SNS is told of the success", sns)
        check(len(evs) == 1 and evs[0]["detail-type"] == "Processing Succeeded", "EventBridge is told of the success", evs)

    def lost_notification(st: Stack):
        global WORLD
        WORLD = World()
        gone = f"arn:aws:sns:{REGION}:{st.account}:no-such-topic"
        d = st.run("lost-notification", topic=gone)
        check(d["status"] == "SUCCEEDED", "a failed SNS publish after publish does not fail the upload", d)
        check(not WORLD.called("record_failure"), "nothing recorded as failed", WORLD.calls)
        st.notifications()

    def retried(st: Stack):
        global WORLD
        WORLD = World()
        WORLD.failures["transcode"] = ["VidPipe.MediaFailed", "Lambda.TooManyRequestsException"]
        d = st.run("retried")
        check(d["status"] == "SUCCEEDED" and len(WORLD.called("transcode")) == 3, "two retries then success", WORLD.calls)
        st.notifications()

    yield "single pass: probe -> transcode -> publish -> SNS + EventBridge", single_pass
    yield "segments: split -> Map (concurrency 2) -> assemble", segments
    yield "route worker: ecs:runTask.sync `process` -> publish reads what it left", worker_on_fargate
    yield "a worker that exits non-zero -> States.TaskFailed recorded", worker_exits_non_zero
    yield "rejection -> record_failure -> failure notified -> Fail", rejected
    yield "unknown route -> recorded as VidPipe.Internal", unknown_route
    yield "a failure after the record succeeded -> notified as a success", failure_after_success
    if not quick:
        yield "failed notification after publish still succeeds", lost_notification
        yield "retryable step errors are retried (STEP policy back-off)", retried


def main() -> int:
    args = parse_args(__doc__)
    # One function runs every step: the step is in the payload's envelope.
    stub_lambda(lambda _function, envelope: step(envelope))
    install_ecs_runner(WORKER)
    with mock_stack():
        create_functions([FUNCTION])
        st = Stack()
        failures = run_scenarios(st.sfn, scenarios(args.quick), st)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
