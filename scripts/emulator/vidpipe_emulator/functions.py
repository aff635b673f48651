"""The functions' side: the workspace's cargo bins, the --warm builds, and `cargo lambda watch`
with the process tree it leaves behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .common import EmulatorError, log, port_open, wait_for


def workspace_bins(root: Path) -> dict[str, str]:
    """bin name -> package name for every bin in the cargo workspace at root."""
    out = subprocess.run(["cargo", "metadata", "--no-deps", "--format-version", "1"], cwd=root,
                         capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise EmulatorError(f"cargo metadata failed in {root}: {out.stderr.strip()[-2000:]}")
    bins = {}
    for pkg in json.loads(out.stdout)["packages"]:
        for t in pkg["targets"]:
            if "bin" in t["kind"]:
                bins[t["name"]] = pkg["name"]
    return bins


def warm(root: Path, bins: list[str], env: dict[str, str], timeout: float,
         packages: dict[str, str] | None = None) -> None:
    """Compile what `cargo lambda watch` will run, the way it runs it (`cargo build --bin X` in the dev
    profile, same target dir). Bins of one package build in one cargo run (their features resolve
    alike, and their links run in parallel); packages one at a time, so each resolves as it will run."""
    deadline = time.monotonic() + timeout
    groups: dict[str, list[str]] = {}
    for b in bins:
        groups.setdefault((packages or {}).get(b, b), []).append(b)
    for package, group in groups.items():
        t = time.monotonic()
        log(f"warm: cargo build {' '.join('--bin ' + b for b in group)}")
        left = deadline - time.monotonic()
        if left <= 0:
            raise EmulatorError(f"--warm: out of time ({timeout:.0f}s) before building {package}")
        args = ["cargo", "build", "--manifest-path", "Cargo.toml"]
        for b in group:
            args += ["--bin", b]
        try:
            proc = subprocess.run(args, cwd=root, env=env, stdout=sys.stderr, stderr=sys.stderr, timeout=left,
                                  start_new_session=True)
        except subprocess.TimeoutExpired:
            raise EmulatorError(f"--warm: building {package} took longer than {timeout:.0f}s")
        if proc.returncode != 0:
            raise EmulatorError(f"--warm: cargo build of {', '.join(group)} failed (exit {proc.returncode})")
        log(f"warm: {len(group)} bin(s) of {package} built in {time.monotonic() - t:.1f}s")


class Watch:
    def __init__(self, root: Path, port: int, env: dict[str, str], timeout: float | None, reload: bool = False):
        self.reload = reload
        self.root = root
        self.port = port
        self.env = env
        self.timeout = timeout
        self.proc: subprocess.Popen | None = None

    def start(self, startup_timeout: float) -> None:
        cmd = ["cargo", "lambda", "watch", "--invoke-address", "127.0.0.1", "--invoke-port", str(self.port)]
        if self.timeout:
            cmd += ["--timeout", str(int(self.timeout))]
        if not self.reload:
            # Without this, any file change under the workspace (another engineer's edit, a file a
            # function writes) restarts the functions and kills in-flight invokes.
            cmd += ["--ignore-changes"]
        log("starting: " + " ".join(cmd) + f" (cwd {self.root})")
        self.proc = subprocess.Popen(cmd, cwd=self.root, env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=sys.stderr, stderr=sys.stderr, start_new_session=True)

        def alive() -> str | None:
            rc = self.proc.poll() if self.proc else None
            return None if rc is None else f"cargo lambda watch exited with {rc}"

        wait_for(f"cargo lambda watch on port {self.port}", lambda: port_open(self.port), startup_timeout, alive=alive)

    def stop(self) -> None:
        """Stop watch and everything under it. Watch starts each function's `cargo run` in a process
        group of its own, so the whole tree is collected first and each member signalled by pid."""
        if not self.proc:
            return
        tree = [self.proc.pid] + _descendants(self.proc.pid)
        groups = {self.proc.pid} | {_pgid(p) for p in tree[1:] if _pgid(p) not in (None, os.getpgid(0))}
        for g in groups:
            _signal_group(g, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(_alive(p) for p in tree):
            time.sleep(0.1)
        for g in groups:
            _signal_group(g, signal.SIGKILL)
        for p in tree:
            if _alive(p):
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            log("warning: cargo lambda watch did not exit")


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    return kids


def _descendants(pid: int) -> list[int]:
    kids = _children_map()
    out, todo = [], [pid]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
