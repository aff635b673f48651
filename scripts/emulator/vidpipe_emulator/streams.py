"""DynamoDB stream event source mappings, run as Lambda's poller runs them: read moto's stream
through the DynamoDB Streams API, drop the records the mapping's filter criteria do not match,
and invoke the function with the `DynamodbEvent` shape in batches (size and batching window),
honouring `ReportBatchItemFailures` (resume at the first failed record), retries, bisection and
the record-age limit. `repeat` delivers every batch more than once, as Lambda's at-least-once
delivery may: functions must be idempotent."""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Callable

from .common import REGION, EmulatorError, log

POLL_SECONDS = 0.25


def matches(pattern: Any, value: Any) -> bool:
    """An event-filtering pattern (EventBridge's syntax, which Lambda's filter criteria use) against
    one record: objects nest, a leaf is a list of alternatives (literals, `prefix`, `suffix`,
    `exists`, `anything-but`, `equals-ignore-case`)."""
    if isinstance(pattern, dict):
        if not isinstance(value, dict):
            return False
        for key, sub in pattern.items():
            if isinstance(sub, list) and any(isinstance(a, dict) and "exists" in a for a in sub):
                exists = next(a["exists"] for a in sub if isinstance(a, dict) and "exists" in a)
                if (key in value) != bool(exists):
                    return False
                continue
            if key not in value or not matches(sub, value[key]):
                return False
        return True
    if isinstance(pattern, list):
        values = value if isinstance(value, list) else [value]
        return any(_leaf(alt, v) for alt in pattern for v in values)
    raise EmulatorError(f"filter pattern: a leaf must be a list of alternatives, not {pattern!r}")


def _leaf(alt: Any, v: Any) -> bool:
    if not isinstance(alt, dict):
        return alt == v
    if "prefix" in alt:
        return isinstance(v, str) and v.startswith(alt["prefix"])
    if "suffix" in alt:
        return isinstance(v, str) and v.endswith(alt["suffix"])
    if "equals-ignore-case" in alt:
        return isinstance(v, str) and v.lower() == str(alt["equals-ignore-case"]).lower()
    if "anything-but" in alt:
        but = alt["anything-but"]
        if isinstance(but, dict) and "prefix" in but:
            return not (isinstance(v, str) and v.startswith(but["prefix"]))
        return v not in (but if isinstance(but, list) else [but])
    raise EmulatorError(f"filter pattern: operator {sorted(alt)} is not emulated")


def check_filters(filters: list[dict]) -> None:
    """Fails startup on an operator the matcher cannot judge, rather than mis-filter later."""
    def walk(p: Any) -> None:
        if isinstance(p, dict):
            for v in p.values():
                walk(v)
        elif isinstance(p, list):
            for alt in p:
                if isinstance(alt, dict) and "exists" not in alt:
                    _leaf(alt, None)
    for f in filters:
        walk(f)


def lambda_record(rec: dict, stream_arn: str) -> dict:
    """A `GetRecords` record (boto3's shapes) as Lambda hands it to the function."""
    d = dict(rec["dynamodb"])
    created = d.get("ApproximateCreationDateTime")
    if hasattr(created, "timestamp"):
        d["ApproximateCreationDateTime"] = float(int(created.timestamp()))
    return {"eventID": rec["eventID"], "eventName": rec["eventName"], "eventVersion": "1.1",
            "eventSource": "aws:dynamodb", "awsRegion": rec.get("awsRegion", REGION), "dynamodb": d,
            "eventSourceARN": stream_arn}


class StreamFeeder(threading.Thread):
    """One DynamoDB stream mapping (`Provisioner.stream_esms` entry)."""

    def __init__(self, esm: dict, endpoint: str, invoke: Callable[[str, bytes], tuple[int, bytes]],
                 stop: threading.Event, repeat: int = 1):
        super().__init__(daemon=True, name=f"stream-{esm['function']}")
        import boto3
        from botocore.config import Config
        self.esm = esm
        self.invoke = invoke
        self.stop_event = stop
        self.repeat = max(1, repeat)
        check_filters(esm["filters"])
        s = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
        self.streams = s.client("dynamodbstreams", endpoint_url=endpoint,
                                config=Config(region_name=REGION, retries={"max_attempts": 2}, read_timeout=30))
        self.stats = {"read": 0, "filtered_out": 0, "delivered": 0, "invokes": 0, "failed_invokes": 0,
                      "redelivered": 0}
        self.lock = threading.Lock()
        # Where reading starts, fixed now: LATEST means records written after startup.
        shard = self.streams.describe_stream(StreamArn=esm["arn"])["StreamDescription"]["Shards"][0]["ShardId"]
        start = "TRIM_HORIZON" if esm["start"] == "TRIM_HORIZON" else "LATEST"
        self.iterator = self.streams.get_shard_iterator(StreamArn=esm["arn"], ShardId=shard,
                                                        ShardIteratorType=start)["ShardIterator"]

    def snapshot(self) -> dict:
        with self.lock:
            return dict(self.stats, function=self.esm["function"], repeat=self.repeat)

    def _count(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.stats[key] += n

    def run(self) -> None:
        pending: list[dict] = []
        first_at = 0.0
        while not self.stop_event.is_set():
            try:
                out = self.streams.get_records(ShardIterator=self.iterator, Limit=1000)
            except Exception as e:  # noqa: BLE001
                if self.stop_event.is_set():
                    return
                log(f"stream {self.esm['function']}: GetRecords failed: {e}")
                time.sleep(1)
                continue
            self.iterator = out.get("NextShardIterator") or self.iterator
            records = out.get("Records", [])
            self._count("read", len(records))
            for r in records:
                rec = lambda_record(r, self.esm["arn"])
                if self.esm["filters"] and not any(matches(f, rec) for f in self.esm["filters"]):
                    self._count("filtered_out")
                    continue
                if not pending:
                    first_at = time.monotonic()
                pending.append(rec)
            # A batch goes when full or when the batching window since its first record is over.
            while pending and (len(pending) >= self.esm["batch"]
                               or time.monotonic() - first_at >= self.esm["window"]):
                batch, pending = pending[: self.esm["batch"]], pending[self.esm["batch"]:]
                for i in range(self.repeat):
                    self.deliver(batch)
                    if i:
                        self._count("redelivered", len(batch))
                first_at = time.monotonic()
            self.stop_event.wait(POLL_SECONDS)

    def deliver(self, batch: list[dict]) -> None:
        """One batch until it succeeds or its retries run out; failed records are resumed from,
        and a failing batch is halved when the mapping bisects."""
        retries = self.esm["retries"]
        attempts = 0
        todo = [batch]
        max_age = 300.0
        while todo and not self.stop_event.is_set():
            part = todo.pop(0)
            part = [r for r in part if time.time() - r["dynamodb"].get("ApproximateCreationDateTime", time.time())
                    <= max_age]
            if not part:
                continue
            self._count("invokes")
            status, raw = self.invoke(self.esm["function"], json.dumps({"Records": part}).encode())
            failed_from: int | None = None
            if status != 200:
                failed_from = 0
            elif self.esm["partial"]:
                try:
                    failures = (json.loads(raw) or {}).get("batchItemFailures") or []
                except ValueError:
                    failures = []
                ids = {f.get("itemIdentifier") for f in failures}
                for i, r in enumerate(part):
                    if r["dynamodb"].get("SequenceNumber") in ids:
                        failed_from = i
                        break
            if failed_from is None:
                self._count("delivered", len(part))
                continue
            self._count("failed_invokes")
            self._count("delivered", failed_from)
            attempts += 1
            if 0 <= retries < attempts:
                log(f"stream {self.esm['function']}: {len(part) - failed_from} record(s) dropped after "
                    f"{attempts} attempt(s): {raw[:300]!r}")
                continue
            rest = part[failed_from:]
            if self.esm["bisect"] and failed_from == 0 and len(rest) > 1:
                half = len(rest) // 2
                todo[:0] = [rest[:half], rest[half:]]
            else:
                todo.insert(0, rest)
            time.sleep(min(1.0, 0.1 * attempts))
