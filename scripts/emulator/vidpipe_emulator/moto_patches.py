"""What moto is taught so the stack behaves as in AWS: Lambda invokes forwarded to cargo lambda
watch, ECS tasks run as local processes, the per-write fields of S3 events, SQS event source
mappings polled as Lambda polls them, and DynamoDB requests served one at a time.

moto is imported inside the functions that use it, as everywhere in the emulator, so a missing or
broken moto is a startup error reported on the ready line, not a crash before it."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable

from .common import ACCOUNT, REGION, EmulatorError, log


def serialized_dynamo_server() -> type:
    """moto's ThreadedMotoServer with DynamoDB requests handled one at a time. moto checks a
    condition and then writes without a lock, so two concurrent conditional writes on one item could
    both succeed; real DynamoDB makes each atomic, and a cancel racing a progress save depends on
    that. Every other service stays concurrent (the SFN executor calls back in)."""
    from moto.server import ThreadedMotoServer

    class SerializedDynamoMotoServer(ThreadedMotoServer):
        def _server_entry(self) -> None:
            from werkzeug.serving import make_server
            from moto.moto_server.werkzeug_app import (
                DomainDispatcherApplication, MotoRequestHandler, create_backend_app)
            app = DomainDispatcherApplication(create_backend_app)
            lock = threading.Lock()

            def serialized(environ, start_response):
                if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
                    with lock:
                        # Drain under the lock: the write happens while the body is produced.
                        return list(app(environ, start_response))
                return app(environ, start_response)

            self._server = make_server(self._ip_address, self._port, serialized, True,
                                       request_handler=MotoRequestHandler)
            self._server_ready_event.set()
            self._server.serve_forever()

    return SerializedDynamoMotoServer

class Forwarder:
    def __init__(self, watch_url: str | None, timeout: float):
        self.watch_url = watch_url
        self.timeout = timeout
        self.bins: dict[str, str] = {}  # registered function name -> workspace bin, where they differ

    def invoke(self, function_name: str, payload: bytes) -> tuple[int, bytes]:
        """POST to cargo lambda watch. Returns (HTTP status, body); transport failures become 599."""
        if not self.watch_url:
            return 599, json.dumps({"errorType": "Emulator.NoWatch",
                                    "errorMessage": "the emulator runs with --no-watch: no function can run"}).encode()
        url = f"{self.watch_url}/2015-03-31/functions/{self.bins.get(function_name, function_name)}/invocations"
        req = urllib.request.Request(url, data=payload, method="POST", headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
        except Exception as e:  # noqa: BLE001 - any transport failure is a function error
            return 599, json.dumps({"errorType": "Emulator.ForwardFailed",
                                    "errorMessage": f"{type(e).__name__}: {e} (POST {url})"}).encode()


def install_forwarder(fwd: Forwarder) -> None:
    """Route moto's Lambda execution to cargo lambda watch.

    moto 5.2.5: every invoke path (Invoke API, Step Functions lambda tasks, S3/SNS/SQS/EventBridge
    triggers) ends in LambdaFunction.invoke -> self._invoke_lambda(event) -> (body, errored, logs);
    errored sets `x-amz-function-error`, which Step Functions turns into a failure whose Error is
    the payload's errorType.
    """
    from moto.awslambda import models

    def _invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
        if event is None or event == "{}":
            payload = b"{}"
        elif isinstance(event, (bytes, bytearray)):
            payload = bytes(event)
        else:
            payload = json.dumps(event).encode()
        t = time.monotonic()
        status, body = fwd.invoke(self.function_name, payload)
        text = body.decode("utf-8", "replace")
        errored = status != 200
        if errored:
            try:
                parsed = json.loads(text)
                ok = isinstance(parsed, dict) and "errorType" in parsed
            except json.JSONDecodeError:
                ok = False
            if not ok:
                text = json.dumps({"errorType": f"Emulator.Http{status}", "errorMessage": text[:2000]})
        log(f"invoke {self.function_name}: HTTP {status} in {time.monotonic() - t:.2f}s"
            + (f" {text[:300]}" if errored else ""))
        return text, errored, ""

    models.LambdaFunction._invoke_lambda = _invoke_lambda  # type: ignore[method-assign]

    orig_invoke = models.LambdaFunction.invoke

    def invoke(self: Any, body: Any, request_headers: Any, response_headers: Any) -> Any:
        inv_type = (request_headers or {}).get("x-amz-invocation-type") or (request_headers or {}).get("X-Amz-Invocation-Type")
        if inv_type == "Event":
            # Asynchronous invoke: answer 202 now, run the function in the background.
            threading.Thread(target=orig_invoke, args=(self, body, {}, {}), daemon=True).start()
            return ""
        return orig_invoke(self, body, request_headers, response_headers)

    models.LambdaFunction.invoke = invoke  # type: ignore[method-assign]


def detach_moto_sqs_trigger(queue_arn: str) -> None:
    """Switch off moto's own SQS -> Lambda trigger for a queue: SqsPoller polls it instead."""
    from moto.sqs.models import sqs_backends
    for queue in sqs_backends[ACCOUNT][REGION].queues.values():
        if queue.queue_arn == queue_arn:
            queue.lambda_event_source_mappings.clear()


# Task definitions the template declares, by ARN: {"family", "containers": {name: {entry_point,
# command, environment}}}. Filled while provisioning, read by EcsRunner.
TASK_DEFINITIONS: dict[str, dict] = {}


class EcsRunner:
    """Fargate as a local process. A task's container runs its entry point (a workspace bin,
    built like the functions) with the task definition's environment, then the emulator's own
    (endpoints, credentials, the local ffmpeg, the test's VIDPIPE_* settings), then the run's
    container overrides, as ECS layers them. Stop codes and exit codes are reported as ECS
    describes a stopped task."""

    def __init__(self, target_dir: Path, env: dict[str, str], timeout: float):
        self.target_dir = target_dir
        self.env = env
        self.timeout = timeout
        self.tasks: dict[str, dict] = {}
        self.lock = threading.Lock()

    def run(self, cluster: str, task_definition: str, overrides: dict) -> dict:
        td = TASK_DEFINITIONS.get(task_definition)
        if td is None:
            raise EmulatorError(f"runTask: unknown task definition {task_definition}")
        over = {_k(o, "Name"): o for o in _k(overrides or {}, "ContainerOverrides") or []}
        # One essential container per task definition here (the template has one).
        name, c = next(iter(td["containers"].items()))
        o = over.get(name, {})
        command = list(_k(o, "Command") or c["command"])
        if not c["entry_point"]:
            raise EmulatorError(f"runTask: container {name} has no entry point to run locally")
        exe = self.target_dir / "debug" / c["entry_point"][0]
        argv = [str(exe)] + c["entry_point"][1:] + command
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "MOTO_PORT"}
        env.update(c["environment"])
        env.update(self.env)
        for e in _k(o, "Environment") or []:
            env[_k(e, "Name")] = str(_k(e, "Value"))
        task_id = hashlib.sha1(f"{time.time_ns()}{argv}".encode()).hexdigest()[:32]
        cluster_name = cluster.rsplit("/", 1)[-1]
        task = {
            "TaskArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{cluster_name}/{task_id}",
            "ClusterArn": cluster if cluster.startswith("arn:") else f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{cluster}",
            "TaskDefinitionArn": task_definition,
            "LaunchType": "FARGATE",
            "LastStatus": "RUNNING",
            "DesiredStatus": "RUNNING",
            "Containers": [{"Name": name, "LastStatus": "RUNNING"}],
        }
        with self.lock:
            self.tasks[task["TaskArn"]] = task
        log(f"ecs: task {task_id} runs {' '.join(argv[:3])} ...")

        def execute() -> None:
            t = time.monotonic()
            try:
                proc = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=sys.stderr,
                                      stderr=sys.stderr, timeout=self.timeout, start_new_session=True)
                code, stop_code, why = proc.returncode, "EssentialContainerExited", "Essential container in task exited"
            except subprocess.TimeoutExpired:
                code, stop_code, why = 137, "TaskFailedToStart", f"emulator: task ran over {self.timeout:.0f}s"
            except OSError as e:
                code, stop_code, why = None, "TaskFailedToStart", f"CannotStartContainerError: {e}"
            log(f"ecs: task {task_id} stopped in {time.monotonic() - t:.1f}s, exit {code}")
            with self.lock:
                task.update({"LastStatus": "STOPPED", "DesiredStatus": "STOPPED", "StopCode": stop_code,
                             "StoppedReason": why})
                container = {"Name": name, "LastStatus": "STOPPED"}
                if code is not None:
                    container["ExitCode"] = code
                task["Containers"] = [container]

        threading.Thread(target=execute, daemon=True, name=f"ecs-{task_id[:8]}").start()
        return dict(task)

    def describe(self, task_arn: str) -> dict:
        with self.lock:
            return json.loads(json.dumps(self.tasks[task_arn]))


def _k(d: dict, pascal: str) -> Any:
    """A Step Functions parameter by its PascalCase name or the SDK's camelCase one."""
    return d.get(pascal, d.get(pascal[0].lower() + pascal[1:]))


def install_ecs_runner(runner: EcsRunner) -> None:
    """Route moto's Step Functions `ecs:runTask.sync` to EcsRunner.

    moto 5.2.5 calls its own ECS run_task (which needs the subnets in its EC2 and never runs or
    stops a task) and then waits for STOPPED forever. Here the task runs as a process, and a stopped
    task whose essential container did not exit 0 fails the state with States.TaskFailed and the
    task description as the Cause, as Step Functions does.
    """
    from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent, FailureEventException)
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType)
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_ecs as m
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
    from moto.stepfunctions.parser.asl.utils.encoding import to_json_str

    def _eval_service_task(self: Any, env: Any, resource_runtime_part: Any, normalised_parameters: dict,
                           state_credentials: Any) -> None:
        if self._get_boto_service_action() != "run_task":
            raise EmulatorError(f"ecs:{self._get_boto_service_action()} is not emulated")
        p = normalised_parameters
        task = runner.run(_k(p, "Cluster") or "default", _k(p, "TaskDefinition"), _k(p, "Overrides") or {})
        env.stack.append({"Tasks": [task]})

    def _build_sync_resolver(self: Any, env: Any, resource_runtime_part: Any, normalised_parameters: dict,
                             state_credentials: Any) -> Callable[[], Any]:
        task_arn = env.stack.pop()["Tasks"][0]["TaskArn"]

        def resolve() -> dict | None:
            task = runner.describe(task_arn)
            if task["LastStatus"] != "STOPPED":
                return None
            if all(c.get("ExitCode") == 0 for c in task["Containers"]):
                return task
            raise FailureEventException(FailureEvent(
                env=env,
                error_name=StatesErrorName(typ=StatesErrorNameType.StatesTaskFailed),
                event_type=HistoryEventType.TaskFailed,
                event_details=EventDetails(taskFailedEventDetails=TaskFailedEventDetails(
                    resource=self._get_sfn_resource(),
                    resourceType=self._get_sfn_resource_type(),
                    error=StatesErrorNameType.StatesTaskFailed.to_name(),
                    cause=to_json_str(task),
                )),
            ))

        return resolve

    m.StateTaskServiceEcs._eval_service_task = _eval_service_task  # type: ignore[method-assign]
    m.StateTaskServiceEcs._build_sync_resolver = _build_sync_resolver  # type: ignore[method-assign]


def install_s3_list_parts_root() -> None:
    """Answer ListParts under the root element AWS uses.

    moto 5.2.5 serialises ListParts as `<ListPartsResponse>`; S3 answers `<ListPartsResult>`, and
    the AWS SDK for Rust refuses any other root. The API lists an upload's parts before joining
    them, so the body's root is renamed here; nothing else in it changes.
    """
    from moto.s3.responses import S3Response

    original = S3Response.list_parts

    def list_parts(self: Any) -> Any:
        status, headers, body = original(self)
        if isinstance(body, bytes):
            body = body.replace(b"<ListPartsResponse", b"<ListPartsResult").replace(
                b"</ListPartsResponse>", b"</ListPartsResult>")
        elif isinstance(body, str):
            body = body.replace("<ListPartsResponse", "<ListPartsResult").replace(
                "</ListPartsResponse>", "</ListPartsResult>")
        return status, headers, body

    S3Response.list_parts = list_parts  # type: ignore[method-assign]


def install_s3_event_fields() -> None:
    """Give moto's S3 notifications the per-write fields AWS sends.

    moto 5.2.5's S3 -> SQS/SNS/Lambda event has no `sequencer` and no `versionId`, so every write
    of one key would look like the same write and a re-upload would never be processed (the
    dispatcher names executions by bucket, key and version-or-sequencer). AWS always sends a
    sequencer, increasing per key, and a versionId on versioned buckets; both are added here. Keys
    stay URL-encoded as moto (and AWS) send them: decoding is the dispatcher's job.
    """
    from moto.s3 import notifications

    original = notifications._get_s3_event
    counter = itertools.count(1)
    lock = threading.Lock()

    def _get_s3_event(event_name: str, bucket: Any, key: Any, notification_id: str) -> dict:
        body = original(event_name, bucket, key, notification_id)
        with lock:
            # Hex, fixed width, ordered by time then by event: as comparable as AWS's.
            sequencer = f"{time.time_ns():016X}{next(counter):04X}"
        for record in body.get("Records", []):
            obj = record["s3"]["object"]
            obj.setdefault("sequencer", sequencer)
            version = getattr(key, "version_id", None)
            if version and version != "null":
                obj.setdefault("versionId", version)
        return body

    notifications._get_s3_event = _get_s3_event


class SqsPoller(threading.Thread):
    """An SQS event source mapping as Lambda runs it: poll, invoke, delete on success; on failure
    leave the messages to reappear after the visibility timeout (and reach the DLQ via the redrive
    policy, which moto applies on receive)."""

    def __init__(self, esm: dict, endpoint: str, stop: threading.Event):
        super().__init__(daemon=True, name=f"esm-{esm['function']}")
        import boto3
        from botocore.config import Config
        self.esm = esm
        self.stop_event = stop
        cfg = Config(region_name=REGION, retries={"max_attempts": 1}, read_timeout=30)
        s = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
        self.sqs = s.client("sqs", endpoint_url=endpoint, config=cfg)
        self.lam = s.client("lambda", endpoint_url=endpoint,
                            config=Config(region_name=REGION, retries={"max_attempts": 1}, read_timeout=3600))
        name = esm["arn"].split(":")[-1]
        self.url = self.sqs.get_queue_url(QueueName=name)["QueueUrl"]

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                msgs = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=min(10, self.esm["batch"]),
                                                WaitTimeSeconds=1, AttributeNames=["All"],
                                                MessageAttributeNames=["All"]).get("Messages", [])
            except Exception as e:  # noqa: BLE001
                if self.stop_event.is_set():
                    return
                log(f"esm {self.esm['function']}: receive failed: {e}")
                time.sleep(1)
                continue
            if not msgs:
                continue
            records = [{
                "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                "attributes": m.get("Attributes", {}), "messageAttributes": _msg_attrs(m.get("MessageAttributes", {})),
                "md5OfBody": m.get("MD5OfBody", ""), "eventSource": "aws:sqs",
                "eventSourceARN": self.esm["arn"], "awsRegion": REGION} for m in msgs]
            try:
                resp = self.lam.invoke(FunctionName=self.esm["function"], Payload=json.dumps({"Records": records}).encode())
                failed = "FunctionError" in resp
                body = resp["Payload"].read()
            except Exception as e:  # noqa: BLE001
                log(f"esm {self.esm['function']}: invoke failed: {e}")
                continue
            if failed:
                continue
            keep: set[str] = set()
            if self.esm["partial"]:
                try:
                    keep = {f["itemIdentifier"] for f in (json.loads(body) or {}).get("batchItemFailures", [])}
                except Exception:  # noqa: BLE001
                    keep = set()
            for m in msgs:
                if m["MessageId"] not in keep:
                    try:
                        self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=m["ReceiptHandle"])
                    except Exception as e:  # noqa: BLE001
                        log(f"esm {self.esm['function']}: delete failed: {e}")


def _msg_attrs(attrs: dict) -> dict:
    out = {}
    for k, v in attrs.items():
        out[k] = {"stringValue": v.get("StringValue"), "binaryValue": v.get("BinaryValue"),
                  "stringListValues": [], "binaryListValues": [], "dataType": v.get("DataType")}
    return out
