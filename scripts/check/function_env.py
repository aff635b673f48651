#!/usr/bin/env python3
"""Prints the environment template.yaml gives one function for the given parameter values, as
JSON: the Globals' variables merged with the function's own, Conditions and `!If` resolved, and
`AWS::NoValue` dropped. Variables that name stack resources (table, bucket, ARNs) are left out:
they only exist once deployed.

The suite uses it to start each function's configuration, as a cold start would, for every
allowed value of the provider and planner parameters.

    .tools/venv/bin/python scripts/check/function_env.py GenerateFunction --param Provider=replicate
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts/emulator"))

from vidpipe_emulator.resolver import NO_VALUE, Resolver, Unresolved  # noqa: E402
from vidpipe_emulator.template import load_yaml  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("function")
    ap.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    args = ap.parse_args()
    params = dict(p.split("=", 1) for p in args.param)
    template = load_yaml(ROOT / "template.yaml")
    unknown = set(params) - set(template.get("Parameters") or {})
    if unknown:
        print(f"unknown parameters: {sorted(unknown)}", file=sys.stderr)
        return 2
    resolver = Resolver(template, "vidpipe", params)
    fn = template["Resources"][args.function]
    variables = dict(template["Globals"]["Function"]["Environment"]["Variables"])
    variables.update(((fn.get("Properties") or {}).get("Environment") or {}).get("Variables") or {})
    env = {}
    for name, value in variables.items():
        try:
            resolved = resolver.resolve(value)
        except Unresolved:
            continue
        if resolved is not NO_VALUE:
            env[name] = str(resolved)
    print(json.dumps(env, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
