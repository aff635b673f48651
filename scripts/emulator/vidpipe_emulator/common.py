"""What every part of the emulator shares: the emulated account and region, the log line format,
the error that ends startup with a message for a person, and waiting for something to listen."""

from __future__ import annotations

import platform
import socket
import sys
import time
import urllib.request
from pathlib import Path
from typing import Callable

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
PARTITION = "aws"
# This file is scripts/emulator/vidpipe_emulator/common.py: the repo is three folders up.
DEFAULT_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_FFMPEG_DIR = "layers/ffmpeg/build/x86_64/bin"
# The template points functions at the fonts layer (/opt/fonts); locally it is the layer build.
DEFAULT_FONTS_DIR = "layers/fonts/build/fonts"
# Likewise espeak-ng: the template names the layer's /opt/bin/espeak-ng; locally it is the layer
# build for this machine, so an emulated narration runs the very tree the layer ships.
DEFAULT_ESPEAK = f"layers/espeak/build/{'arm64' if platform.machine() in ('aarch64', 'arm64') else 'x86_64'}/bin/espeak-ng"

_t0 = time.monotonic()


def log(msg: str) -> None:
    print(f"[emulator {time.monotonic() - _t0:7.2f}s] {msg}", file=sys.stderr, flush=True)


class EmulatorError(Exception):
    """A startup failure with a message meant for a person."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, check: Callable[[], bool], timeout: float, interval: float = 0.2,
              alive: Callable[[], str | None] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if alive is not None:
            dead = alive()
            if dead:
                raise EmulatorError(f"{what}: {dead}")
        if time.monotonic() > deadline:
            raise EmulatorError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status < 500
    except Exception:  # noqa: BLE001
        return False
