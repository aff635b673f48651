"""The emulated API Gateway HTTP API: the template's `HttpApi` events are its routes, and each request
becomes a payload-2.0 event invoked on its route's own function through cargo lambda watch, as API
Gateway would. A request no route matches gets API Gateway's own 404."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit

from .common import log

# Text bodies pass as text; anything else is base64, as API Gateway does.
TEXT_TYPES = ("text/", "application/json", "application/problem+json", "application/xml", "application/x-www-form-urlencoded")
# API Gateway's HTTP API refuses larger payloads.
MAX_BODY = 10 * 1024 * 1024


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    function: str  # the function's logical id
    pattern: re.Pattern[str]

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"


def routes_of(template: dict) -> list[Route]:
    """Every `HttpApi` event of every function in the (untransformed) SAM template."""
    routes = []
    for lid, res in (template.get("Resources") or {}).items():
        if res.get("Type") != "AWS::Serverless::Function":
            continue
        for ev in ((res.get("Properties") or {}).get("Events") or {}).values():
            if ev.get("Type") != "HttpApi":
                continue
            p = ev.get("Properties") or {}
            method, path = str(p.get("Method", "ANY")).upper(), str(p.get("Path", "$default"))
            regex = "^" + re.sub(r"\\\{([A-Za-z0-9_]+)\\\}", r"(?P<\1>[^/]+)", re.escape(path)) + "$"
            # A greedy `{name+}` (last in the path) takes the rest of it, slashes included.
            regex = re.sub(r"\\\{([A-Za-z0-9_]+)\\\+\\\}", r"(?P<\1>.+)", regex)
            routes.append(Route(method, path, lid, re.compile(regex)))
    # API Gateway prefers the most specific route: greedy ones only when nothing else matches.
    return sorted(routes, key=lambda r: "+}" in r.path)


def match(routes: list[Route], method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    for r in routes:
        if r.method in (method, "ANY"):
            m = r.pattern.match(path)
            if m:
                return r, m.groupdict()
    return None


def event_for(route: Route, params: dict[str, str], method: str, target: str, headers: list[tuple[str, str]],
              body: bytes, source_ip: str) -> dict[str, Any]:
    """The payload-2.0 event API Gateway sends for one request."""
    parts = urlsplit(target)
    merged: dict[str, str] = {}
    cookies: list[str] = []
    for k, v in headers:
        k = k.lower()
        if k == "cookie":
            cookies.extend(c.strip() for c in v.split(";") if c.strip())
            continue
        merged[k] = f"{merged[k]},{v}" if k in merged else v
    query: dict[str, str] = {}
    for k, v in parse_qsl(parts.query, keep_blank_values=True):
        query[k] = f"{query[k]},{v}" if k in query else v
    content_type = merged.get("content-type", "")
    textual = not body or any(content_type.startswith(t) for t in TEXT_TYPES)
    now = time.time()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.key,
        "rawPath": parts.path,
        "rawQueryString": parts.query,
        "headers": merged,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "emulated",
            "domainName": merged.get("host", "127.0.0.1"),
            "domainPrefix": merged.get("host", "127.0.0.1").split(".")[0],
            "http": {"method": method, "path": parts.path, "protocol": "HTTP/1.1", "sourceIp": source_ip,
                     "userAgent": merged.get("user-agent", "")},
            "requestId": str(uuid.uuid4()),
            "routeKey": route.key,
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": not textual,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if params:
        event["pathParameters"] = params
    if body:
        event["body"] = body.decode("utf-8", "replace") if textual else base64.b64encode(body).decode()
    return event


class Gateway:
    """A threaded HTTP server on 127.0.0.1 answering as the stack's HTTP API."""

    def __init__(self, routes: list[Route], names: dict[str, str], invoke: Callable[[str, bytes], tuple[int, bytes]],
                 port: int):
        self.routes = routes
        self.names = names  # logical id -> registered function name
        self.invoke = invoke
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt: str, *args: Any) -> None:  # the functions log each request
                pass

            def _any(self) -> None:
                gateway.answer(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _any

            def __getattr__(self, name: str) -> Any:
                # Any other method (TRACE, QUERY, ...) is matched like the rest: API Gateway
                # answers an unrouted one with its 404, never a 501 of its own.
                if name.startswith("do_"):
                    return self._any
                raise AttributeError(name)

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, name="gateway", daemon=True).start()
        log(f"HTTP API gateway on {self.url} ({len(self.routes)} routes, one function each)")

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    def answer(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("content-length") or 0)
        if length > MAX_BODY:
            return self.send(h, 413, {"content-type": "application/json"}, b'{"message":"Request Entity Too Large"}')
        body = h.rfile.read(length) if length else b""
        path = urlsplit(h.path).path
        found = match(self.routes, h.command, path)
        if not found:
            return self.send(h, 404, {"content-type": "application/json"}, b'{"message":"Not Found"}')
        route, params = found
        event = event_for(route, params, h.command, h.path, list(h.headers.items()), body, h.client_address[0])
        status, raw = self.invoke(self.names.get(route.function, route.function), json.dumps(event).encode())
        try:
            out = json.loads(raw) if status == 200 else None
        except ValueError:
            out = None
        if not isinstance(out, dict) or "errorType" in out or "statusCode" not in out:
            log(f"gateway: {route.key} -> {route.function} failed ({status}): {raw[:500]!r}")
            return self.send(h, 500, {"content-type": "application/json"}, b'{"message":"Internal Server Error"}')
        headers = {str(k).lower(): str(v) for k, v in (out.get("headers") or {}).items()}
        for k, vs in (out.get("multiValueHeaders") or {}).items():
            headers[str(k).lower()] = ",".join(str(v) for v in vs)
        payload = out.get("body") or ""
        data = base64.b64decode(payload) if out.get("isBase64Encoded") else str(payload).encode()
        self.send(h, int(out["statusCode"]), headers, data, out.get("cookies") or [])

    @staticmethod
    def send(h: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: bytes,
             cookies: list[str] | None = None) -> None:
        h.send_response(status)
        for k, v in headers.items():
            if k not in ("content-length", "connection", "transfer-encoding"):
                h.send_header(k, v)
        for c in cookies or []:
            h.send_header("set-cookie", c)
        h.send_header("content-length", str(len(body)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)
