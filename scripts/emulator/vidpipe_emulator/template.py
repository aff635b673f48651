"""The SAM template as the emulator reads it: YAML with CloudFormation's short tags, the local
paths aws-sam-translator cannot take rewritten (remembering each function's cargo bin), and the
offline SAM transform to plain CloudFormation."""

from __future__ import annotations

import copy
import json
import os
import tomllib
from pathlib import Path
from typing import Any

from .common import REGION, EmulatorError


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
