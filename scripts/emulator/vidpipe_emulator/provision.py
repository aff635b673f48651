"""Provisioning: every template resource created in moto through its own service API, in
dependency order, so every property that matters is kept; what is not emulated still resolves,
to placeholders."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import re
import zipfile
from typing import Any, Callable

from .common import ACCOUNT, REGION, EmulatorError, log
from .moto_patches import TASK_DEFINITIONS, detach_moto_sqs_trigger
from .resolver import Resolver, Unresolved, references
from .template import FunctionInfo


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
        self.stream_esms: list[dict] = []                # DynamoDB stream mappings the feeder runs
        self.websocket_apis: dict[str, dict] = {}        # WEBSOCKET APIs the gateway serves, by logical id
        self.ws_integrations: dict[str, str] = {}        # integration id -> function name
        self.ws_routes: list[tuple[str, str, str]] = []  # (api id, route key, target)
        self.ws_stages: dict[str, str] = {}              # api id -> stage name
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
        if ":dynamodb:" in src:
            # Not created in moto: its own stream trigger would invoke the function inside every
            # write (through docker) and forget the records. The harness's feeder polls the stream
            # through the DynamoDB Streams API instead (streams.py), as Lambda's poller does.
            self.r.refs[lid] = lid
            self.r.attrs[lid] = {"Id": lid}
            filters = [json.loads(f["Pattern"]) if isinstance(f.get("Pattern"), str) else f.get("Pattern") or {}
                       for f in ((p.get("FilterCriteria") or {}).get("Filters") or [])]
            self.stream_esms.append({
                "id": lid, "arn": src, "function": p["FunctionName"], "batch": int(p.get("BatchSize", 100)),
                "window": float(p.get("MaximumBatchingWindowInSeconds", 0)),
                "start": p.get("StartingPosition", "LATEST"), "filters": filters,
                "retries": int(p.get("MaximumRetryAttempts", -1)),
                "bisect": bool(p.get("BisectBatchOnFunctionError", False)),
                "partial": "ReportBatchItemFailures" in (p.get("FunctionResponseTypes") or []),
                "enabled": bool(p.get("Enabled", True))})
            self.skipped.append((lid, "AWS::Lambda::EventSourceMapping",
                                 f"DynamoDB stream -> {p['FunctionName']}: fed by the emulator's stream feeder"))
            return None
        if ":sqs:" in src:
            # Created in moto for listing, but polled by the harness itself: moto's own SQS trigger
            # invokes synchronously inside SendMessage and never retries or redrives.
            kw = {"EventSourceArn": src, "FunctionName": p["FunctionName"],
                  "BatchSize": int(p.get("BatchSize", 10)), "Enabled": bool(p.get("Enabled", True))}
            esm = self.client("lambda").create_event_source_mapping(**kw)
            detach_moto_sqs_trigger(src)
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

    # -- the WebSocket API: served by the emulator's gateway (websocket.py), not by moto ---------
    def h_ApiGatewayV2_Api(self, lid: str, p: dict, _d: dict) -> None:
        if p.get("ProtocolType") != "WEBSOCKET":
            # HTTP APIs are served from the SAM events by gateway.py.
            self.synth(lid, "AWS::ApiGatewayV2::Api", p)
            self.skipped.append((lid, "AWS::ApiGatewayV2::Api", "not emulated"))
            return None
        api_id = hashlib.sha1(f"{self.stack}-{lid}".encode()).hexdigest()[:10]
        self.websocket_apis[lid] = {"id": api_id, "name": p.get("Name", lid),
                                    "selection": p.get("RouteSelectionExpression", "$request.body.action")}
        self.r.refs[lid] = api_id
        self.r.attrs[lid] = {"ApiId": api_id, "ApiEndpoint": f"wss://{api_id}.execute-api.{REGION}.amazonaws.com"}
        self.skipped.append((lid, "AWS::ApiGatewayV2::Api", "WEBSOCKET: served by the emulator's WebSocket gateway"))
        return None

    def h_ApiGatewayV2_Integration(self, lid: str, p: dict, _d: dict) -> None:
        uri = str(p.get("IntegrationUri", ""))
        m = re.search(r":function:([^/:]+)", uri)
        self.r.refs[lid] = lid
        self.r.attrs[lid] = {}
        if m:
            self.ws_integrations[lid] = m.group(1)
        self.skipped.append((lid, "AWS::ApiGatewayV2::Integration", "served by the emulator's gateways"))
        return None

    def h_ApiGatewayV2_Route(self, lid: str, p: dict, _d: dict) -> None:
        self.ws_routes.append((str(p.get("ApiId")), str(p.get("RouteKey")), str(p.get("Target", ""))))
        self.r.refs[lid] = lid
        self.r.attrs[lid] = {}
        self.skipped.append((lid, "AWS::ApiGatewayV2::Route", "served by the emulator's gateways"))
        return None

    def h_ApiGatewayV2_Stage(self, lid: str, p: dict, _d: dict) -> None:
        self.ws_stages[str(p.get("ApiId"))] = str(p.get("StageName", "$default"))
        self.r.refs[lid] = str(p.get("StageName", "$default"))
        self.r.attrs[lid] = {}
        self.skipped.append((lid, "AWS::ApiGatewayV2::Stage", "served by the emulator's gateways"))
        return None

    def websocket_api(self) -> dict | None:
        """The template's WebSocket API as the gateway serves it: its id, stage, and each route
        key's function (registered name). None without one; more than one is refused."""
        if not self.websocket_apis:
            return None
        if len(self.websocket_apis) > 1:
            raise EmulatorError(f"more than one WEBSOCKET API: {sorted(self.websocket_apis)}; the gateway serves one")
        api = dict(next(iter(self.websocket_apis.values())))
        routes = {}
        for api_id, key, target in self.ws_routes:
            if api_id != api["id"]:
                continue
            integration = target.split("/", 1)[1] if target.startswith("integrations/") else target
            if integration not in self.ws_integrations:
                raise EmulatorError(f"WebSocket route {key}: target {target!r} names no Lambda integration")
            routes[key] = self.ws_integrations[integration]
        api["routes"] = routes
        api["stage"] = self.ws_stages.get(api["id"], "$default")
        return api

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
