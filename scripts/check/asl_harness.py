"""What scripts/check/asl_moto.py and asl_moto_processing.py share to run an ASL in moto's Step
Functions executor with stub Lambda functions: the AWS environment, the stubs' recorded calls and
queued errors, the Lambda patch that answers with them, rendering a definition, running one
execution to its end, and the scenario loop with its report.

Import it before boto3 and moto: it sets the region and the dummy credentials they read.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import re
import threading
import time
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterable

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402
from moto.awslambda.models import LambdaFunction  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
REGION = os.environ["AWS_DEFAULT_REGION"]
# The execution whose last events a failed scenario's report shows.
LAST_EXECUTION: list[str] = []


class StepFailure(Exception):
    """What a stub raises to report a step error by its stable name."""

    def __init__(self, error_type: str, message: str):
        super().__init__(message)
        self.error_type = error_type


class StubWorld:
    """The stubs' shared state: every call made, and the errors queued per function. Each scenario
    file adds what its own stubs need."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[tuple[str, dict]] = []
        # name -> list of error types to raise on successive calls before succeeding
        self.failures: dict[str, list[str]] = {}

    def fail_next(self, function: str, *error_types: str) -> None:
        self.failures.setdefault(function, []).extend(error_types)

    def called(self, function: str) -> list[dict]:
        return [payload for name, payload in self.calls if name == function]

    def record(self, function: str, payload: dict) -> None:
        """Note the call, then fail it with the error queued for it, if any."""
        with self.lock:
            self.calls.append((function, payload))
            queued = self.failures.get(function)
            error = queued.pop(0) if queued else None
        if error:
            raise StepFailure(error, f"stub {function} fails with {error}")


def require_keys(function: str, payload: dict, keys: set[str]) -> None:
    if set(payload) != keys:
        raise StepFailure("VidPipe.Internal", f"{function} got keys {sorted(payload)}, wants {sorted(keys)}")


def stub_lambda(step: Callable[[str, dict], dict]) -> None:
    """Every Lambda invoke moto makes runs `step(function name, payload)` in process: moto cannot run
    Lambda code without Docker. A StepFailure answers with the `{"errorType", "errorMessage"}` body
    lambda_runtime sends, so the executor sees the error names the real functions report."""

    def fake_invoke(self: LambdaFunction, event=None):  # noqa: ANN001 - moto's signature
        """Replaces moto's Docker-based invoke: returns (body, errored, logs)."""
        payload = event if isinstance(event, dict) else json.loads(event or "{}")
        try:
            return json.dumps(step(self.function_name, payload)), False, ""
        except StepFailure as e:
            return json.dumps({"errorType": e.error_type, "errorMessage": str(e)}), True, ""

    LambdaFunction._invoke_lambda = fake_invoke


def render_asl(asl: Path, subs: dict) -> str:
    text = asl.read_text()
    missing = sorted(set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", text)) - set(subs))
    if missing:
        raise SystemExit(f"no substitution for {missing}")
    return re.sub(r"\$\{([A-Za-z0-9_]+)\}", lambda m: subs[m.group(1)], text)


def execute(sfn, machine: str, definition: str, role: str, name: str, execution_input: dict,
            timeout: float) -> dict:
    """Create the state machine `machine`, start one execution called `name` and wait for its end."""
    sm = sfn.create_state_machine(name=machine, definition=definition, roleArn=role)["stateMachineArn"]
    LAST_EXECUTION[:] = []
    # Always name the execution (moto pitfall; also what the API does).
    ex = sfn.start_execution(stateMachineArn=sm, name=name, input=json.dumps(execution_input))
    LAST_EXECUTION.append(ex["executionArn"])
    deadline = time.time() + timeout
    while time.time() < deadline:
        d = sfn.describe_execution(executionArn=ex["executionArn"])
        if d["status"] != "RUNNING":
            return d
        time.sleep(0.1)
    raise AssertionError(f"execution {name} still running after {timeout}s")


def check(cond: bool, what: str, detail=None) -> None:
    if not cond:
        raise AssertionError(f"{what}: {json.dumps(detail, default=str, indent=1) if detail is not None else ''}")


def parse_args(doc: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="skip scenarios that wait through retry back-off")
    ap.add_argument("-v", "--verbose", action="store_true", help="keep moto's executor logging")
    args = ap.parse_args()
    if not args.verbose:
        # The executor logs every caught error with its parse tree: noise when errors are the point.
        logging.getLogger("moto").setLevel(logging.CRITICAL)
    return args


def mock_stack() -> Any:
    """moto in process, with state machine executions really run."""
    return mock_aws(config={"stepfunctions": {"execute_state_machine": True}})


def create_functions(names: Iterable[str]) -> None:
    """Registers the stub functions; their code is never run, so any zip will do."""
    role = boto3.client("iam").create_role(RoleName="lambda", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("bootstrap", "stub")
    lam = boto3.client("lambda")
    for name in names:
        lam.create_function(FunctionName=name, Runtime="provided.al2023", Role=role, Handler="bootstrap", Code={"ZipFile": buf.getvalue()})


def run_scenarios(sfn, scenarios: Iterable[tuple[str, Callable[..., None]]], *args: Any) -> int:
    """Runs each scenario with `args`; prints ok, or FAIL with the last events of its execution.
    Returns how many failed."""
    failures = 0
    for name, fn in scenarios:
        started = time.time()
        try:
            fn(*args)
            print(f"ok   {name} ({time.time() - started:.1f}s)")
        except AssertionError as e:
            failures += 1
            print(f"FAIL {name}: {e}")
            if LAST_EXECUTION:
                print("     last events of the execution:")
                events = sfn.get_execution_history(executionArn=LAST_EXECUTION[0], reverseOrder=True, maxResults=6)["events"]
                for ev in reversed(events):
                    details = {k: v for k, v in ev.items() if k.endswith("Details")}
                    print(f"     {ev['type']}: {json.dumps(details, default=str)[:600]}")
    return failures
