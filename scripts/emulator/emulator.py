#!/usr/bin/env python3
"""vidpipe emulated-AWS harness: moto + cargo lambda watch, provisioned from template.yaml.

One process that:
  1. starts a moto server in-process with Step Functions execution switched on;
  2. forwards every Lambda invoke moto makes (API invoke, Step Functions tasks, S3 notifications,
     SQS event source mappings) to `cargo lambda watch`'s Invoke API;
  3. provisions the stack from the SAM template (expanded offline with aws-sam-translator), creating
     each resource through its own service API so every property that matters is kept;
  4. starts `cargo lambda watch` with the functions' resolved environment;
  5. prints one JSON line {"ready": true, ...} on stdout, then runs until SIGTERM/SIGINT, stdin EOF
     or the death of its parent, and stops everything it started.

Logs go to stderr. See README.md beside this file.
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import io
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any, Callable

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
PARTITION = "aws"
SCRIPT_DIR = Path(__file__).resolve().parent
DEFAULT_ROOT = SCRIPT_DIR.parent.parent
DEFAULT_FFMPEG_DIR = "layers/ffmpeg/build/x86_64/bin"

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


# --------------------------------------------------------------------------------------------
# Template loading
# --------------------------------------------------------------------------------------------

def load_yaml(path: Path) -> dict:
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def construct(loader: yaml.Loader, suffix: str, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        if suffix == "Ref":
            return {"Ref": value}
        if suffix == "Condition":
            return {"Condition": value}
        if suffix == "GetAtt" and isinstance(value, str):
            return {"Fn::GetAtt": value.split(".", 1)}
        return {f"Fn::{suffix}": value}

    Loader.add_multi_constructor("!", construct)
    # CloudFormation keeps timestamps-looking strings (e.g. AWSTemplateFormatVersion) as strings.
    Loader.yaml_implicit_resolvers = {
        k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
        for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    with open(path) as f:
        return yaml.load(f, Loader=Loader)


def cargo_bins(manifest: Path) -> list[str]:
    """The bin targets of the package whose Cargo.toml is `manifest` (explicit [[bin]] or default)."""
    data = tomllib.loads(manifest.read_text())
    bins = [b["name"] for b in data.get("bin", []) if "name" in b]
    pkg = data.get("package", {}).get("name")
    if not bins and pkg and (manifest.parent / "src" / "main.rs").exists():
        bins = [pkg]
    return bins


class FunctionInfo:
    def __init__(self, logical: str, bin_name: str | None, code_uri: str | None, package: str | None):
        self.logical = logical
        self.bin = bin_name
        self.code_uri = code_uri
        self.package = package


def prepare_sam(template: dict, root: Path, template_dir: Path) -> tuple[dict, dict[str, FunctionInfo], list[str]]:
    """Rewrite local paths the SAM translator cannot take, remembering what they meant.

    Returns the template ready for `transform`, per-function build info (bin name), and notes.
    """
    notes: list[str] = []
    t = copy.deepcopy(template)
    glob_fn = (t.get("Globals") or {}).get("Function") or {}
    functions: dict[str, FunctionInfo] = {}
    for logical, res in (t.get("Resources") or {}).items():
        typ = res.get("Type")
        props = res.setdefault("Properties", {}) if typ and typ.startswith("AWS::Serverless::") else res.get("Properties", {})
        if typ == "AWS::Serverless::Function":
            code_uri = props.get("CodeUri", glob_fn.get("CodeUri"))
            meta = res.get("Metadata") or {}
            bin_name = (meta.get("BuildProperties") or {}).get("Binary")
            package = None
            if isinstance(code_uri, str) and not code_uri.startswith("s3://"):
                manifest = (template_dir / code_uri / "Cargo.toml").resolve()
                if manifest.exists():
                    data = tomllib.loads(manifest.read_text())
                    package = data.get("package", {}).get("name")
                    bins = cargo_bins(manifest) if package else []
                    if not bin_name and len(bins) == 1:
                        bin_name = bins[0]
                    elif not bin_name:
                        notes.append(f"{logical}: {manifest} has bins {bins}; set Metadata.BuildProperties.Binary")
                else:
                    notes.append(f"{logical}: no Cargo.toml at {template_dir / code_uri} (function not written yet?)")
            if code_uri is None or (isinstance(code_uri, str) and not code_uri.startswith("s3://")):
                props["CodeUri"] = f"s3://vidpipe-emulator-code/{logical}.zip"
            if not bin_name and isinstance(props.get("FunctionName"), str):
                bin_name = props["FunctionName"]
            if not bin_name:
                bin_name = logical
                notes.append(f"{logical}: bin name unknown, registering the function as {logical!r}")
            functions[logical] = FunctionInfo(logical, bin_name, code_uri if isinstance(code_uri, str) else None, package)
        elif typ == "AWS::Serverless::LayerVersion":
            if isinstance(props.get("ContentUri"), str) and not props["ContentUri"].startswith("s3://"):
                props["ContentUri"] = f"s3://vidpipe-emulator-code/{logical}.zip"
        elif typ == "AWS::Serverless::StateMachine":
            uri = props.get("DefinitionUri")
            if isinstance(uri, str) and not uri.startswith("s3://"):
                path = (template_dir / uri).resolve()
                if not path.exists():
                    raise EmulatorError(f"{logical}: DefinitionUri {path} does not exist")
                text = path.read_text()
                try:
                    props["Definition"] = json.loads(text)
                except json.JSONDecodeError:
                    import yaml
                    props["Definition"] = yaml.safe_load(text)
                del props["DefinitionUri"]
        elif typ == "AWS::Serverless::Api" or typ == "AWS::Serverless::HttpApi":
            for key in ("DefinitionUri",):
                if isinstance(props.get(key), str) and not props[key].startswith("s3://"):
                    notes.append(f"{logical}: {key} dropped (API Gateway is not emulated)")
                    del props[key]
    return t, functions, notes


def sam_transform(template: dict) -> dict:
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    if not template.get("Transform"):
        return template
    from samtranslator.translator.transform import transform

    class NoPolicies:
        def load(self) -> dict[str, str]:
            return {}

    return transform(template, {}, NoPolicies())


# --------------------------------------------------------------------------------------------
# Intrinsic function resolver
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# Provisioning
# --------------------------------------------------------------------------------------------

def dummy_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("bootstrap", "#!/bin/sh\necho 'served by cargo lambda watch'\n")
    return buf.getvalue()


# Properties whose references are applied after every resource exists (they may close a cycle
# CloudFormation itself breaks with DependsOn/literal names).
DEFERRED_PROPS = {"AWS::S3::Bucket": ["NotificationConfiguration"]}

# Resources whose creation failing must stop the harness.
REQUIRED = {"AWS::S3::Bucket", "AWS::DynamoDB::Table", "AWS::SQS::Queue", "AWS::Lambda::Function",
            "AWS::StepFunctions::StateMachine", "AWS::IAM::Role", "AWS::SNS::Topic"}


class Provisioner:
    def __init__(self, template: dict, resolver: Resolver, functions: dict[str, FunctionInfo],
                 endpoint: str, stack: str, with_esm: bool, watch_url: str | None):
        import boto3
        from botocore.config import Config
        self.t = template
        self.r = resolver
        self.functions = functions
        self.stack = stack
        self.with_esm = with_esm
        self.watch_url = watch_url
        cfg = Config(region_name=REGION, retries={"max_attempts": 2}, connect_timeout=5, read_timeout=60,
                     s3={"addressing_style": "path"})
        session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                        region_name=REGION)
        self.client = lambda svc: session.client(svc, endpoint_url=endpoint, config=cfg)
        self.created: list[tuple[str, str, str]] = []   # (logical, type, physical)
        self.skipped: list[tuple[str, str, str]] = []   # (logical, type, why)
        self.deferred: list[Callable[[], None]] = []
        self.esms: list[dict] = []                       # SQS event source mappings we poll ourselves
        self.state_machines: dict[str, str] = {}
        self.function_env: dict[str, dict[str, str]] = {}
        self.function_names: dict[str, str] = {}
        self._zip = dummy_zip()

    # -- naming ---------------------------------------------------------------------------
    def gen_name(self, logical: str, maxlen: int = 64, lower: bool = False) -> str:
        name = f"{self.stack}-{logical}"
        if len(name) > maxlen:
            h = hashlib.sha1(name.encode()).hexdigest()[:8]
            name = name[: maxlen - 9] + "-" + h
        return name.lower() if lower else name

    # -- ordering --------------------------------------------------------------------------
    def order(self, resources: dict) -> list[str]:
        names = set(resources)
        deps: dict[str, set[str]] = {}
        for lid, res in resources.items():
            props = dict(res.get("Properties") or {})
            for p in DEFERRED_PROPS.get(res.get("Type"), []):
                props.pop(p, None)
            d = references(props, names)
            dep_on = res.get("DependsOn") or []
            d |= set([dep_on] if isinstance(dep_on, str) else dep_on)
            deps[lid] = (d & names) - {lid}
        ordered: list[str] = []
        done: set[str] = set()
        while len(ordered) < len(resources):
            ready = sorted(l for l in resources if l not in done and deps[l] <= done)
            if not ready:
                left = {l: sorted(deps[l] - done) for l in resources if l not in done}
                raise EmulatorError(f"dependency cycle among resources: {left}")
            for l in ready:
                ordered.append(l)
                done.add(l)
        return ordered

    # -- main loop -------------------------------------------------------------------------
    def run(self) -> None:
        resources = self.t.get("Resources") or {}
        for lid in self.order(resources):
            res = resources[lid]
            typ = res.get("Type", "")
            cond = res.get("Condition")
            if cond and not self.r.condition(cond):
                self.skipped.append((lid, typ, f"condition {cond} is false"))
                continue
            handler = getattr(self, "h_" + typ.replace("::", "_").replace("AWS_", "", 1), None)
            raw_props = res.get("Properties") or {}
            deferred = {p: raw_props[p] for p in DEFERRED_PROPS.get(typ, []) if p in raw_props}
            try:
                props = self.r.resolve({k: v for k, v in raw_props.items() if k not in deferred})
            except Unresolved as e:
                raise EmulatorError(f"{lid} ({typ}): cannot resolve {e} (is it a skipped resource's attribute?)")
            if handler is None:
                self.synth(lid, typ, props)
                self.skipped.append((lid, typ, "not emulated"))
                continue
            try:
                physical = handler(lid, props, deferred)
            except EmulatorError:
                raise
            except Exception as e:  # noqa: BLE001 - surfaced as a note or a hard error below
                if typ in REQUIRED:
                    raise EmulatorError(f"creating {lid} ({typ}) failed: {e}") from e
                self.synth(lid, typ, props)
                self.skipped.append((lid, typ, f"creation failed in moto: {e}"))
                continue
            if physical is None:
                continue
            self.created.append((lid, typ, physical))
        for fn in self.deferred:
            fn()

    def synth(self, lid: str, typ: str, props: dict) -> None:
        """Placeholder Ref/attributes for a resource that is not created, so others still resolve."""
        service = typ.split("::")[1].lower() if "::" in typ else "emulator"
        arn = f"arn:aws:{service}:{REGION}:{ACCOUNT}:{lid}"
        self.r.refs[lid] = props.get("Name") or self.gen_name(lid)
        self.r.attrs[lid] = _AnyAttr(arn, lid)

    # -- handlers --------------------------------------------------------------------------
    def h_S3_Bucket(self, lid: str, p: dict, deferred: dict) -> str:
        s3 = self.client("s3")
        name = p.get("BucketName") or self.gen_name(lid, 63, lower=True)
        s3.create_bucket(Bucket=name)
        if "BucketEncryption" in p:
            rules = [{("ApplyServerSideEncryptionByDefault" if k == "ServerSideEncryptionByDefault" else k): v
                      for k, v in rule.items()} for rule in p["BucketEncryption"]["ServerSideEncryptionConfiguration"]]
            s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
        if "PublicAccessBlockConfiguration" in p:
            s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=p["PublicAccessBlockConfiguration"])
        if "VersioningConfiguration" in p:
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": p["VersioningConfiguration"]["Status"]})
        if "LifecycleConfiguration" in p:
            rules = [lifecycle_rule(r) for r in p["LifecycleConfiguration"]["Rules"]]
            s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": rules})
        if "CorsConfiguration" in p:
            ren = {"ExposedHeaders": "ExposeHeaders", "MaxAge": "MaxAgeSeconds", "Id": "ID"}
            rules = [{ren.get(k, k): v for k, v in rule.items()} for rule in p["CorsConfiguration"]["CorsRules"]]
            s3.put_bucket_cors(Bucket=name, CORSConfiguration={"CORSRules": rules})
        if "OwnershipControls" in p:
            s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls=p["OwnershipControls"])
        if "Tags" in p:
            s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": p["Tags"]})
        self.r.refs[lid] = name
        self.r.attrs[lid] = {"Arn": f"arn:aws:s3:::{name}", "DomainName": f"{name}.s3.amazonaws.com",
                             "RegionalDomainName": f"{name}.s3.{REGION}.amazonaws.com",
                             "WebsiteURL": f"http://{name}.s3-website-{REGION}.amazonaws.com"}
        if "NotificationConfiguration" in deferred:
            self.deferred.append(lambda: self.bucket_notifications(lid, name, deferred["NotificationConfiguration"]))
        return name

    def bucket_notifications(self, lid: str, bucket: str, raw: dict) -> None:
        nc = self.r.resolve(raw)
        out: dict[str, Any] = {}

        def filt(c: dict) -> dict:
            f = c.get("Filter")
            if not f:
                return {}
            rules = f.get("S3Key", {}).get("Rules", [])
            return {"Filter": {"Key": {"FilterRules": [{"Name": r["Name"], "Value": r["Value"]} for r in rules]}}}

        for src, dst, arn_key in (("QueueConfigurations", "QueueConfigurations", "Queue"),
                                  ("TopicConfigurations", "TopicConfigurations", "Topic"),
                                  ("LambdaConfigurations", "LambdaFunctionConfigurations", "Function")):
            items = []
            for c in nc.get(src, []):
                item = {f"{arn_key}Arn" if arn_key != "Function" else "LambdaFunctionArn": c[arn_key],
                        "Events": [c["Event"]]}
                item.update(filt(c))
                items.append(item)
            if items:
                out[dst] = items
        if nc.get("EventBridgeConfiguration") is not None:
            out["EventBridgeConfiguration"] = {}
        self.client("s3").put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=out)
        self.created.append((f"{lid}.NotificationConfiguration", "AWS::S3::Bucket(notifications)",
                             ", ".join(f"{k}x{len(v)}" for k, v in out.items() if isinstance(v, list)) or "EventBridge"))

    def h_S3_BucketPolicy(self, lid: str, p: dict, _d: dict) -> str:
        doc = dict(p["PolicyDocument"])
        statements = doc.get("Statement") or []
        if isinstance(statements, dict):
            statements = [statements]

        def tls_only(st: dict) -> bool:
            cond = json.dumps(st.get("Condition") or {})
            return st.get("Effect") == "Deny" and "aws:SecureTransport" in cond

        kept = [st for st in statements if not tls_only(st)]
        if len(kept) != len(statements):
            # moto enforces bucket policies but serves plain HTTP, so a TLS-only deny would
            # refuse every request; everything else in the policy is kept.
            log(f"note: {lid}: dropped the aws:SecureTransport deny (the emulator speaks plain HTTP)")
        if not kept:
            return p["Bucket"]
        doc["Statement"] = kept
        self.client("s3").put_bucket_policy(Bucket=p["Bucket"], Policy=json.dumps(doc))
        self.r.refs[lid] = p["Bucket"]
        self.r.attrs[lid] = {}
        return p["Bucket"]

    def h_DynamoDB_Table(self, lid: str, p: dict, _d: dict) -> str:
        ddb = self.client("dynamodb")
        name = p.get("TableName") or self.gen_name(lid, 255)
        kw: dict[str, Any] = {"TableName": name, "KeySchema": p["KeySchema"],
                              "AttributeDefinitions": p["AttributeDefinitions"],
                              "BillingMode": p.get("BillingMode", "PROVISIONED")}
        if kw["BillingMode"] == "PROVISIONED":
            kw["ProvisionedThroughput"] = _throughput(p.get("ProvisionedThroughput"))
        for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if key in p:
                idx = copy.deepcopy(p[key])
                for i in idx:
                    if kw["BillingMode"] == "PROVISIONED" and key == "GlobalSecondaryIndexes":
                        i["ProvisionedThroughput"] = _throughput(i.get("ProvisionedThroughput"))
                    else:
                        i.pop("ProvisionedThroughput", None)
                    i.pop("ContributorInsightsSpecification", None)
                kw[key] = idx
        if "StreamSpecification" in p:
            kw["StreamSpecification"] = {"StreamEnabled": True, **p["StreamSpecification"]}
        if "SSESpecification" in p:
            sse = dict(p["SSESpecification"])
            sse["Enabled"] = bool(sse.pop("SSEEnabled", True))
            kw["SSESpecification"] = sse
        if "Tags" in p:
            kw["Tags"] = p["Tags"]
        if "DeletionProtectionEnabled" in p:
            kw["DeletionProtectionEnabled"] = bool(p["DeletionProtectionEnabled"])
        desc = ddb.create_table(**kw)["TableDescription"]
        if "TimeToLiveSpecification" in p:
            ttl = p["TimeToLiveSpecification"]
            ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={
                "Enabled": bool(ttl.get("Enabled", True)), "AttributeName": ttl["AttributeName"]})
        pitr = p.get("PointInTimeRecoverySpecification")
        if pitr:
            ddb.update_continuous_backups(TableName=name, PointInTimeRecoverySpecification={
                "PointInTimeRecoveryEnabled": bool(pitr.get("PointInTimeRecoveryEnabled"))})
        self.r.refs[lid] = name
        self.r.attrs[lid] = {"Arn": desc["TableArn"], "StreamArn": desc.get("LatestStreamArn", "")}
        return name

    def h_SQS_Queue(self, lid: str, p: dict, _d: dict) -> str:
        sqs = self.client("sqs")
        fifo = str(p.get("FifoQueue", "")).lower() == "true"
        name = p.get("QueueName") or (self.gen_name(lid, 75) + (".fifo" if fifo else ""))
        attrs = {}
        for k, v in p.items():
            if k in ("QueueName", "Tags"):
                continue
            if k == "RedrivePolicy" or k == "RedriveAllowPolicy":
                v = json.dumps(v) if isinstance(v, dict) else v
            elif isinstance(v, bool):
                v = str(v).lower()
            attrs[k] = str(v)
        kw: dict[str, Any] = {"QueueName": name, "Attributes": attrs}
        if "Tags" in p:
            kw["tags"] = {t["Key"]: t["Value"] for t in p["Tags"]}
        url = sqs.create_queue(**kw)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.r.refs[lid] = url
        self.r.attrs[lid] = {"Arn": arn, "QueueName": name, "QueueUrl": url}
        return url

    def h_SQS_QueuePolicy(self, lid: str, p: dict, _d: dict) -> str:
        sqs = self.client("sqs")
        for url in p["Queues"]:
            sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(p["PolicyDocument"])})
        self.r.refs[lid] = lid
        self.r.attrs[lid] = {}
        return ",".join(p["Queues"])

    def h_SNS_Topic(self, lid: str, p: dict, _d: dict) -> str:
        sns = self.client("sns")
        fifo = str(p.get("FifoTopic", "")).lower() == "true"
        name = p.get("TopicName") or (self.gen_name(lid, 256) + (".fifo" if fifo else ""))
        attrs = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in p.items()
                 if k in ("DisplayName", "KmsMasterKeyId", "FifoTopic", "ContentBasedDeduplication")}
        arn = sns.create_topic(Name=name, Attributes=attrs)["TopicArn"]
        for s in p.get("Subscription", []):
            sns.subscribe(TopicArn=arn, Protocol=s["Protocol"], Endpoint=s["Endpoint"])
        self.r.refs[lid] = arn
        self.r.attrs[lid] = {"TopicArn": arn, "TopicName": name}
        return arn

    def h_SNS_Subscription(self, lid: str, p: dict, _d: dict) -> str:
        attrs = {}
        for k in ("FilterPolicy", "RedrivePolicy"):
            if k in p:
                attrs[k] = json.dumps(p[k]) if not isinstance(p[k], str) else p[k]
        if "RawMessageDelivery" in p:
            attrs["RawMessageDelivery"] = str(p["RawMessageDelivery"]).lower()
        arn = self.client("sns").subscribe(TopicArn=p["TopicArn"], Protocol=p["Protocol"],
                                          Endpoint=p["Endpoint"], Attributes=attrs)["SubscriptionArn"]
        self.r.refs[lid] = arn
        self.r.attrs[lid] = {"Arn": arn}
        return arn

    def h_SNS_TopicPolicy(self, lid: str, p: dict, _d: dict) -> str:
        for arn in p["Topics"]:
            self.client("sns").set_topic_attributes(TopicArn=arn, AttributeName="Policy",
                                                    AttributeValue=json.dumps(p["PolicyDocument"]))
        self.r.refs[lid] = lid
        self.r.attrs[lid] = {}
        return ",".join(p["Topics"])

    def h_IAM_Role(self, lid: str, p: dict, _d: dict) -> str:
        iam = self.client("iam")
        name = p.get("RoleName") or self.gen_name(lid, 64)
        kw: dict[str, Any] = {"RoleName": name, "AssumeRolePolicyDocument": json.dumps(p.get("AssumeRolePolicyDocument", {}))}
        if "Path" in p:
            kw["Path"] = p["Path"]
        if "Tags" in p:
            kw["Tags"] = p["Tags"]
        role = iam.create_role(**kw)["Role"]
        for pol in p.get("Policies", []):
            iam.put_role_policy(RoleName=name, PolicyName=pol["PolicyName"], PolicyDocument=_policy(pol["PolicyDocument"]))
        for arn in p.get("ManagedPolicyArns", []):
            if arn.startswith("arn:aws:iam::aws:policy/"):
                continue  # AWS managed policies are not loaded in moto (and IAM is not enforced anyway)
            iam.attach_role_policy(RoleName=name, PolicyArn=arn)
        self.r.refs[lid] = name
        self.r.attrs[lid] = {"Arn": role["Arn"], "RoleId": role["RoleId"]}
        return name

    def h_IAM_Policy(self, lid: str, p: dict, _d: dict) -> str:
        iam = self.client("iam")
        for role in p.get("Roles", []):
            iam.put_role_policy(RoleName=role, PolicyName=p["PolicyName"], PolicyDocument=_policy(p["PolicyDocument"]))
        self.r.refs[lid] = p["PolicyName"]
        self.r.attrs[lid] = {}
        return p["PolicyName"]

    def h_IAM_ManagedPolicy(self, lid: str, p: dict, _d: dict) -> str:
        iam = self.client("iam")
        name = p.get("ManagedPolicyName") or self.gen_name(lid, 128)
        arn = iam.create_policy(PolicyName=name, PolicyDocument=_policy(p["PolicyDocument"]))["Policy"]["Arn"]
        for role in p.get("Roles", []):
            iam.attach_role_policy(RoleName=role, PolicyArn=arn)
        self.r.refs[lid] = arn
        self.r.attrs[lid] = {"PolicyArn": arn}
        return arn

    def h_Logs_LogGroup(self, lid: str, p: dict, _d: dict) -> str:
        logs = self.client("logs")
        name = p.get("LogGroupName") or self.gen_name(lid, 512)
        logs.create_log_group(logGroupName=name)
        if "RetentionInDays" in p:
            logs.put_retention_policy(logGroupName=name, retentionInDays=int(p["RetentionInDays"]))
        self.r.refs[lid] = name
        self.r.attrs[lid] = {"Arn": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}:*"}
        return name

    def h_Lambda_LayerVersion(self, lid: str, p: dict, _d: dict) -> str:
        name = p.get("LayerName") or self.gen_name(lid, 140)
        kw: dict[str, Any] = {"LayerName": name, "Content": {"ZipFile": self._zip}}
        if "CompatibleRuntimes" in p:
            kw["CompatibleRuntimes"] = p["CompatibleRuntimes"]
        if "CompatibleArchitectures" in p:
            kw["CompatibleArchitectures"] = p["CompatibleArchitectures"]
        arn = self.client("lambda").publish_layer_version(**kw)["LayerVersionArn"]
        self.r.refs[lid] = arn
        self.r.attrs[lid] = {"LayerVersionArn": arn}
        return arn

    def h_Lambda_Function(self, lid: str, p: dict, _d: dict) -> str:
        info = self.functions.get(lid)
        name = p.get("FunctionName") or (info.bin if info else None) or self.gen_name(lid, 64)
        env = {k: str(v) for k, v in ((p.get("Environment") or {}).get("Variables") or {}).items()}
        kw: dict[str, Any] = {
            "FunctionName": name, "Role": p["Role"], "Code": {"ZipFile": self._zip},
            "Runtime": p.get("Runtime", "provided.al2023"), "Handler": p.get("Handler", "bootstrap"),
            "Timeout": int(p.get("Timeout", 3)), "MemorySize": int(p.get("MemorySize", 128)),
            "Environment": {"Variables": env},
        }
        for key in ("Architectures", "Layers", "Description", "TracingConfig", "EphemeralStorage", "LoggingConfig"):
            if key in p:
                kw[key] = p[key]
        if "Tags" in p:
            kw["Tags"] = {t["Key"]: t["Value"] for t in p["Tags"]}
        arn = self.client("lambda").create_function(**kw)["FunctionArn"]
        self.function_env[name] = env
        self.function_names[lid] = name
        self.r.refs[lid] = name
        self.r.attrs[lid] = {"Arn": arn}
        return name

    def h_Lambda_Version(self, lid: str, p: dict, _d: dict) -> str:
        v = self.client("lambda").publish_version(FunctionName=p["FunctionName"])
        self.r.refs[lid] = v["FunctionArn"]
        self.r.attrs[lid] = {"Version": v["Version"], "FunctionArn": v["FunctionArn"]}
        return v["FunctionArn"]

    def h_Lambda_Alias(self, lid: str, p: dict, _d: dict) -> str:
        a = self.client("lambda").create_alias(FunctionName=p["FunctionName"], Name=p["Name"],
                                               FunctionVersion=str(p["FunctionVersion"]))
        self.r.refs[lid] = a["AliasArn"]
        self.r.attrs[lid] = {"AliasArn": a["AliasArn"]}
        return a["AliasArn"]

    def h_Lambda_Permission(self, lid: str, p: dict, _d: dict) -> str:
        kw = {"FunctionName": p["FunctionName"], "StatementId": lid, "Action": p["Action"], "Principal": p["Principal"]}
        for key in ("SourceArn", "SourceAccount", "FunctionUrlAuthType"):
            if key in p:
                kw[key] = p[key]
        self.client("lambda").add_permission(**kw)
        self.r.refs[lid] = lid
        self.r.attrs[lid] = {}
        return f"{p['FunctionName']}:{p['Principal']}"

    def h_Lambda_Url(self, lid: str, p: dict, _d: dict) -> None:
        fn = p["TargetFunctionArn"].split(":function:")[-1] if ":function:" in p["TargetFunctionArn"] else p["TargetFunctionArn"]
        url = f"{self.watch_url}/lambda-url/{fn}/" if self.watch_url else ""
        self.r.refs[lid] = url
        self.r.attrs[lid] = {"FunctionUrl": url, "FunctionArn": p["TargetFunctionArn"]}
        self.skipped.append((lid, "AWS::Lambda::Url", f"served by cargo lambda watch at {url or '/lambda-url/' + fn + '/'}"))
        return None

    def h_Lambda_EventSourceMapping(self, lid: str, p: dict, _d: dict) -> str | None:
        src = p.get("EventSourceArn", "")
        if not self.with_esm:
            self.r.refs[lid] = lid
            self.r.attrs[lid] = {}
            self.skipped.append((lid, "AWS::Lambda::EventSourceMapping", "--no-watch: invokes have nowhere to go"))
            return None
        if ":sqs:" in src:
            # Created in moto for listing, but polled by the harness itself: moto's own SQS trigger
            # invokes synchronously inside SendMessage and never retries or redrives.
            kw = {"EventSourceArn": src, "FunctionName": p["FunctionName"],
                  "BatchSize": int(p.get("BatchSize", 10)), "Enabled": bool(p.get("Enabled", True))}
            esm = self.client("lambda").create_event_source_mapping(**kw)
            _detach_moto_sqs_trigger(src)
            self.esms.append({"arn": src, "function": p["FunctionName"], "batch": kw["BatchSize"],
                              "enabled": kw["Enabled"],
                              "partial": "ReportBatchItemFailures" in (p.get("FunctionResponseTypes") or [])})
        else:
            esm = self.client("lambda").create_event_source_mapping(
                EventSourceArn=src, FunctionName=p["FunctionName"], StartingPosition=p.get("StartingPosition", "LATEST"),
                BatchSize=int(p.get("BatchSize", 100)))
        self.r.refs[lid] = esm["UUID"]
        self.r.attrs[lid] = {"Id": esm["UUID"]}
        return f"{src.split(':')[-1]} -> {p['FunctionName']}"

    def h_StepFunctions_StateMachine(self, lid: str, p: dict, _d: dict) -> str:
        if "DefinitionString" in p:
            definition = p["DefinitionString"]
        elif "Definition" in p:
            definition = json.dumps(p["Definition"])
        else:
            raise EmulatorError(f"{lid}: DefinitionS3Location is not supported; use DefinitionUri with a local file")
        subs = p.get("DefinitionSubstitutions") or {}
        for k, v in subs.items():
            definition = definition.replace("${" + k + "}", str(v))
        left = sorted(set(re.findall(r"\$\{([A-Za-z0-9_.]+)\}", definition)))
        if left:
            raise EmulatorError(f"{lid}: definition placeholders without a DefinitionSubstitutions entry: {left}")
        json.loads(definition)  # fail early on a broken definition
        name = p.get("StateMachineName") or lid
        kw: dict[str, Any] = {"name": name, "definition": definition, "roleArn": p["RoleArn"],
                              "type": p.get("StateMachineType", "STANDARD")}
        if "Tags" in p:
            kw["tags"] = [{"key": t["Key"], "value": t["Value"]} for t in p["Tags"]]
        arn = self.client("stepfunctions").create_state_machine(**kw)["stateMachineArn"]
        self.state_machines[lid] = arn
        self.r.refs[lid] = arn
        self.r.attrs[lid] = {"Arn": arn, "Name": name, "StateMachineRevisionId": arn}
        return arn

    def h_Events_Rule(self, lid: str, p: dict, _d: dict) -> str:
        ev = self.client("events")
        name = p.get("Name") or self.gen_name(lid, 64)
        kw: dict[str, Any] = {"Name": name, "State": p.get("State", "ENABLED")}
        if "EventPattern" in p:
            kw["EventPattern"] = json.dumps(p["EventPattern"]) if not isinstance(p["EventPattern"], str) else p["EventPattern"]
        if "ScheduleExpression" in p:
            kw["ScheduleExpression"] = p["ScheduleExpression"]
        if "EventBusName" in p:
            kw["EventBusName"] = p["EventBusName"]
        arn = ev.put_rule(**kw)["RuleArn"]
        targets = []
        for t in p.get("Targets", []):
            t2 = {k: v for k, v in t.items() if k in ("Id", "Arn", "RoleArn", "Input", "InputPath", "InputTransformer", "DeadLetterConfig", "RetryPolicy", "SqsParameters")}
            targets.append(t2)
        if targets:
            ev.put_targets(Rule=name, Targets=targets, **({"EventBusName": p["EventBusName"]} if "EventBusName" in p else {}))
        self.r.refs[lid] = name
        self.r.attrs[lid] = {"Arn": arn}
        return name

    def h_SSM_Parameter(self, lid: str, p: dict, _d: dict) -> str:
        name = p.get("Name") or self.gen_name(lid, 2048)
        self.client("ssm").put_parameter(Name=name, Value=str(p["Value"]), Type=p.get("Type", "String"), Overwrite=True)
        self.r.refs[lid] = name
        self.r.attrs[lid] = {"Type": p.get("Type", "String"), "Value": str(p["Value"])}
        return name

    def h_ECS_Cluster(self, lid: str, p: dict, _d: dict) -> str:
        name = p.get("ClusterName") or self.gen_name(lid, 255)
        arn = self.client("ecs").create_cluster(clusterName=name)["cluster"]["clusterArn"]
        self.r.refs[lid] = name
        self.r.attrs[lid] = {"Arn": arn}
        self.skipped.append((lid, "AWS::ECS::Cluster", "created in moto for its ARN; tasks run as local processes"))
        return None  # type: ignore[return-value]

    def h_ECS_TaskDefinition(self, lid: str, p: dict, _d: dict) -> None:
        """Kept for EcsRunner, not registered in moto: moto's run_task would need the task's
        subnets to exist in its EC2, and would never run anything anyway."""
        family = p.get("Family") or self.gen_name(lid, 255)
        arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{family}:1"
        self.r.refs[lid] = arn
        self.r.attrs[lid] = {"TaskDefinitionArn": arn}
        containers = {}
        for c in p.get("ContainerDefinitions") or []:
            containers[c["Name"]] = {
                "entry_point": list(c.get("EntryPoint") or []),
                "command": list(c.get("Command") or []),
                "environment": {e["Name"]: str(e["Value"]) for e in c.get("Environment") or []},
            }
        TASK_DEFINITIONS[arn] = {"family": family, "containers": containers}
        self.skipped.append((lid, "AWS::ECS::TaskDefinition",
                             "kept by the emulator: runTask.sync runs its container's entry point as a local process"))
        return None


class _AnyAttr(dict):
    """Attributes of a resource that is not created: every attribute resolves to a placeholder."""

    def __init__(self, arn: str, lid: str):
        super().__init__()
        self.arn = arn
        self.lid = lid

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: str) -> str:
        return self.arn if key.endswith("Arn") or key == "Arn" else f"emulator-{self.lid}-{key}"


def _policy(doc: dict) -> str:
    """IAM accepts a policy without Version (meaning 2008-10-17, as SAM policy templates emit); moto does not."""
    return json.dumps({"Version": "2012-10-17", **doc})


def _throughput(t: dict | None) -> dict:
    t = t or {}
    return {"ReadCapacityUnits": int(t.get("ReadCapacityUnits", 5)), "WriteCapacityUnits": int(t.get("WriteCapacityUnits", 5))}


def lifecycle_rule(r: dict) -> dict:
    """CloudFormation lifecycle rule -> S3 API lifecycle rule."""
    out: dict[str, Any] = {"Status": r.get("Status", "Enabled")}
    if "Id" in r:
        out["ID"] = r["Id"]
    flt: dict[str, Any] = {}
    if "Prefix" in r:
        flt["Prefix"] = r["Prefix"]
    if "TagFilters" in r:
        tags = r["TagFilters"]
        if flt or len(tags) > 1:
            flt = {"And": {**flt, "Tags": tags}}
        else:
            flt["Tag"] = tags[0]
    out["Filter"] = flt
    if "ExpirationInDays" in r:
        out["Expiration"] = {"Days": int(r["ExpirationInDays"])}
    if "ExpirationDate" in r:
        out["Expiration"] = {"Date": r["ExpirationDate"]}
    if "ExpiredObjectDeleteMarker" in r:
        out.setdefault("Expiration", {})["ExpiredObjectDeleteMarker"] = bool(r["ExpiredObjectDeleteMarker"])
    if "AbortIncompleteMultipartUpload" in r:
        out["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": int(r["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])}
    if "NoncurrentVersionExpiration" in r:
        nve = r["NoncurrentVersionExpiration"]
        out["NoncurrentVersionExpiration"] = {"NoncurrentDays": int(nve["NoncurrentDays"])}
    elif "NoncurrentVersionExpirationInDays" in r:
        out["NoncurrentVersionExpiration"] = {"NoncurrentDays": int(r["NoncurrentVersionExpirationInDays"])}
    trans = r.get("Transitions") or ([r["Transition"]] if "Transition" in r else [])
    if trans:
        out["Transitions"] = [{"Days": int(t["TransitionInDays"]), "StorageClass": t["StorageClass"]} if "TransitionInDays" in t
                              else {"Date": t["TransitionDate"], "StorageClass": t["StorageClass"]} for t in trans]
    return out


def _detach_moto_sqs_trigger(queue_arn: str) -> None:
    from moto.sqs.models import sqs_backends
    for queue in sqs_backends[ACCOUNT][REGION].queues.values():
        if queue.queue_arn == queue_arn:
            queue.lambda_event_source_mappings.clear()


# --------------------------------------------------------------------------------------------
# Lambda forwarding
# --------------------------------------------------------------------------------------------

class Forwarder:
    def __init__(self, watch_url: str | None, timeout: float):
        self.watch_url = watch_url
        self.timeout = timeout
        self.bins: dict[str, str] = {}  # registered function name -> workspace bin, where they differ

    def invoke(self, function_name: str, payload: bytes) -> tuple[int, bytes]:
        """POST to cargo lambda watch. Returns (HTTP status, body); transport failures become 599."""
        if not self.watch_url:
            return 599, json.dumps({"errorType": "Emulator.NoWatch",
                                    "errorMessage": "the emulator runs with --no-watch: no function can run"}).encode()
        url = f"{self.watch_url}/2015-03-31/functions/{self.bins.get(function_name, function_name)}/invocations"
        req = urllib.request.Request(url, data=payload, method="POST", headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
        except Exception as e:  # noqa: BLE001 - any transport failure is a function error
            return 599, json.dumps({"errorType": "Emulator.ForwardFailed",
                                    "errorMessage": f"{type(e).__name__}: {e} (POST {url})"}).encode()


def install_forwarder(fwd: Forwarder) -> None:
    """Route moto's Lambda execution to cargo lambda watch.

    moto 5.2.5: every invoke path (Invoke API, Step Functions lambda tasks, S3/SNS/SQS/EventBridge
    triggers) ends in LambdaFunction.invoke -> self._invoke_lambda(event) -> (body, errored, logs);
    errored sets `x-amz-function-error`, which Step Functions turns into a failure whose Error is
    the payload's errorType.
    """
    from moto.awslambda import models

    def _invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
        if event is None or event == "{}":
            payload = b"{}"
        elif isinstance(event, (bytes, bytearray)):
            payload = bytes(event)
        else:
            payload = json.dumps(event).encode()
        t = time.monotonic()
        status, body = fwd.invoke(self.function_name, payload)
        text = body.decode("utf-8", "replace")
        errored = status != 200
        if errored:
            try:
                parsed = json.loads(text)
                ok = isinstance(parsed, dict) and "errorType" in parsed
            except json.JSONDecodeError:
                ok = False
            if not ok:
                text = json.dumps({"errorType": f"Emulator.Http{status}", "errorMessage": text[:2000]})
        log(f"invoke {self.function_name}: HTTP {status} in {time.monotonic() - t:.2f}s"
            + (f" {text[:300]}" if errored else ""))
        return text, errored, ""

    models.LambdaFunction._invoke_lambda = _invoke_lambda  # type: ignore[method-assign]

    orig_invoke = models.LambdaFunction.invoke

    def invoke(self: Any, body: Any, request_headers: Any, response_headers: Any) -> Any:
        inv_type = (request_headers or {}).get("x-amz-invocation-type") or (request_headers or {}).get("X-Amz-Invocation-Type")
        if inv_type == "Event":
            # Asynchronous invoke: answer 202 now, run the function in the background.
            threading.Thread(target=orig_invoke, args=(self, body, {}, {}), daemon=True).start()
            return ""
        return orig_invoke(self, body, request_headers, response_headers)

    models.LambdaFunction.invoke = invoke  # type: ignore[method-assign]


# Task definitions the template declares, by ARN: {"family", "containers": {name: {entry_point,
# command, environment}}}. Filled while provisioning, read by EcsRunner.
TASK_DEFINITIONS: dict[str, dict] = {}


class EcsRunner:
    """Fargate as a local process. A task's container runs its entry point (a workspace bin,
    built like the functions) with the task definition's environment, then the emulator's own
    (endpoints, credentials, the local ffmpeg, the test's VIDPIPE_* settings), then the run's
    container overrides, as ECS layers them. Stop codes and exit codes are reported as ECS
    describes a stopped task."""

    def __init__(self, target_dir: Path, env: dict[str, str], timeout: float):
        self.target_dir = target_dir
        self.env = env
        self.timeout = timeout
        self.tasks: dict[str, dict] = {}
        self.lock = threading.Lock()

    def run(self, cluster: str, task_definition: str, overrides: dict) -> dict:
        td = TASK_DEFINITIONS.get(task_definition)
        if td is None:
            raise EmulatorError(f"runTask: unknown task definition {task_definition}")
        over = {_k(o, "Name"): o for o in _k(overrides or {}, "ContainerOverrides") or []}
        # One essential container per task definition here (the template has one).
        name, c = next(iter(td["containers"].items()))
        o = over.get(name, {})
        command = list(_k(o, "Command") or c["command"])
        if not c["entry_point"]:
            raise EmulatorError(f"runTask: container {name} has no entry point to run locally")
        exe = self.target_dir / "debug" / c["entry_point"][0]
        argv = [str(exe)] + c["entry_point"][1:] + command
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "MOTO_PORT"}
        env.update(c["environment"])
        env.update(self.env)
        for e in _k(o, "Environment") or []:
            env[_k(e, "Name")] = str(_k(e, "Value"))
        task_id = hashlib.sha1(f"{time.time_ns()}{argv}".encode()).hexdigest()[:32]
        cluster_name = cluster.rsplit("/", 1)[-1]
        task = {
            "TaskArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{cluster_name}/{task_id}",
            "ClusterArn": cluster if cluster.startswith("arn:") else f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{cluster}",
            "TaskDefinitionArn": task_definition,
            "LaunchType": "FARGATE",
            "LastStatus": "RUNNING",
            "DesiredStatus": "RUNNING",
            "Containers": [{"Name": name, "LastStatus": "RUNNING"}],
        }
        with self.lock:
            self.tasks[task["TaskArn"]] = task
        log(f"ecs: task {task_id} runs {' '.join(argv[:3])} ...")

        def execute() -> None:
            t = time.monotonic()
            try:
                proc = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=sys.stderr,
                                      stderr=sys.stderr, timeout=self.timeout, start_new_session=True)
                code, stop_code, why = proc.returncode, "EssentialContainerExited", "Essential container in task exited"
            except subprocess.TimeoutExpired:
                code, stop_code, why = 137, "TaskFailedToStart", f"emulator: task ran over {self.timeout:.0f}s"
            except OSError as e:
                code, stop_code, why = None, "TaskFailedToStart", f"CannotStartContainerError: {e}"
            log(f"ecs: task {task_id} stopped in {time.monotonic() - t:.1f}s, exit {code}")
            with self.lock:
                task.update({"LastStatus": "STOPPED", "DesiredStatus": "STOPPED", "StopCode": stop_code,
                             "StoppedReason": why})
                container = {"Name": name, "LastStatus": "STOPPED"}
                if code is not None:
                    container["ExitCode"] = code
                task["Containers"] = [container]

        threading.Thread(target=execute, daemon=True, name=f"ecs-{task_id[:8]}").start()
        return dict(task)

    def describe(self, task_arn: str) -> dict:
        with self.lock:
            return json.loads(json.dumps(self.tasks[task_arn]))


def _k(d: dict, pascal: str) -> Any:
    """A Step Functions parameter by its PascalCase name or the SDK's camelCase one."""
    return d.get(pascal, d.get(pascal[0].lower() + pascal[1:]))


def install_ecs_runner(runner: EcsRunner) -> None:
    """Route moto's Step Functions `ecs:runTask.sync` to EcsRunner.

    moto 5.2.5 calls its own ECS run_task (which needs the subnets in its EC2 and never runs or
    stops a task) and then waits for STOPPED forever. Here the task runs as a process, and a stopped
    task whose essential container did not exit 0 fails the state with States.TaskFailed and the
    task description as the Cause, as Step Functions does.
    """
    from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent, FailureEventException)
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType)
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_ecs as m
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
    from moto.stepfunctions.parser.asl.utils.encoding import to_json_str

    def _eval_service_task(self: Any, env: Any, resource_runtime_part: Any, normalised_parameters: dict,
                           state_credentials: Any) -> None:
        if self._get_boto_service_action() != "run_task":
            raise EmulatorError(f"ecs:{self._get_boto_service_action()} is not emulated")
        p = normalised_parameters
        task = runner.run(_k(p, "Cluster") or "default", _k(p, "TaskDefinition"), _k(p, "Overrides") or {})
        env.stack.append({"Tasks": [task]})

    def _build_sync_resolver(self: Any, env: Any, resource_runtime_part: Any, normalised_parameters: dict,
                             state_credentials: Any) -> Callable[[], Any]:
        task_arn = env.stack.pop()["Tasks"][0]["TaskArn"]

        def resolve() -> dict | None:
            task = runner.describe(task_arn)
            if task["LastStatus"] != "STOPPED":
                return None
            if all(c.get("ExitCode") == 0 for c in task["Containers"]):
                return task
            raise FailureEventException(FailureEvent(
                env=env,
                error_name=StatesErrorName(typ=StatesErrorNameType.StatesTaskFailed),
                event_type=HistoryEventType.TaskFailed,
                event_details=EventDetails(taskFailedEventDetails=TaskFailedEventDetails(
                    resource=self._get_sfn_resource(),
                    resourceType=self._get_sfn_resource_type(),
                    error=StatesErrorNameType.StatesTaskFailed.to_name(),
                    cause=to_json_str(task),
                )),
            ))

        return resolve

    m.StateTaskServiceEcs._eval_service_task = _eval_service_task  # type: ignore[method-assign]
    m.StateTaskServiceEcs._build_sync_resolver = _build_sync_resolver  # type: ignore[method-assign]


def install_s3_event_fields() -> None:
    """Give moto's S3 notifications the per-write fields AWS sends.

    moto 5.2.5's S3 -> SQS/SNS/Lambda event has no `sequencer` and no `versionId`, so every write
    of one key would look like the same write and a re-upload would never be processed (the
    dispatcher names executions by bucket, key and version-or-sequencer). AWS always sends a
    sequencer, increasing per key, and a versionId on versioned buckets; both are added here. Keys
    stay URL-encoded as moto (and AWS) send them: decoding is the dispatcher's job.
    """
    from moto.s3 import notifications

    original = notifications._get_s3_event
    counter = itertools.count(1)
    lock = threading.Lock()

    def _get_s3_event(event_name: str, bucket: Any, key: Any, notification_id: str) -> dict:
        body = original(event_name, bucket, key, notification_id)
        with lock:
            # Hex, fixed width, ordered by time then by event: as comparable as AWS's.
            sequencer = f"{time.time_ns():016X}{next(counter):04X}"
        for record in body.get("Records", []):
            obj = record["s3"]["object"]
            obj.setdefault("sequencer", sequencer)
            version = getattr(key, "version_id", None)
            if version and version != "null":
                obj.setdefault("versionId", version)
        return body

    notifications._get_s3_event = _get_s3_event


class SqsPoller(threading.Thread):
    """An SQS event source mapping as Lambda runs it: poll, invoke, delete on success; on failure
    leave the messages to reappear after the visibility timeout (and reach the DLQ via the redrive
    policy, which moto applies on receive)."""

    def __init__(self, esm: dict, endpoint: str, stop: threading.Event):
        super().__init__(daemon=True, name=f"esm-{esm['function']}")
        import boto3
        from botocore.config import Config
        self.esm = esm
        self.stop_event = stop
        cfg = Config(region_name=REGION, retries={"max_attempts": 1}, read_timeout=30)
        s = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
        self.sqs = s.client("sqs", endpoint_url=endpoint, config=cfg)
        self.lam = s.client("lambda", endpoint_url=endpoint,
                            config=Config(region_name=REGION, retries={"max_attempts": 1}, read_timeout=3600))
        name = esm["arn"].split(":")[-1]
        self.url = self.sqs.get_queue_url(QueueName=name)["QueueUrl"]

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                msgs = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=min(10, self.esm["batch"]),
                                                WaitTimeSeconds=1, AttributeNames=["All"],
                                                MessageAttributeNames=["All"]).get("Messages", [])
            except Exception as e:  # noqa: BLE001
                if self.stop_event.is_set():
                    return
                log(f"esm {self.esm['function']}: receive failed: {e}")
                time.sleep(1)
                continue
            if not msgs:
                continue
            records = [{
                "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                "attributes": m.get("Attributes", {}), "messageAttributes": _msg_attrs(m.get("MessageAttributes", {})),
                "md5OfBody": m.get("MD5OfBody", ""), "eventSource": "aws:sqs",
                "eventSourceARN": self.esm["arn"], "awsRegion": REGION} for m in msgs]
            try:
                resp = self.lam.invoke(FunctionName=self.esm["function"], Payload=json.dumps({"Records": records}).encode())
                failed = "FunctionError" in resp
                body = resp["Payload"].read()
            except Exception as e:  # noqa: BLE001
                log(f"esm {self.esm['function']}: invoke failed: {e}")
                continue
            if failed:
                continue
            keep: set[str] = set()
            if self.esm["partial"]:
                try:
                    keep = {f["itemIdentifier"] for f in (json.loads(body) or {}).get("batchItemFailures", [])}
                except Exception:  # noqa: BLE001
                    keep = set()
            for m in msgs:
                if m["MessageId"] not in keep:
                    try:
                        self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=m["ReceiptHandle"])
                    except Exception as e:  # noqa: BLE001
                        log(f"esm {self.esm['function']}: delete failed: {e}")


def _msg_attrs(attrs: dict) -> dict:
    out = {}
    for k, v in attrs.items():
        out[k] = {"stringValue": v.get("StringValue"), "binaryValue": v.get("BinaryValue"),
                  "stringListValues": [], "binaryListValues": [], "dataType": v.get("DataType")}
    return out


# --------------------------------------------------------------------------------------------
# cargo lambda watch
# --------------------------------------------------------------------------------------------

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


def warm(root: Path, bins: list[str], env: dict[str, str], timeout: float) -> None:
    """Compile what `cargo lambda watch` will run, the way it runs it (`cargo run --bin X` in the dev
    profile, same target dir), one bin at a time so feature resolution matches exactly."""
    deadline = time.monotonic() + timeout
    for b in bins:
        t = time.monotonic()
        log(f"warm: cargo build --bin {b}")
        left = deadline - time.monotonic()
        if left <= 0:
            raise EmulatorError(f"--warm: out of time ({timeout:.0f}s) before building {b}")
        try:
            proc = subprocess.run(["cargo", "build", "--manifest-path", "Cargo.toml", "--bin", b], cwd=root, env=env,
                                  stdout=sys.stderr, stderr=sys.stderr, timeout=left, start_new_session=True)
        except subprocess.TimeoutExpired:
            raise EmulatorError(f"--warm: building {b} took longer than {timeout:.0f}s")
        if proc.returncode != 0:
            raise EmulatorError(f"--warm: cargo build --bin {b} failed (exit {proc.returncode})")
        log(f"warm: {b} built in {time.monotonic() - t:.1f}s")


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


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="scripts/emulator/up", description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="cargo workspace (default: the repo)")
    ap.add_argument("--template", type=Path, default=None, help="SAM template (default: ROOT/template.yaml)")
    ap.add_argument("--moto-port", type=int, default=0, help="0 = a free port (default)")
    ap.add_argument("--watch-port", type=int, default=0, help="0 = a free port (default)")
    ap.add_argument("--stack-name", default="vidpipe", help="AWS::StackName and generated-name prefix")
    ap.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="template parameter override")
    ap.add_argument("--warm", action="store_true", help="compile every function before reporting ready")
    ap.add_argument("--warm-timeout", type=float, default=1800)
    ap.add_argument("--no-watch", action="store_true", help="moto + provisioning only")
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
    ap.add_argument("--stdin", choices=["auto", "watch", "ignore"], default="auto",
                    help="exit on stdin EOF: auto = unless stdin is /dev/null")
    return ap.parse_args(argv)


def stdin_is_devnull() -> bool:
    try:
        st, dn = os.fstat(0), os.stat(os.devnull)
        return (st.st_dev, st.st_ino) == (dn.st_dev, dn.st_ino) or (st.st_rdev == dn.st_rdev and st.st_rdev != 0)
    except OSError:
        return True


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    root = args.root.resolve()
    template_path = (args.template or root / "template.yaml").resolve()
    stop = threading.Event()
    reason = {"why": ""}

    def on_signal(signum: int, _frame: Any) -> None:
        reason["why"] = reason["why"] or signal.Signals(signum).name
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    # A harness never outlives its parent: watch for reparenting, and for stdin EOF.
    parent = os.getppid()

    def watch_parent() -> None:
        while not stop.wait(1.0):
            if os.getppid() != parent:
                reason["why"] = reason["why"] or "parent exited"
                stop.set()

    threading.Thread(target=watch_parent, daemon=True).start()
    if args.stdin == "watch" or (args.stdin == "auto" and not stdin_is_devnull()):
        def watch_stdin() -> None:
            try:
                while sys.stdin.buffer.read1(65536) if hasattr(sys.stdin.buffer, "read1") else sys.stdin.buffer.read(1):
                    pass
            except Exception:  # noqa: BLE001
                pass
            reason["why"] = reason["why"] or "stdin closed"
            stop.set()
        threading.Thread(target=watch_stdin, daemon=True).start()

    moto_port = args.moto_port or free_port()
    watch_port = None if (args.no_watch or args.watch_url) else (args.watch_port or free_port())
    os.environ["MOTO_PORT"] = str(moto_port)  # moto's SFN executor calls back to localhost:$MOTO_PORT
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(k, "testing")
    os.environ.pop("AWS_ENDPOINT_URL", None)  # our own boto3 clients take explicit endpoints
    moto_url = f"http://127.0.0.1:{moto_port}"
    watch_url = args.watch_url.rstrip("/") if args.watch_url else (f"http://127.0.0.1:{watch_port}" if watch_port else None)

    server = None
    watch: Watch | None = None
    try:
        if not template_path.exists():
            raise EmulatorError(f"no template at {template_path}")
        import logging
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        from moto.server import ThreadedMotoServer

        class SerializedDynamoMotoServer(ThreadedMotoServer):
            """moto with DynamoDB requests handled one at a time. moto checks a condition and then
            writes without a lock, so two concurrent conditional writes on one item could both
            succeed; real DynamoDB makes each atomic, and a cancel racing a progress save depends
            on that. Every other service stays concurrent (the SFN executor calls back in)."""

            def _server_entry(self) -> None:
                import threading
                from werkzeug.serving import make_server
                from moto.moto_server.werkzeug_app import (
                    DomainDispatcherApplication, MotoRequestHandler, create_backend_app)
                app = DomainDispatcherApplication(create_backend_app)
                lock = threading.Lock()

                def serialized(environ, start_response):
                    if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
                        with lock:
                            # Drain under the lock: the write happens while the body is produced.
                            return list(app(environ, start_response))
                    return app(environ, start_response)

                self._server = make_server(self._ip_address, self._port, serialized, True,
                                           request_handler=MotoRequestHandler)
                self._server_ready_event.set()
                self._server.serve_forever()
        forwarder = Forwarder(watch_url, args.invoke_timeout)
        install_forwarder(forwarder)
        install_s3_event_fields()
        if port_open(moto_port):
            raise EmulatorError(f"port {moto_port} is already in use")
        server = SerializedDynamoMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
        server.start()
        wait_for("moto", lambda: _http_ok(f"{moto_url}/moto-api/"), args.startup_timeout)
        req = urllib.request.Request(f"{moto_url}/moto-api/config", method="POST",
                                     data=json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode())
        urllib.request.urlopen(req, timeout=10).read()
        log(f"moto listening on {moto_url} (execute_state_machine on)")

        raw = load_yaml(template_path)
        prepared, functions, notes = prepare_sam(raw, root, template_path.parent)
        for n in notes:
            log(f"note: {n}")
        translated = sam_transform(prepared)
        params = dict(p.split("=", 1) for p in args.param)
        resolver = Resolver(translated, args.stack_name, params)
        prov = Provisioner(translated, resolver, functions, moto_url, args.stack_name,
                           with_esm=not args.no_watch, watch_url=watch_url)
        prov.run()
        for lid, typ, phys in prov.created:
            log(f"created  {typ:38} {lid:34} {phys}")
        for lid, typ, why in prov.skipped:
            log(f"skipped  {typ:38} {lid:34} {why}")

        outputs = {}
        for name, o in (translated.get("Outputs") or {}).items():
            if o.get("Condition") and not resolver.condition(o["Condition"]):
                continue
            try:
                outputs[name] = resolver.resolve(o.get("Value"))
            except (Unresolved, EmulatorError) as e:
                outputs[name] = f"<unresolved: {e}>"

        # The environment every function sees (watch applies it to all bins).
        fn_env: dict[str, str] = {}
        for fname, env in prov.function_env.items():
            for k, v in env.items():
                if k in fn_env and fn_env[k] != v:
                    log(f"warning: env {k} differs between functions ({fn_env[k]!r} vs {v!r} in {fname}); "
                        "cargo lambda watch has one environment for all bins: the last wins")
                fn_env[k] = v
        fn_env.update({
            "AWS_ENDPOINT_URL": moto_url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION, "VIDPIPE_TRUST_TENANT_HEADER": "1",
            "VIDPIPE_FFMPEG_DIR": str(DEFAULT_ROOT / DEFAULT_FFMPEG_DIR),
        })
        for k, v in os.environ.items():
            if k.startswith("VIDPIPE_"):
                fn_env[k] = v
        fn_env.pop("AWS_SESSION_TOKEN", None)

        bins_registered = {lid: prov.function_names[lid] for lid in prov.function_names}
        for lid, name in bins_registered.items():
            info = functions.get(lid)
            if info and info.bin and info.bin != name:
                forwarder.bins[name] = info.bin
        bin_of = {name: forwarder.bins.get(name, name) for name in bins_registered.values()}
        urls: dict[str, str] = {}
        if watch_url and not watch_port:
            urls = {b: f"{watch_url}/lambda-url/{b}" for b in sorted(set(bin_of.values()))}
            for esm in prov.esms:
                if esm["enabled"]:
                    SqsPoller(esm, moto_url, stop).start()
        elif watch_url:
            available = workspace_bins(root)
            missing = sorted(b for b in bin_of.values() if b not in available)
            for n in missing:
                log(f"warning: function {n} is in the template but no workspace bin has that name; its invokes will fail")
            proc_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "MOTO_PORT"}
            proc_env.update(fn_env)
            if args.target_dir:
                proc_env["CARGO_TARGET_DIR"] = str(args.target_dir.resolve())
            log(f"cargo target dir: {proc_env.get('CARGO_TARGET_DIR', str(root / 'target'))}")
            # Fargate task entry points are workspace bins too, built and run from the same target.
            task_bins = {c["entry_point"][0] for td in TASK_DEFINITIONS.values()
                         for c in td["containers"].values() if c["entry_point"]}
            target_dir = Path(proc_env.get("CARGO_TARGET_DIR", str(root / "target")))
            runner_env = dict(fn_env)
            for k in ("CARGO_TARGET_DIR",):
                runner_env.pop(k, None)
            install_ecs_runner(EcsRunner(target_dir, runner_env, args.invoke_timeout))
            if args.warm:
                warm(root, sorted({b for b in bin_of.values() if b in available} | (task_bins & set(available))),
                     proc_env, args.warm_timeout)
            watch = Watch(root, watch_port, proc_env, args.invoke_timeout, reload=args.reload)  # type: ignore[arg-type]
            watch.start(args.startup_timeout)
            log(f"cargo lambda watch listening on {watch_url}")
            urls = {b: f"{watch_url}/lambda-url/{b}" for b in sorted(set(bin_of.values()))}
            for n, u in urls.items():
                log(f"function URL: {u}/")
            stop_pollers = stop
            for esm in prov.esms:
                if esm["enabled"]:
                    SqsPoller(esm, moto_url, stop_pollers).start()

        api_fn = _api_function(translated, prov)
        buckets = {lid: phys for lid, typ, phys in prov.created if typ == "AWS::S3::Bucket"}
        tables = {lid: phys for lid, typ, phys in prov.created if typ == "AWS::DynamoDB::Table"}
        ready = {
            "ready": True,
            "moto": moto_url,
            "watch": watch_url,
            "api": f"{watch_url}/lambda-url/{bin_of.get(api_fn, api_fn)}" if (watch_url and api_fn) else None,
            "bucket": fn_env.get("VIDPIPE_BUCKET") or next(iter(buckets.values()), None),
            "table": fn_env.get("VIDPIPE_TABLE") or next(iter(tables.values()), None),
            "buckets": buckets,
            "tables": tables,
            "state_machines": prov.state_machines,
            "queues": {lid: phys for lid, typ, phys in prov.created if typ == "AWS::SQS::Queue"},
            "topics": {lid: phys for lid, typ, phys in prov.created if typ == "AWS::SNS::Topic"},
            "functions": bins_registered,
            "bins": bin_of,
            "urls": urls,
            "outputs": outputs,
            "region": REGION,
            "env": fn_env,
            "created": len(prov.created),
            "skipped": {lid: why for lid, _t, why in prov.skipped},
            "pid": os.getpid(),
        }
        sys.stdout.write(json.dumps(ready, sort_keys=False) + "\n")
        sys.stdout.flush()
        log("ready; stop with SIGTERM/SIGINT or by closing stdin")
        while not stop.wait(0.5):
            if watch and watch.proc and watch.proc.poll() is not None:
                reason["why"] = f"cargo lambda watch exited with {watch.proc.returncode}"
                stop.set()
        log(f"stopping ({reason['why']})")
        return 0 if not reason["why"].startswith("cargo lambda watch exited") else 1
    except Exception as e:  # noqa: BLE001 - every startup failure ends in one JSON line
        if not isinstance(e, EmulatorError):
            import traceback
            traceback.print_exc(file=sys.stderr)
            e = EmulatorError(f"{type(e).__name__}: {e}")
        log(f"error: {e}")
        sys.stdout.write(json.dumps({"ready": False, "error": str(e)}) + "\n")
        sys.stdout.flush()
        return 2
    finally:
        stop.set()
        if watch:
            watch.stop()
        if server:
            try:
                server.stop()
            except Exception:  # noqa: BLE001
                pass
        log("stopped")


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


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status < 500
    except Exception:  # noqa: BLE001
        return False


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
