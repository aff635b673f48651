#!/usr/bin/env python3
"""The emulator's live-progress parts on their own, in about two seconds, with stand-in functions
(the real ones run in tests/suite/emulated_live.rs):

1. the stream feeder on a moto table with a KEYS_ONLY stream: LATEST skips what came before, the
   template's filter drops other items, a reported batch item failure resumes at that record, and
   `repeat` delivers the batch again;
2. the WebSocket gateway: a refused `$connect` never upgrades and keeps its status, the echoed
   subprotocol is selected, a frame reaches `$default` and the function's post reaches the client,
   a closed connection answers 410 GoneException, a lost `$disconnect` is not sent, DELETE closes
   and sends `$disconnect` with the close code.

    .tools/venv/bin/python scripts/check/emulator_live.py
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts/emulator"))

import boto3  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402
from websockets.exceptions import InvalidStatus  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

from vidpipe_emulator.common import free_port  # noqa: E402
from vidpipe_emulator.streams import StreamFeeder  # noqa: E402
from vidpipe_emulator.websocket import WebSocketGateway  # noqa: E402

FILTER = {"dynamodb": {"Keys": {"PK": {"S": [{"prefix": "JOB#"}, {"prefix": "PROC#"}]}}}}


def wait_until(check, what: str, limit: float = 10.0) -> None:
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out: {what}")
        time.sleep(0.05)


def check_feeder() -> None:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        url = f"http://127.0.0.1:{port}"
        ddb = boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        table = ddb.create_table(
            TableName="jobs", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"},
                                  {"AttributeName": "SK", "AttributeType": "S"}],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"})["TableDescription"]
        ddb.put_item(TableName="jobs", Item={"PK": {"S": "JOB#before"}, "SK": {"S": "META"}})
        batches: list[list[str]] = []

        def invoke(_fn: str, payload: bytes) -> tuple[int, bytes]:
            records = json.loads(payload)["Records"]
            for r in records:
                assert r["eventSource"] == "aws:dynamodb" and r["eventSourceARN"] == table["LatestStreamArn"], r
                assert isinstance(r["dynamodb"]["ApproximateCreationDateTime"], float), r
                assert r["dynamodb"]["StreamViewType"] == "KEYS_ONLY", r
            batches.append([r["dynamodb"]["Keys"]["PK"]["S"] for r in records])
            if len(batches) == 1:  # the second record failed: resume there
                failed = records[1]["dynamodb"]["SequenceNumber"]
                return 200, json.dumps({"batchItemFailures": [{"itemIdentifier": failed}]}).encode()
            return 200, b'{"batchItemFailures":[]}'

        stop = threading.Event()
        esm = {"id": "m", "arn": table["LatestStreamArn"], "function": "pusher", "batch": 100, "window": 0.5,
               "start": "LATEST", "filters": [FILTER], "retries": 3, "bisect": True, "partial": True,
               "enabled": True}
        feeder = StreamFeeder(esm, url, invoke, stop, repeat=2)
        feeder.start()
        for pk in ["JOB#a", "QUOTA#x", "PROC#b", "JOB#c"]:
            ddb.put_item(TableName="jobs", Item={"PK": {"S": pk}, "SK": {"S": "META"}})
        wait_until(lambda: len(batches) >= 3, "three deliveries")
        time.sleep(0.6)
        stop.set()
        want = [["JOB#a", "PROC#b", "JOB#c"], ["PROC#b", "JOB#c"], ["JOB#a", "PROC#b", "JOB#c"]]
        assert batches == want, batches
        stats = feeder.snapshot()
        assert stats["filtered_out"] == 1 and stats["redelivered"] == 3, stats
    finally:
        server.stop()
    print("ok: stream feeder (LATEST, filter, partial failure, repeat)")


def check_gateway() -> None:
    events: list[tuple[str, dict]] = []
    gw: WebSocketGateway

    def invoke(fn: str, payload: bytes) -> tuple[int, bytes]:
        ev = json.loads(payload)
        events.append((fn, ev))
        if fn == "connect":
            if (ev.get("queryStringParameters") or {}).get("tenant") != "a":
                return 200, b'{"statusCode":401}'
            offered = ev["headers"].get("sec-websocket-protocol")
            headers = {"sec-websocket-protocol": offered.split(",")[0].strip()} if offered else {}
            return 200, json.dumps({"statusCode": 200, "headers": headers}).encode()
        if fn == "message":
            cid = ev["requestContext"]["connectionId"]
            req = urllib.request.Request(f"{gw.manage_url}/@connections/{cid}", data=b'{"type":"ack"}', method="POST")
            assert urllib.request.urlopen(req, timeout=5).status == 200
        return 200, b'{"statusCode":200}'

    api = {"id": "abc", "stage": "dev", "selection": "$request.body.action",
           "routes": {"$connect": "connect", "$disconnect": "disconnect", "$default": "message"}}
    gw = WebSocketGateway(api, invoke, free_port(), free_port())
    gw.start()
    try:
        try:
            connect(gw.url)
            raise AssertionError("a refused $connect upgraded")
        except InvalidStatus as e:
            assert e.response.status_code == 401, e.response.status_code

        ws = connect(gw.url + "?tenant=a", subprotocols=["bearer.t0k"],
                     additional_headers={"x-emulator-lose-disconnect": "1"})
        assert ws.subprotocol == "bearer.t0k", ws.subprotocol
        cid = ws.response.headers["x-emulator-connection-id"]
        ws.send('{"action":"subscribe","job_id":"j"}')
        assert json.loads(ws.recv(timeout=5)) == {"type": "ack"}
        ws.close()
        wait_until(lambda: cid not in gw.open, "the closed connection forgotten")
        try:
            urllib.request.urlopen(urllib.request.Request(f"{gw.manage_url}/@connections/{cid}", data=b"x",
                                                          method="POST"), timeout=5)
            raise AssertionError("a post to a closed connection succeeded")
        except urllib.error.HTTPError as e:
            assert e.code == 410 and e.headers["x-amzn-errortype"] == "GoneException", (e.code, e.headers)

        ws = connect(gw.url + "?tenant=a")
        cid2 = ws.response.headers["x-emulator-connection-id"]
        urllib.request.urlopen(urllib.request.Request(f"{gw.manage_url}/@connections/{cid2}", method="DELETE"),
                               timeout=5)
        wait_until(lambda: any(f == "disconnect" for f, _ in events), "$disconnect after DELETE")
        kinds = [(f, e["requestContext"]["eventType"], e["requestContext"]["connectionId"]) for f, e in events]
        assert ("disconnect", "DISCONNECT", cid) not in kinds, "a lost $disconnect was sent"
        disconnect = next(e for f, e in events if f == "disconnect")
        assert disconnect["requestContext"]["connectionId"] == cid2
        assert disconnect["requestContext"]["disconnectStatusCode"] == 1000, disconnect
        message = next(e for f, e in events if f == "message")
        assert message["requestContext"]["routeKey"] == "$default" and message["body"].startswith("{"), message
    finally:
        gw.stop()
    print("ok: WebSocket gateway ($connect refused and accepted, subprotocol, $default, 410, DELETE)")


def main() -> int:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    check_feeder()
    check_gateway()
    return 0


if __name__ == "__main__":
    sys.exit(main())
