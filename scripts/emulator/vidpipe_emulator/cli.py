"""The command line: flags, startup in order (moto, provisioning, functions), the one ready line
on stdout, and shutdown when asked, when stdin closes or when the parent dies."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any

from . import __doc__ as PACKAGE_DOC
from .common import (DEFAULT_ESPEAK, DEFAULT_FFMPEG_DIR, DEFAULT_FONTS_DIR, DEFAULT_ROOT, REGION, EmulatorError, free_port, http_ok, log, port_open,
                     wait_for)
from .functions import Watch, warm, workspace_bins
from .gateway import Gateway, routes_of
from .streams import StreamFeeder
from .websocket import WebSocketGateway
from .moto_patches import (TASK_DEFINITIONS, EcsRunner, Forwarder, SqsPoller, install_ecs_runner, install_forwarder,
                           install_s3_event_fields, install_s3_list_parts_root, serialized_dynamo_server)
from . import watermark
from .provision import Provisioner
from .resolver import Resolver, Unresolved
from .template import load_yaml, prepare_sam, sam_transform


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="scripts/emulator/up", description=PACKAGE_DOC.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="cargo workspace (default: the repo)")
    ap.add_argument("--template", type=Path, default=None, help="SAM template (default: ROOT/template.yaml)")
    ap.add_argument("--moto-port", type=int, default=0, help="0 = a free port (default)")
    ap.add_argument("--watch-port", type=int, default=0, help="0 = a free port (default)")
    ap.add_argument("--stack-name", default="vidpipe", help="AWS::StackName and generated-name prefix")
    ap.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="template parameter override")
    ap.add_argument("--warm", action="store_true", help="compile every function before reporting ready")
    ap.add_argument("--warm-timeout", type=float, default=1800)
    ap.add_argument("--no-watch", action="store_true", help="moto + provisioning only")
    ap.add_argument("--no-watermark", action="store_true",
                    help="do not seed the development watermark at the stack's WatermarkKey")
    ap.add_argument("--target-dir", type=Path, default=None,
                    help="CARGO_TARGET_DIR for watch and --warm (default: the caller's, else ROOT/target); "
                         "a private one avoids waiting on other builds' lock at the price of a full build")
    ap.add_argument("--watch-url", default=None,
                    help="forward invokes to a cargo lambda watch (or anything speaking its Invoke API) "
                         "that is already running, instead of starting one")
    ap.add_argument("--reload", action="store_true",
                    help="let cargo lambda watch rebuild and restart functions when sources change")
    ap.add_argument("--startup-timeout", type=float, default=60, help="seconds for moto and watch to listen")
    ap.add_argument("--invoke-timeout", type=float, default=900,
                    help="seconds a forwarded invoke may take (includes a first-invoke compile)")
    ap.add_argument("--stream-repeat", type=int, default=1, metavar="N",
                    help="deliver every DynamoDB stream batch N times (at-least-once delivery, for tests)")
    ap.add_argument("--stdin", choices=["auto", "watch", "ignore"], default="auto",
                    help="exit on stdin EOF: auto = unless stdin is /dev/null")
    return ap.parse_args(argv)


def stdin_is_devnull() -> bool:
    try:
        st, dn = os.fstat(0), os.stat(os.devnull)
        return (st.st_dev, st.st_ino) == (dn.st_dev, dn.st_ino) or (st.st_rdev == dn.st_rdev and st.st_rdev != 0)
    except OSError:
        return True


class Lifetime:
    """When the harness stops, and why: the first reason given is the one logged."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.why = ""

    def end(self, why: str) -> None:
        self.why = self.why or why
        self.stop.set()

    def watch(self, stdin_mode: str) -> None:
        """End on SIGTERM/SIGINT/SIGHUP, on the parent's death and, as --stdin says, on stdin EOF."""

        def on_signal(signum: int, _frame: Any) -> None:
            self.end(signal.Signals(signum).name)

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGHUP, on_signal)
        # A harness never outlives its parent: watch for reparenting, and for stdin EOF.
        parent = os.getppid()

        def watch_parent() -> None:
            while not self.stop.wait(1.0):
                if os.getppid() != parent:
                    self.end("parent exited")

        threading.Thread(target=watch_parent, daemon=True).start()
        if stdin_mode == "watch" or (stdin_mode == "auto" and not stdin_is_devnull()):
            threading.Thread(target=self._watch_stdin, daemon=True).start()

    def _watch_stdin(self) -> None:
        try:
            while sys.stdin.buffer.read1(65536) if hasattr(sys.stdin.buffer, "read1") else sys.stdin.buffer.read(1):
                pass
        except Exception:  # noqa: BLE001
            pass
        self.end("stdin closed")


class Endpoints:
    """Where moto and watch listen; with --watch-url, watch is someone else's and has no port of ours."""

    def __init__(self, args: argparse.Namespace):
        self.moto_port: int = args.moto_port or free_port()
        self.watch_port: int | None = None if (args.no_watch or args.watch_url) else (args.watch_port or free_port())
        self.moto_url = f"http://127.0.0.1:{self.moto_port}"
        self.watch_url: str | None = (args.watch_url.rstrip("/") if args.watch_url
                                      else (f"http://127.0.0.1:{self.watch_port}" if self.watch_port else None))


class Started:
    """What startup has launched so far: stopped on the way out, however far startup got."""

    def __init__(self) -> None:
        self.server: Any = None
        self.watch: Watch | None = None
        self.gateway: Gateway | None = None
        self.websocket: WebSocketGateway | None = None
        self.feeders: list[StreamFeeder] = []

    def stop(self) -> None:
        if self.gateway:
            self.gateway.stop()
        if self.websocket:
            self.websocket.stop()
        if self.watch:
            self.watch.stop()
        if self.server:
            try:
                self.server.stop()
            except Exception:  # noqa: BLE001
                pass


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    root = args.root.resolve()
    template_path = (args.template or root / "template.yaml").resolve()
    life = Lifetime()
    life.watch(args.stdin)
    ends = Endpoints(args)
    set_own_environment(ends.moto_port)
    started = Started()
    try:
        ready = start(args, root, template_path, ends, life, started)
        sys.stdout.write(json.dumps(ready, sort_keys=False) + "\n")
        sys.stdout.flush()
        return serve(life, started)
    except Exception as e:  # noqa: BLE001 - every startup failure ends in one JSON line
        return report_failure(e)
    finally:
        life.stop.set()
        started.stop()
        log("stopped")


def set_own_environment(moto_port: int) -> None:
    os.environ["MOTO_PORT"] = str(moto_port)  # moto's SFN executor calls back to localhost:$MOTO_PORT
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(k, "testing")
    os.environ.pop("AWS_ENDPOINT_URL", None)  # our own boto3 clients take explicit endpoints


def start(args: argparse.Namespace, root: Path, template_path: Path, ends: Endpoints, life: Lifetime,
          started: Started) -> dict:
    """Everything up to the ready line, which it returns: moto, the stack, the functions."""
    if not template_path.exists():
        raise EmulatorError(f"no template at {template_path}")
    forwarder = start_moto(args, ends, started)
    prov = provision(args, root, template_path, ends)
    outputs = template_outputs(prov.t, prov.r)
    fn_env = function_environment(prov.function_env, ends.moto_url)
    ws_api = prov.websocket_api()
    if ws_api and ends.watch_url:
        started.websocket = WebSocketGateway(ws_api, forwarder.invoke, free_port(), free_port())
        # The functions post to the stage's management API and the web app is told the socket's
        # URL: both point at the emulated gateway instead of execute-api.
        local = {f"https://{ws_api['id']}.execute-api.{REGION}.amazonaws.com/":
                 started.websocket.manage_url.rsplit("/", 1)[0] + "/",
                 f"wss://{ws_api['id']}.execute-api.{REGION}.amazonaws.com/":
                 started.websocket.url.rsplit("/", 1)[0] + "/"}
        fn_env = {k: _localize(v, local) for k, v in fn_env.items()}
        outputs = {k: _localize(v, local) if isinstance(v, str) else v for k, v in outputs.items()}
    if not args.no_watermark:
        bucket = fn_env.get("VIDPIPE_BUCKET")
        key = fn_env.get("VIDPIPE_WATERMARK_KEY")
        if bucket and key:
            watermark.seed(prov.client("s3"), bucket, key)
    bin_of = register_bins(prov, forwarder)
    urls = start_functions(args, root, ends, fn_env, bin_of, prov.esms, life.stop, started)
    routes = routes_of(load_yaml(template_path))
    if ends.watch_url and routes:
        started.gateway = Gateway(routes, dict(prov.function_names), forwarder.invoke, free_port())
        started.gateway.start()
    if ends.watch_url:
        for esm in prov.stream_esms:
            if esm["enabled"]:
                feeder = StreamFeeder(esm, ends.moto_url, forwarder.invoke, life.stop, args.stream_repeat)
                feeder.start()
                started.feeders.append(feeder)
                log(f"stream feeder: {esm['arn'].split('/')[1]} -> {esm['function']} (batch {esm['batch']}, "
                    f"window {esm['window']:g}s, {len(esm['filters'])} filter(s), repeat {args.stream_repeat})")
    if started.websocket:
        started.websocket.extra_stats = lambda: {"streams": [f.snapshot() for f in started.feeders]}
        started.websocket.start()
    ready = ready_line(prov, ends, fn_env, bin_of, urls, outputs, started.gateway)
    ready["websocket"] = started.websocket.url if started.websocket else None
    ready["websocket_management"] = started.websocket.manage_url if started.websocket else None
    ready["websocket_stats"] = started.websocket.stats_url if started.websocket else None
    return ready


def start_moto(args: argparse.Namespace, ends: Endpoints, started: Started) -> Forwarder:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server_class = serialized_dynamo_server()
    forwarder = Forwarder(ends.watch_url, args.invoke_timeout)
    install_forwarder(forwarder)
    install_s3_event_fields()
    install_s3_list_parts_root()
    if port_open(ends.moto_port):
        raise EmulatorError(f"port {ends.moto_port} is already in use")
    started.server = server_class(ip_address="127.0.0.1", port=ends.moto_port, verbose=False)
    started.server.start()
    wait_for("moto", lambda: http_ok(f"{ends.moto_url}/moto-api/"), args.startup_timeout)
    req = urllib.request.Request(f"{ends.moto_url}/moto-api/config", method="POST",
                                 data=json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode())
    urllib.request.urlopen(req, timeout=10).read()
    log(f"moto listening on {ends.moto_url} (execute_state_machine on)")
    return forwarder


def provision(args: argparse.Namespace, root: Path, template_path: Path, ends: Endpoints) -> Provisioner:
    raw = load_yaml(template_path)
    prepared, functions, notes = prepare_sam(raw, root, template_path.parent)
    for n in notes:
        log(f"note: {n}")
    translated = sam_transform(prepared)
    params = dict(p.split("=", 1) for p in args.param)
    resolver = Resolver(translated, args.stack_name, params)
    prov = Provisioner(translated, resolver, functions, ends.moto_url, args.stack_name,
                       with_esm=not args.no_watch, watch_url=ends.watch_url)
    prov.run()
    for lid, typ, phys in prov.created:
        log(f"created  {typ:38} {lid:34} {phys}")
    for lid, typ, why in prov.skipped:
        log(f"skipped  {typ:38} {lid:34} {why}")
    return prov


def _localize(value: str, prefixes: dict[str, str]) -> str:
    for remote, local in prefixes.items():
        if value.startswith(remote):
            return local + value[len(remote):]
    return value


def template_outputs(template: dict, resolver: Resolver) -> dict[str, Any]:
    """The template's Outputs, resolved; one that cannot be says why in its place."""
    outputs = {}
    for name, o in (template.get("Outputs") or {}).items():
        if o.get("Condition") and not resolver.condition(o["Condition"]):
            continue
        try:
            outputs[name] = resolver.resolve(o.get("Value"))
        except (Unresolved, EmulatorError) as e:
            outputs[name] = f"<unresolved: {e}>"
    return outputs


def function_environment(function_env: dict[str, dict[str, str]], moto_url: str) -> dict[str, str]:
    """The environment every function sees: watch applies one environment to all bins."""
    fn_env: dict[str, str] = {}
    for fname, env in function_env.items():
        for k, v in env.items():
            if k in fn_env and fn_env[k] != v:
                log(f"warning: env {k} differs between functions ({fn_env[k]!r} vs {v!r} in {fname}); "
                    "cargo lambda watch has one environment for all bins: the last wins")
            fn_env[k] = v
    fn_env.update({
        "AWS_ENDPOINT_URL": moto_url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION, "VIDPIPE_TRUST_TENANT_HEADER": "1",
        "VIDPIPE_FFMPEG_DIR": str(DEFAULT_ROOT / DEFAULT_FFMPEG_DIR),
        "VIDPIPE_FONTS_DIR": str(DEFAULT_ROOT / DEFAULT_FONTS_DIR),
    })
    if "VIDPIPE_ESPEAK" in fn_env:
        fn_env["VIDPIPE_ESPEAK"] = str(DEFAULT_ROOT / DEFAULT_ESPEAK)
    for k, v in os.environ.items():
        if k.startswith("VIDPIPE_"):
            fn_env[k] = v
    fn_env.pop("AWS_SESSION_TOKEN", None)
    return fn_env


def register_bins(prov: Provisioner, forwarder: Forwarder) -> dict[str, str]:
    """Registered function name -> cargo bin; the forwarder learns the names that differ from their bin."""
    for lid, name in prov.function_names.items():
        info = prov.functions.get(lid)
        if info and info.bin and info.bin != name:
            forwarder.bins[name] = info.bin
    return {name: forwarder.bins.get(name, name) for name in prov.function_names.values()}


def start_functions(args: argparse.Namespace, root: Path, ends: Endpoints, fn_env: dict[str, str],
                    bin_of: dict[str, str], esms: list[dict], stop: threading.Event, started: Started) -> dict[str, str]:
    """Watch (ours, unless --watch-url names one) and the SQS pollers; returns each bin's function URL."""
    if not ends.watch_url:
        return {}
    if ends.watch_port:
        start_watch(args, root, ends, fn_env, bin_of, started)
    urls = {b: f"{ends.watch_url}/lambda-url/{b}" for b in sorted(set(bin_of.values()))}
    if ends.watch_port:
        for u in urls.values():
            log(f"function URL: {u}/")
    for esm in esms:
        if esm["enabled"]:
            SqsPoller(esm, ends.moto_url, stop).start()
    return urls


def start_watch(args: argparse.Namespace, root: Path, ends: Endpoints, fn_env: dict[str, str],
                bin_of: dict[str, str], started: Started) -> None:
    """Our own cargo lambda watch, after the ECS runner is installed and, with --warm, every bin is built."""
    available = workspace_bins(root)
    missing = sorted(b for b in bin_of.values() if b not in available)
    for n in missing:
        log(f"warning: function {n} is in the template but no workspace bin has that name; its invokes will fail")
    proc_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "MOTO_PORT"}
    proc_env.update(fn_env)
    if args.target_dir:
        proc_env["CARGO_TARGET_DIR"] = str(args.target_dir.resolve())
    log(f"cargo target dir: {proc_env.get('CARGO_TARGET_DIR', str(root / 'target'))}")
    target_dir = Path(proc_env.get("CARGO_TARGET_DIR", str(root / "target")))
    runner_env = {k: v for k, v in fn_env.items() if k != "CARGO_TARGET_DIR"}
    install_ecs_runner(EcsRunner(target_dir, runner_env, args.invoke_timeout))
    if args.warm:
        # Fargate task entry points are workspace bins too, built and run from the same target.
        task_bins = {c["entry_point"][0] for td in TASK_DEFINITIONS.values()
                     for c in td["containers"].values() if c["entry_point"]}
        warm(root, sorted({b for b in bin_of.values() if b in available} | (task_bins & set(available))),
             proc_env, args.warm_timeout, available)
    started.watch = Watch(root, ends.watch_port, proc_env, args.invoke_timeout, reload=args.reload)  # type: ignore[arg-type]
    started.watch.start(args.startup_timeout)
    log(f"cargo lambda watch listening on {ends.watch_url}")


def ready_line(prov: Provisioner, ends: Endpoints, fn_env: dict[str, str], bin_of: dict[str, str],
               urls: dict[str, str], outputs: dict[str, Any], gateway: Gateway | None = None) -> dict:
    api_fn = _api_function(prov.t, prov)
    # The HTTP API as callers reach it: the gateway, one function per route; failing that (a
    # template without HttpApi routes), the API function's URL.
    if gateway:
        api = gateway.url
    elif watch_url := ends.watch_url:
        api = f"{watch_url}/lambda-url/{bin_of.get(api_fn, api_fn)}" if api_fn else None
    else:
        api = None
    buckets = {lid: phys for lid, typ, phys in prov.created if typ == "AWS::S3::Bucket"}
    tables = {lid: phys for lid, typ, phys in prov.created if typ == "AWS::DynamoDB::Table"}
    watch_url = ends.watch_url
    return {
        "ready": True,
        "moto": ends.moto_url,
        "watch": watch_url,
        "api": api,
        "bucket": fn_env.get("VIDPIPE_BUCKET") or next(iter(buckets.values()), None),
        "table": fn_env.get("VIDPIPE_TABLE") or next(iter(tables.values()), None),
        "buckets": buckets,
        "tables": tables,
        "state_machines": prov.state_machines,
        "queues": {lid: phys for lid, typ, phys in prov.created if typ == "AWS::SQS::Queue"},
        "topics": {lid: phys for lid, typ, phys in prov.created if typ == "AWS::SNS::Topic"},
        "functions": dict(prov.function_names),
        "bins": bin_of,
        "urls": urls,
        "outputs": outputs,
        "region": REGION,
        "env": fn_env,
        "created": len(prov.created),
        "skipped": {lid: why for lid, _t, why in prov.skipped},
        "pid": os.getpid(),
    }


def serve(life: Lifetime, started: Started) -> int:
    """After the ready line: wait for a reason to stop. Exit 1 if it was watch dying under us."""
    log("ready; stop with SIGTERM/SIGINT or by closing stdin")
    watch = started.watch
    while not life.stop.wait(0.5):
        if watch and watch.proc and watch.proc.poll() is not None:
            life.why = f"cargo lambda watch exited with {watch.proc.returncode}"
            life.stop.set()
    log(f"stopping ({life.why})")
    return 0 if not life.why.startswith("cargo lambda watch exited") else 1


def report_failure(e: Exception) -> int:
    """The ready line of a failed startup; anything but an EmulatorError is a bug, so its traceback is logged."""
    if not isinstance(e, EmulatorError):
        import traceback
        traceback.print_exc(file=sys.stderr)
        e = EmulatorError(f"{type(e).__name__}: {e}")
    log(f"error: {e}")
    sys.stdout.write(json.dumps({"ready": False, "error": str(e)}) + "\n")
    sys.stdout.flush()
    return 2


def _api_function(template: dict, prov: Provisioner) -> str | None:
    names = prov.function_names
    if "vidpipe-api" in names.values():
        return "vidpipe-api"
    for lid, res in (template.get("Resources") or {}).items():
        if res.get("Type") == "AWS::Lambda::Url":
            target = json.dumps(res.get("Properties", {}).get("TargetFunctionArn"))
            for flid, name in names.items():
                if f'"{flid}"' in target:
                    return name
    for lid, res in (template.get("Resources") or {}).items():
        if res.get("Type") == "AWS::Lambda::Permission" and "apigateway" in json.dumps(res.get("Properties", {})):
            target = json.dumps(res["Properties"].get("FunctionName"))
            for flid, name in names.items():
                if f'"{flid}"' in target:
                    return name
    return None
