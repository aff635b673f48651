#!/usr/bin/env python3
"""Entry point of the emulated-AWS harness (scripts/emulator/up runs this file); the harness itself
is the vidpipe_emulator package beside it, whose docstring says what it does."""

import sys

from vidpipe_emulator.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
