"""The emulated API Gateway WebSocket API: clients connect over ws://, and each `$connect`,
message and `$disconnect` becomes the event API Gateway would send, invoked on its route's own
function through cargo lambda watch. A second listener is the stage's management API
(`@connections/{id}`: POST delivers a frame, DELETE closes, GET describes; a connection that is
gone answers 410 GoneException), which the functions reach through `VIDPIPE_LIVE_ENDPOINT`."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qsl, unquote, urlsplit

from websockets.datastructures import Headers
from websockets.http11 import Response
from websockets.sync.server import ServerConnection, serve

from .common import ACCOUNT, log

# API Gateway refuses frames over 128 KiB (32 KiB per frame fragment) and management posts alike.
MAX_FRAME = 128 * 1024
# A client may ask the emulator to lose its `$disconnect`, as API Gateway may (it is best effort):
# its entry in the functions' store then outlives the socket, and the next post to it meets the
# 410 GoneException that a vanished client causes in AWS.
LOSE_DISCONNECT_HEADER = "x-emulator-lose-disconnect"


def _now_ms() -> int:
    return int(time.time() * 1000)


def _request_time(ms: int) -> str:
    return time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(ms / 1000))


class WebSocketGateway:
    """One WEBSOCKET API stage on 127.0.0.1: the client side on `port`, management on `manage_port`.

    `api` is `Provisioner.websocket_api()`: `id`, `stage`, `selection` and `routes`
    (route key -> registered function name)."""

    def __init__(self, api: dict, invoke: Callable[[str, bytes], tuple[int, bytes]], port: int, manage_port: int):
        self.api = api
        self.invoke = invoke
        self.port = port
        self.manage_port = manage_port
        self.stage = api["stage"]
        self.url = f"ws://127.0.0.1:{port}/{self.stage}"
        self.manage_url = f"http://127.0.0.1:{manage_port}/{self.stage}"
        self.stats_url = f"http://127.0.0.1:{manage_port}/_emulator/stats"
        self.lock = threading.Lock()
        self.open: dict[str, dict[str, Any]] = {}  # connection id -> {"ws", "connected_at", "source_ip", ...}
        self.stats = {"connects": 0, "refused": 0, "messages": 0, "posts": 0, "gone": 0, "deletes": 0,
                      "disconnects": 0, "lost_disconnects": 0}
        self.extra_stats: Callable[[], dict] = dict
        self.server: Any = None
        self.manage: ThreadingHTTPServer | None = None

    # -- events, in API Gateway's shapes --------------------------------------------------------
    def _context(self, conn_id: str, route: str, event_type: str, info: dict, **extra: Any) -> dict:
        now = _now_ms()
        ctx = {
            "routeKey": route, "eventType": event_type, "extendedRequestId": str(uuid.uuid4()),
            "requestTime": _request_time(now), "messageDirection": "IN", "stage": self.stage,
            "connectedAt": info["connected_at"], "requestTimeEpoch": now, "requestId": str(uuid.uuid4()),
            "domainName": f"127.0.0.1:{self.port}", "connectionId": conn_id, "apiId": self.api["id"],
            "accountId": ACCOUNT,
            "identity": {"sourceIp": info["source_ip"], "userAgent": info.get("user_agent", "")},
        }
        ctx.update(extra)
        return ctx

    def connect_event(self, conn_id: str, info: dict, headers: list[tuple[str, str]], query: str) -> dict:
        single: dict[str, str] = {}
        multi: dict[str, list[str]] = {}
        for k, v in headers:
            # API Gateway keeps the client's spelling of header names; the functions read them
            # case-insensitively (HeaderMap), so lowercase is as good and predictable.
            k = k.lower()
            multi.setdefault(k, []).append(v)
            single[k] = v
        qs_single: dict[str, str] = {}
        qs_multi: dict[str, list[str]] = {}
        for k, v in parse_qsl(query, keep_blank_values=True):
            qs_multi.setdefault(k, []).append(v)
            qs_single[k] = v
        event: dict[str, Any] = {
            "headers": single, "multiValueHeaders": multi,
            "requestContext": self._context(conn_id, "$connect", "CONNECT", info),
            "isBase64Encoded": False,
        }
        if qs_single:
            event["queryStringParameters"] = qs_single
            event["multiValueQueryStringParameters"] = qs_multi
        return event

    def message_event(self, conn_id: str, info: dict, route: str, data: str | bytes) -> dict:
        binary = isinstance(data, bytes)
        return {
            "requestContext": self._context(conn_id, route, "MESSAGE", info, messageId=str(uuid.uuid4())),
            "body": base64.b64encode(data).decode() if binary else data,
            "isBase64Encoded": binary,
        }

    def disconnect_event(self, conn_id: str, info: dict, code: int | None, reason: str) -> dict:
        return {
            "headers": {"host": f"127.0.0.1:{self.port}", "x-api-key": "", "x-restapi": ""},
            "multiValueHeaders": {},
            "requestContext": self._context(conn_id, "$disconnect", "DISCONNECT", info,
                                            disconnectStatusCode=code if code is not None else 1006,
                                            disconnectReason=reason),
            "isBase64Encoded": False,
        }

    def route_of(self, data: str | bytes) -> str:
        """The route selection expression `$request.body.<field>`: a frame whose field names a
        route goes there, anything else to `$default`."""
        sel = self.api.get("selection", "")
        if isinstance(data, str) and sel.startswith("$request.body."):
            try:
                body = json.loads(data)
            except ValueError:
                body = None
            value: Any = body
            for part in sel[len("$request.body."):].split("."):
                value = value.get(part) if isinstance(value, dict) else None
            if isinstance(value, str) and value in self.api["routes"] and not value.startswith("$"):
                return value
        return "$default"

    def call(self, route: str, event: dict) -> tuple[int | None, dict]:
        """Invokes a route's function: (its statusCode, its answer); None when it failed."""
        fn = self.api["routes"].get(route)
        if not fn:
            return 200, {}
        status, raw = self.invoke(fn, json.dumps(event).encode())
        try:
            out = json.loads(raw) if status == 200 else None
        except ValueError:
            out = None
        if not isinstance(out, dict) or "errorType" in out:
            log(f"websocket: {route} -> {fn} failed ({status}): {raw[:500]!r}")
            return None, {}
        return int(out.get("statusCode", 200)), out

    # -- the client side ------------------------------------------------------------------------
    def start(self) -> None:
        gateway = self

        def process_request(conn: ServerConnection, request: Any) -> Response | None:
            parts = urlsplit(request.path)
            if parts.path.rstrip("/") != f"/{gateway.stage}":
                return _plain(404, b'{"message":"Not Found"}')
            if "upgrade" not in request.headers.get("Connection", "").lower():
                return _plain(426, b'{"message":"Upgrade Required"}')
            conn_id = base64.b64encode(os.urandom(10)).decode().replace("/", "_").replace("+", "-")
            addr = conn.remote_address[0] if conn.remote_address else "127.0.0.1"
            info = {"connected_at": _now_ms(), "source_ip": addr,
                    "user_agent": request.headers.get("User-Agent", ""),
                    "lose_disconnect": request.headers.get(LOSE_DISCONNECT_HEADER, "") not in ("", "0")}
            event = gateway.connect_event(conn_id, info, list(request.headers.raw_items()), parts.query)
            status, out = gateway.call("$connect", event)
            if status is None or not 200 <= status < 300:
                with gateway.lock:
                    gateway.stats["refused"] += 1
                # API Gateway answers a refused $connect with the function's status (a failed
                # function: 500) and never upgrades.
                code = status if status is not None and 400 <= status < 600 else 500
                return _plain(code, b'{"message":"Forbidden"}' if code == 403 else b"")
            headers = {str(k).lower(): str(v) for k, v in (out.get("headers") or {}).items()}
            conn.vidpipe = {"id": conn_id, "info": info,  # type: ignore[attr-defined]
                            "protocol": headers.get("sec-websocket-protocol")}
            return None

        def process_response(conn: ServerConnection, _request: Any, response: Response) -> None:
            # Not in API Gateway's answer: lets a test name its own connection in the functions'
            # store (API Gateway's ids are only ever seen by the functions).
            state = getattr(conn, "vidpipe", None)
            if state and response.status_code == 101:
                response.headers["x-emulator-connection-id"] = state["id"]
            return None

        def select_subprotocol(conn: ServerConnection, offered: Any) -> str | None:
            # Only the subprotocol the $connect function echoed, as API Gateway does.
            chosen = getattr(conn, "vidpipe", {}).get("protocol")
            return chosen if chosen and chosen in offered else None

        def handler(conn: ServerConnection) -> None:
            state = conn.vidpipe  # type: ignore[attr-defined]
            conn_id, info = state["id"], state["info"]
            with gateway.lock:
                gateway.open[conn_id] = {"ws": conn, **info, "last_active": _now_ms()}
                gateway.stats["connects"] += 1
            try:
                for data in conn:
                    with gateway.lock:
                        gateway.stats["messages"] += 1
                        if conn_id in gateway.open:
                            gateway.open[conn_id]["last_active"] = _now_ms()
                    size = len(data.encode() if isinstance(data, str) else data)
                    if size > MAX_FRAME:
                        conn.close(1009, "Message too big")
                        break
                    route = gateway.route_of(data)
                    gateway.call(route, gateway.message_event(conn_id, info, route, data))
            except Exception as e:  # noqa: BLE001 - the socket's end is the disconnect below
                log(f"websocket: connection {conn_id} ended: {type(e).__name__}: {e}")
            finally:
                with gateway.lock:
                    gateway.open.pop(conn_id, None)
                if info["lose_disconnect"]:
                    with gateway.lock:
                        gateway.stats["lost_disconnects"] += 1
                else:
                    with gateway.lock:
                        gateway.stats["disconnects"] += 1
                    gateway.call("$disconnect", gateway.disconnect_event(
                        conn_id, info, conn.close_code, conn.close_reason or ""))

        self.server = serve(handler, "127.0.0.1", self.port, process_request=process_request,
                            process_response=process_response,
                            select_subprotocol=select_subprotocol, max_size=MAX_FRAME * 2,
                            server_header=None)
        threading.Thread(target=self.server.serve_forever, name="websocket", daemon=True).start()
        self._start_management()
        log(f"WebSocket API gateway on {self.url} (routes: {', '.join(sorted(self.api['routes']))}); "
            f"management API on {self.manage_url}/@connections")

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
        if self.manage:
            self.manage.shutdown()
            self.manage.server_close()

    # -- the management API ---------------------------------------------------------------------
    def _start_management(self) -> None:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt: str, *args: Any) -> None:
                pass

            def _any(self) -> None:
                gateway.manage_answer(self)

            do_GET = do_POST = do_DELETE = _any

        self.manage = ThreadingHTTPServer(("127.0.0.1", self.manage_port), Handler)
        self.manage.daemon_threads = True
        threading.Thread(target=self.manage.serve_forever, name="websocket-manage", daemon=True).start()

    def manage_answer(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("content-length") or 0)
        body = h.rfile.read(length) if length else b""
        path = urlsplit(h.path).path
        if path == "/_emulator/stats" and h.command == "GET":
            with self.lock:
                stats = dict(self.stats, open=len(self.open))
            stats.update(self.extra_stats())
            return _send(h, 200, json.dumps(stats).encode())
        prefix = f"/{self.stage}/@connections/"
        if not path.startswith(prefix) or "/" in path[len(prefix):]:
            return _send(h, 404, b'{"message":"Not Found"}')
        conn_id = unquote(path[len(prefix):])
        with self.lock:
            entry = self.open.get(conn_id)
        if entry is None:
            with self.lock:
                self.stats["gone"] += 1
            return _send(h, 410, b'{"message":null}', error="GoneException")
        ws: ServerConnection = entry["ws"]
        if h.command == "POST":
            if len(body) > MAX_FRAME:
                return _send(h, 413, b'{"message":"Request Entity Too Large"}', error="PayloadTooLargeException")
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                text = None
            try:
                ws.send(text if text is not None else body)
            except Exception:  # noqa: BLE001 - closed between the lookup and the send
                with self.lock:
                    self.stats["gone"] += 1
                return _send(h, 410, b'{"message":null}', error="GoneException")
            with self.lock:
                self.stats["posts"] += 1
            return _send(h, 200, b"")
        if h.command == "DELETE":
            with self.lock:
                self.stats["deletes"] += 1
            # The close ends the handler's loop, which then sends $disconnect, as API Gateway does.
            threading.Thread(target=ws.close, args=(1000, "Going away"), daemon=True).start()
            return _send(h, 204, b"")
        return _send(h, 200, json.dumps({
            "connectedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(entry["connected_at"] / 1000)),
            "identity": {"sourceIp": entry["source_ip"], "userAgent": entry.get("user_agent", "")},
            "lastActiveAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(entry["last_active"] / 1000)),
        }).encode())


def _plain(status: int, body: bytes) -> Response:
    import http
    headers = Headers([("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return Response(status, http.HTTPStatus(status).phrase, headers, body)


def _send(h: BaseHTTPRequestHandler, status: int, body: bytes, error: str | None = None) -> None:
    h.send_response(status)
    h.send_header("content-type", "application/json")
    if error:
        # How the management API names its errors; the SDK reads the type from this header.
        h.send_header("x-amzn-errortype", error)
    h.send_header("content-length", str(len(body)))
    h.end_headers()
    if h.command != "HEAD":
        h.wfile.write(body)
