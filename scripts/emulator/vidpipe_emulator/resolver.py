"""CloudFormation's intrinsic functions and Conditions, resolved against what provisioning has
created so far: Ref/GetAtt/Sub/Join/If/Select/Split/FindInMap and the rest, plus the references
that order resources."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from .common import ACCOUNT, PARTITION, REGION, EmulatorError, log


NO_VALUE = object()


class Unresolved(Exception):
    pass


def _placeholder(name: str, spec: dict) -> Any:
    if spec.get("AllowedValues"):
        return spec["AllowedValues"][0]
    if spec.get("Type") == "Number":
        return str(spec.get("MinValue", 0))
    if "https://" in str(spec.get("AllowedPattern", "")):
        return f"https://emulator.invalid/{name}"
    return f"emulated-{name}"


class Resolver:
    def __init__(self, template: dict, stack: str, params: dict[str, str]):
        self.t = template
        self.stack = stack
        self.params: dict[str, Any] = {}
        for name, spec in (template.get("Parameters") or {}).items():
            if name in params:
                v: Any = params[name]
            elif "Default" in spec:
                v = spec["Default"]
            else:
                v = _placeholder(name, spec)
                log(f"note: parameter {name} has no Default; using {v!r} (override with --param {name}=VALUE)")
            if spec.get("Type", "").startswith("List<") or spec.get("Type") == "CommaDelimitedList":
                v = [x.strip() for x in str(v).split(",")] if isinstance(v, str) else v
            self.params[name] = v
        self.pseudo = {
            "AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::StackName": stack,
            "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{stack}/00000000-0000-0000-0000-000000000000",
            "AWS::Partition": PARTITION, "AWS::URLSuffix": "amazonaws.com", "AWS::NotificationARNs": [],
        }
        self.refs: dict[str, Any] = {}          # logical id -> Ref value
        self.attrs: dict[str, dict[str, Any]] = {}  # logical id -> attributes
        self._conditions: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            expr = (self.t.get("Conditions") or {}).get(name)
            if expr is None:
                raise EmulatorError(f"unknown condition {name}")
            self._conditions[name] = bool(self.resolve(expr))
        return self._conditions[name]

    def ref(self, name: str) -> Any:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.params:
            return self.params[name]
        if name in self.refs:
            return self.refs[name]
        raise Unresolved(name)

    def getatt(self, logical: str, attr: str) -> Any:
        if logical in self.attrs and attr in self.attrs[logical]:
            return self.attrs[logical][attr]
        raise Unresolved(f"{logical}.{attr}")

    def sub(self, text: str, variables: dict) -> str:
        def repl(m: re.Match) -> str:
            inner = m.group(1)
            if inner.startswith("!"):
                return "${" + inner[1:] + "}"
            if inner in variables:
                v = variables[inner]
            elif "." in inner and inner.split(".", 1)[0] in self.attrs_or_resources():
                lid, attr = inner.split(".", 1)
                v = self.getatt(lid, attr)
            else:
                v = self.ref(inner)
            if isinstance(v, list):
                v = ",".join(map(str, v))
            return str(v)
        return re.sub(r"\$\{([^}]+)\}", repl, text)

    def attrs_or_resources(self) -> set[str]:
        return set((self.t.get("Resources") or {}).keys())

    def resolve(self, v: Any) -> Any:
        if isinstance(v, list):
            out = [self.resolve(x) for x in v]
            return [x for x in out if x is not NO_VALUE]
        if not isinstance(v, dict):
            return v
        if len(v) == 1:
            (k, a), = v.items()
            if k == "Ref":
                if a == "AWS::NoValue":
                    return NO_VALUE
                return self.ref(a)
            if k == "Fn::GetAtt":
                parts = a if isinstance(a, list) else a.split(".", 1)
                parts = [self.resolve(p) for p in parts]
                return self.getatt(parts[0], ".".join(parts[1:]))
            if k == "Fn::Sub":
                if isinstance(a, str):
                    return self.sub(a, {})
                text, variables = a
                return self.sub(text, {n: self.resolve(x) for n, x in variables.items()})
            if k == "Fn::Join":
                sep, items = a
                items = self.resolve(items)
                return sep.join(str(x) for x in items)
            if k == "Fn::If":
                cond, yes, no = a
                return self.resolve(yes if self.condition(cond) else no)
            if k == "Fn::Select":
                idx, items = a
                return self.resolve(items)[int(self.resolve(idx))]
            if k == "Fn::Split":
                sep, s = a
                return str(self.resolve(s)).split(sep)
            if k == "Fn::Equals":
                x, y = self.resolve(a)
                return str(x) == str(y)
            if k == "Fn::Not":
                return not self.resolve(a[0])
            if k == "Fn::And":
                return all(self.resolve(x) for x in a)
            if k == "Fn::Or":
                return any(self.resolve(x) for x in a)
            if k == "Condition":
                return self.condition(a)
            if k == "Fn::GetAZs":
                return [f"{REGION}a", f"{REGION}b", f"{REGION}c"]
            if k == "Fn::Base64":
                return base64.b64encode(str(self.resolve(a)).encode()).decode()
            if k == "Fn::FindInMap":
                m, k1, k2 = self.resolve(a)[:3]
                return self.t["Mappings"][m][k1][k2]
            if k == "Fn::ToJsonString":
                return json.dumps(self.resolve(a), separators=(",", ":"))
            if k == "Fn::Length":
                return len(self.resolve(a))
            if k == "Fn::ImportValue":
                raise EmulatorError(f"Fn::ImportValue {a!r} is not supported by the emulator")
        out = {}
        for key, x in v.items():
            r = self.resolve(x)
            if r is not NO_VALUE:
                out[key] = r
        return out


def references(v: Any, resources: set[str], acc: set[str] | None = None) -> set[str]:
    """Logical ids of resources that `v` refers to (Ref, GetAtt, Sub)."""
    acc = set() if acc is None else acc
    if isinstance(v, list):
        for x in v:
            references(x, resources, acc)
    elif isinstance(v, dict):
        for k, a in v.items():
            if k == "Ref" and isinstance(a, str) and a in resources:
                acc.add(a)
            elif k == "Fn::GetAtt":
                name = a[0] if isinstance(a, list) else str(a).split(".", 1)[0]
                if name in resources:
                    acc.add(name)
            elif k == "Fn::Sub":
                text = a if isinstance(a, str) else a[0]
                for m in re.finditer(r"\$\{([^}!][^}]*)\}", text):
                    name = m.group(1).split(".", 1)[0]
                    if name in resources:
                        acc.add(name)
                if not isinstance(a, str):
                    references(a[1], resources, acc)
            else:
                references(a, resources, acc)
    return acc
