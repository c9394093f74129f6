#!/usr/bin/env python3
"""Offline checks of pixpress's Kubernetes manifests (run by .ci/check-k8s.sh).

  check_manifests.py validate [--k8s-version V]... [--secret-template FILE]
                              [--source-root DIR] RENDERED.yaml
      1. every object against the Kubernetes JSON schema of each version V, strictly
         (unknown fields fail), with kubernetes-validate's bundled schemas; an unknown
         kind/apiVersion fails too;
      2. the contract of DESIGN.md as manifests (see check_pixpress): the five
         Deployments with /health and /ready probes, non-root hardened containers,
         requests and limits, a grace period above SHUTDOWN_GRACE_SECS, Prometheus
         annotations, HTTP_ADDR on the container port; Services, HPAs and PDBs that
         point at something; every pod within the "restricted" Pod Security
         Standard; every ConfigMap/Secret reference and key resolved (the
         Secret created per cluster is taken from --secret-template, which must hold
         placeholders and exactly the keys pods read; with --secret-in-render the
         render must generate it, with those keys); in-cluster URLs
         naming an existing Service and port; the services wired to each other
         (one AUTH_JWT_SECRET, each service token signed with it for role `service`
         when the render holds the values, download-service's MANAGEMENT_URL under
         management-api's MANAGEMENT_PUBLIC_URL); and, with --source-root, every
         variable given to a service is one that service reads (a typo would be
         ignored).
  check_manifests.py schema [--k8s-version V]... FILE...
      step 1 only (for files that are not rendered, like the Secret template).
  check_manifests.py sources DIR
      every YAML file under DIR parses, with no key given twice in one mapping.
  check_manifests.py compare A.yaml B.yaml
      the same objects with the same content, whatever the order of the documents.
"""

import argparse
import base64
import glob
import hashlib
import hmac
import json
import os
import re
import sys
import time
from urllib.parse import urlsplit

import yaml

# The services of DESIGN.md §1: port, whether they scale out, source folder.
SERVICES = {
    "print-service": (8080, True, "services/print"),
    "download-service": (8081, True, "services/download"),
    "management-api": (8082, False, "services/management"),
    "printer-sim": (8083, False, "services/printer-sim"),
    "ipp-gateway": (8084, False, "services/ipp-gateway"),
}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
# The services that check bearer tokens, and the token each presents to the next one
# (DESIGN.md §10, §12): (service, variable).
AUTHENTICATED = ("print-service", "management-api", "download-service")
SERVICE_TOKENS = (("print-service", "MANAGEMENT_TOKEN"),
                  ("management-api", "DOWNLOAD_TOKEN"),
                  ("download-service", "MANAGEMENT_TOKEN"))
PLACEHOLDER = "REPLACE_ME"


class Report:
    def __init__(self):
        self.errors = []

    def error(self, message):
        self.errors.append(message)
        print(f"ERROR {message}")


def load_docs(path):
    with open(path, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    for d in docs:
        if not isinstance(d, dict):
            raise SystemExit(f"{path}: a document is not a mapping")
    return docs


def ident(obj):
    meta = obj.get("metadata") or {}
    return f"{obj.get('kind')}/{meta.get('name')}"


# ---------------------------------------------------------------- schemas

def check_schemas(docs, path, versions, report):
    import kubernetes_validate
    from kubernetes_validate.utils import VersionNotSupportedError

    for obj in docs:
        if not all(k in obj for k in ("apiVersion", "kind", "metadata")):
            report.error(f"{path}: {ident(obj)}: apiVersion, kind and metadata are required")
            continue
        for version in versions:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                where = ".".join(str(p) for p in e.path) or "(top)"
                report.error(f"{path}: {ident(obj)} (Kubernetes {version}): {where}: {e.message}")
            except kubernetes_validate.SchemaNotFoundError as e:
                report.error(f"{path}: {ident(obj)}: {e.message}")
            except VersionNotSupportedError:
                raise SystemExit(f"kubernetes-validate has no schemas for Kubernetes {version}")


# ---------------------------------------------------------------- helpers

def pod_template(obj):
    if obj.get("kind") in WORKLOAD_KINDS:
        return (obj.get("spec") or {}).get("template") or {}
    return None


def all_containers(pod_spec):
    return (pod_spec.get("initContainers") or []) + (pod_spec.get("containers") or [])


def matches(selector, labels):
    if not selector:
        return False
    if "matchExpressions" in selector:
        return False  # not used here; do not guess
    wanted = selector.get("matchLabels", selector)
    return bool(wanted) and all((labels or {}).get(k) == v for k, v in wanted.items())


def known_env_names(source_root, folder):
    names = set()
    pattern = re.compile(r'\benv\s*=\s*"([A-Z][A-Z0-9_]*)"')
    for root in (os.path.join(source_root, "crates/kit/src"), os.path.join(source_root, folder)):
        for path in glob.glob(os.path.join(root, "**/*.rs"), recursive=True):
            with open(path, encoding="utf-8") as f:
                names.update(pattern.findall(f.read()))
    return names


class Objects:
    """The rendered objects, looked up by kind and name."""

    def __init__(self, docs, secret_template_docs):
        self.docs = docs
        self.by_kind = {}
        for obj in docs:
            self.by_kind.setdefault(obj["kind"], {})[obj["metadata"]["name"]] = obj
        # Secrets created per cluster from the template count as present (keys only).
        self.external = {}
        for obj in secret_template_docs:
            if obj.get("kind") == "Secret":
                self.external[obj["metadata"]["name"]] = obj

    def get(self, kind, name):
        return self.by_kind.get(kind, {}).get(name)

    def data(self, kind, name):
        """The object's key → value (None when the value is not known here)."""
        obj = self.get(kind, name)
        if obj is None and kind == "Secret":
            obj = self.external.get(name)
            if obj is not None:
                keys = list((obj.get("data") or {})) + list((obj.get("stringData") or {}))
                return {k: None for k in keys}
        if obj is None:
            return None
        values = dict(obj.get("data") or {})
        if kind == "Secret":
            values = {k: base64.b64decode(v).decode("utf-8", "replace") for k, v in values.items()}
            values.update(obj.get("stringData") or {})
        return values


def resolve_env(container, objects, where, report):
    """The container's environment as name → value (None: secret or unknown)."""
    env = {}
    for source in container.get("envFrom") or []:
        for field, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
            ref = source.get(field)
            if not ref:
                continue
            data = objects.data(kind, ref.get("name"))
            if data is None:
                if not ref.get("optional"):
                    report.error(f"{where}: envFrom {kind} {ref.get('name')} does not exist")
                continue
            prefix = source.get("prefix", "")
            env.update({prefix + k: v for k, v in data.items()})
    for item in container.get("env") or []:
        value_from = item.get("valueFrom")
        if not value_from:
            env[item["name"]] = item.get("value", "")
            continue
        for field, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
            ref = value_from.get(field)
            if not ref:
                continue
            data = objects.data(kind, ref.get("name"))
            if data is None or ref.get("key") not in data:
                if not ref.get("optional"):
                    report.error(f"{where}: env {item['name']}: {kind} "
                                 f"{ref.get('name')} has no key {ref.get('key')}")
                env[item["name"]] = None
            else:
                env[item["name"]] = data[ref["key"]]
        if not any(k in value_from for k in ("configMapKeyRef", "secretKeyRef")):
            env[item["name"]] = None
    return env


def check_url(name, value, objects, where, report):
    """An in-cluster URL (single-label host) must name a Service and one of its ports."""
    if not isinstance(value, str) or "://" not in value:
        return
    parts = urlsplit(value)
    host = parts.hostname or ""
    if not host or "." in host or host == "localhost":
        return
    service = objects.get("Service", host)
    if service is None:
        report.error(f"{where}: {name} names host {host}, which is no Service here")
        return
    try:
        port = parts.port
    except ValueError:
        report.error(f"{where}: {name} has a bad port")
        return
    ports = [p.get("port") for p in (service.get("spec") or {}).get("ports") or []]
    if port is None:
        port = 443 if parts.scheme == "https" else 80
        if parts.scheme.startswith("postgres"):
            port = 5432
    if port not in ports:
        report.error(f"{where}: {name} uses port {port}, Service {host} has {ports}")


# ---------------------------------------------------------------- pixpress rules

def check_service_deployment(name, obj, objects, source_root, report):
    port, scales, folder = SERVICES[name]
    where = f"Deployment/{name}"
    spec = obj.get("spec") or {}
    template = spec.get("template") or {}
    pod = template.get("spec") or {}
    annotations = (template.get("metadata") or {}).get("annotations") or {}

    if scales and "replicas" in spec:
        report.error(f"{where}: has spec.replicas, but its HorizontalPodAutoscaler owns the count")
    if not scales and spec.get("replicas") != 1:
        report.error(f"{where}: must run exactly 1 replica (in-memory state)")

    want = {"prometheus.io/scrape": "true", "prometheus.io/port": str(port),
            "prometheus.io/path": "/metrics"}
    for key, value in want.items():
        if annotations.get(key) != value:
            report.error(f"{where}: pod annotation {key} must be {value!r}, is {annotations.get(key)!r}")

    pod_sc = pod.get("securityContext") or {}
    containers = pod.get("containers") or []
    main = [c for c in containers if c.get("name") == name]
    if not main:
        report.error(f"{where}: no container named {name}")
        return
    container = main[0]
    image = container.get("image", "")
    if not image.startswith(f"pixpress/{name}:") and image != f"pixpress/{name}":
        report.error(f"{where}: image {image!r} is not pixpress/{name}")

    port_names = {p.get("name"): p.get("containerPort") for p in container.get("ports") or []}
    if port not in port_names.values():
        report.error(f"{where}: no containerPort {port}")

    for probe, path in (("livenessProbe", "/health"), ("readinessProbe", "/ready")):
        get = (container.get(probe) or {}).get("httpGet") or {}
        probe_port = port_names.get(get.get("port"), get.get("port"))
        if get.get("path") != path or probe_port != port:
            report.error(f"{where}: {probe} must be GET {path} on port {port}")

    resources = container.get("resources") or {}
    for section in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            if resource not in (resources.get(section) or {}):
                report.error(f"{where}: resources.{section}.{resource} missing")

    sc = container.get("securityContext") or {}
    def setting(key):
        return sc.get(key, pod_sc.get(key))
    for key, value in (("runAsNonRoot", True), ("runAsUser", 10001)):
        if setting(key) != value:
            report.error(f"{where}: securityContext.{key} must be {value}")
    for key, value in (("readOnlyRootFilesystem", True), ("allowPrivilegeEscalation", False)):
        if sc.get(key) is not value:
            report.error(f"{where}: container securityContext.{key} must be {value}")
    if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
        report.error(f"{where}: container must drop ALL capabilities")
    if (setting("seccompProfile") or {}).get("type") != "RuntimeDefault":
        report.error(f"{where}: seccompProfile must be RuntimeDefault")

    env = resolve_env(container, objects, where, report)
    addr = env.get("HTTP_ADDR")
    if addr is None or not str(addr).endswith(f":{port}"):
        report.error(f"{where}: HTTP_ADDR must listen on :{port}, is {addr!r}")
    try:
        grace = int(env.get("SHUTDOWN_GRACE_SECS") or 30)
    except ValueError:
        report.error(f"{where}: SHUTDOWN_GRACE_SECS is not a number")
        grace = 30
    pre_stop = ((container.get("lifecycle") or {}).get("preStop") or {}).get("sleep") or {}
    needed = grace + int(pre_stop.get("seconds", 0))
    termination = pod.get("terminationGracePeriodSeconds", 30)
    if termination <= needed:
        report.error(f"{where}: terminationGracePeriodSeconds {termination} must exceed "
                     f"SHUTDOWN_GRACE_SECS {grace} + preStop sleep {needed - grace}")
    for key, value in env.items():
        check_url(key, value, objects, where, report)
    if source_root:
        known = known_env_names(source_root, folder)
        if not known:
            report.error(f"{where}: no settings found under {source_root}/{folder}")
        for key in sorted(set(env) - known):
            report.error(f"{where}: {name} reads no variable {key} (typo?)")


def check_pixpress(objects, source_root, report):
    deployments = objects.by_kind.get("Deployment", {})
    for name, (port, scales, _) in SERVICES.items():
        if name not in deployments:
            report.error(f"Deployment/{name} missing")
        else:
            check_service_deployment(name, deployments[name], objects, source_root, report)
        service = objects.get("Service", name)
        if service is None:
            report.error(f"Service/{name} missing")
        else:
            spec = service.get("spec") or {}
            if spec.get("type", "ClusterIP") != "ClusterIP":
                report.error(f"Service/{name}: type must be ClusterIP in the base")
            if port not in [p.get("port") for p in spec.get("ports") or []]:
                report.error(f"Service/{name}: no port {port}")
        for kind in ("HorizontalPodAutoscaler", "PodDisruptionBudget"):
            present = objects.get(kind, name) is not None
            if present != scales:
                report.error(f"{kind}/{name}: {'missing' if scales else 'must not exist'}")


def check_jwt(token, secret, subject):
    """Why `token` is not an HS256 token of `secret` for `subject` with role service
    valid for a year (None: it is)."""
    def unb64(part):
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    try:
        head, body, sig = token.split(".")
        header, claims = json.loads(unb64(head)), json.loads(unb64(body))
    except ValueError:
        return "is not a JWT"
    want = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    if header.get("alg") != "HS256" or not hmac.compare_digest(unb64(sig), want):
        return "is not an HS256 token signed with AUTH_JWT_SECRET"
    if "service" not in claims.get("roles", []) or claims.get("sub") != subject:
        return f"needs sub {subject} and roles: [service]"
    if claims.get("exp", 0) < time.time() + 365 * 86400:
        return "expires within a year"
    return None


def check_wiring(objects, report):
    """The services as each other's clients: one JWT secret, a service token each,
    download-service's reports allowed to reach management-api."""
    deployments = objects.by_kind.get("Deployment", {})
    quiet = Report()
    quiet.error = lambda message: None  # resolve_env's own errors are reported elsewhere
    containers, envs = {}, {}
    for name in AUTHENTICATED:
        pod = (pod_template(deployments.get(name) or {}) or {}).get("spec") or {}
        main = [c for c in pod.get("containers") or [] if c.get("name") == name]
        if main:
            containers[name] = main[0]
            envs[name] = resolve_env(main[0], objects, name, quiet)

    def source(name, key):
        for item in containers[name].get("env") or []:
            if item.get("name") == key:
                ref = (item.get("valueFrom") or {}).get("secretKeyRef") or {}
                return (ref.get("name"), ref.get("key")) if ref else ("value", item.get("value"))
        return None

    sources = {name: source(name, "AUTH_JWT_SECRET") for name in containers}
    for name, src in sources.items():
        if src is None:
            report.error(f"Deployment/{name}: AUTH_JWT_SECRET is not set (it checks bearer tokens)")
    if len({src for src in sources.values() if src}) > 1:
        report.error(f"AUTH_JWT_SECRET comes from different places: {sources}")
    for name, key in SERVICE_TOKENS:
        if name not in envs:
            continue
        if key not in envs[name]:
            report.error(f"Deployment/{name}: {key} (its service token) is not set")
            continue
        token, secret = envs[name][key], envs[name].get("AUTH_JWT_SECRET")
        if token is not None and secret is not None:
            problem = check_jwt(token, secret, name)
            if problem:
                report.error(f"Deployment/{name}: {key} {problem}")

    public = str(envs.get("management-api", {}).get("MANAGEMENT_PUBLIC_URL") or "").rstrip("/")
    allowed = str(envs.get("download-service", {}).get("MANAGEMENT_URL") or "").rstrip("/")
    if "management-api" in envs and "download-service" in envs and \
            not (public + "/").startswith(allowed + "/"):
        report.error(f"Deployment/download-service: MANAGEMENT_URL {allowed!r} is not management-api's "
                     f"MANAGEMENT_PUBLIC_URL {public!r} or a prefix of it: every report would be refused")


def check_references(docs, objects, report):
    workloads = [o for o in docs if pod_template(o) is not None]
    for obj in docs:
        kind, spec = obj["kind"], obj.get("spec") or {}
        where = ident(obj)
        if kind == "Service" and spec.get("selector"):
            targets = [w for w in workloads
                       if matches(spec["selector"], (pod_template(w).get("metadata") or {}).get("labels"))]
            if not targets:
                report.error(f"{where}: selector matches no pod template")
            for p in spec.get("ports") or []:
                target = p.get("targetPort", p.get("port"))
                for w in targets:
                    ports = [cp for c in all_containers(pod_template(w).get("spec") or {})
                             for cp in c.get("ports") or []]
                    if target not in [cp.get("name") for cp in ports] + [cp.get("containerPort") for cp in ports]:
                        report.error(f"{where}: targetPort {target} is no port of {ident(w)}")
        elif kind == "HorizontalPodAutoscaler":
            ref = spec.get("scaleTargetRef") or {}
            target = objects.get(ref.get("kind"), ref.get("name"))
            if target is None:
                report.error(f"{where}: scaleTargetRef {ref.get('kind')}/{ref.get('name')} missing")
            else:
                for c in (pod_template(target).get("spec") or {}).get("containers") or []:
                    if "cpu" not in ((c.get("resources") or {}).get("requests") or {}):
                        report.error(f"{where}: {ident(target)} container {c.get('name')} has no CPU request")
            if spec.get("minReplicas", 1) > spec.get("maxReplicas", 0):
                report.error(f"{where}: minReplicas above maxReplicas")
        elif kind == "PodDisruptionBudget":
            if not any(matches(spec.get("selector"), (pod_template(w).get("metadata") or {}).get("labels"))
                       for w in workloads):
                report.error(f"{where}: selector matches no pod template")
        template = pod_template(obj)
        if template is not None:
            if not matches(spec.get("selector"), (template.get("metadata") or {}).get("labels")):
                report.error(f"{where}: selector does not match its pod template")
            pod = template.get("spec") or {}
            pod_sc = pod.get("securityContext") or {}
            for c in all_containers(pod):
                cwhere = f"{where} container {c.get('name')}"
                if c.get("image", "").split("/")[0] != "pixpress":
                    resolve_env(c, objects, cwhere, report)
                # The "restricted" Pod Security Standard, for every pod.
                sc = c.get("securityContext") or {}
                if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
                    report.error(f"{cwhere}: runAsNonRoot must be true")
                if sc.get("allowPrivilegeEscalation") is not False:
                    report.error(f"{cwhere}: allowPrivilegeEscalation must be false")
                if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
                    report.error(f"{cwhere}: must drop ALL capabilities")
                if (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type") \
                        not in ("RuntimeDefault", "Localhost"):
                    report.error(f"{cwhere}: seccompProfile must be RuntimeDefault")
                if sc.get("privileged"):
                    report.error(f"{cwhere}: must not be privileged")
            for volume in pod.get("volumes") or []:
                claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
                if claim and objects.get("PersistentVolumeClaim", claim) is None:
                    report.error(f"{where}: PersistentVolumeClaim {claim} missing")


def check_secret_template(template_docs, docs, in_render, report):
    """The template holds placeholders only and exactly the keys pods read; with
    in_render, the rendered objects carry that Secret (generated, same keys)."""
    referenced = set()
    for obj in docs:
        template = pod_template(obj)
        for c in all_containers((template or {}).get("spec") or {}):
            for item in c.get("env") or []:
                ref = (item.get("valueFrom") or {}).get("secretKeyRef") or {}
                referenced.add((ref.get("name"), ref.get("key")))
    for obj in template_docs:
        if obj.get("kind") != "Secret":
            report.error(f"secret template: {ident(obj)} is not a Secret")
            continue
        name = obj["metadata"]["name"]
        values = dict(obj.get("stringData") or {})
        values.update(obj.get("data") or {})
        for key, value in values.items():
            if value != PLACEHOLDER:
                report.error(f"secret template: {key} must be {PLACEHOLDER}, not a value")
        rendered = [o for o in docs if o.get("kind") == "Secret" and
                    re.fullmatch(re.escape(name) + r"(-[a-z0-9]{10})?", o["metadata"]["name"])]
        if in_render and not rendered:
            report.error(f"Secret {name} (as in the template) is not in the rendered objects")
        for o in rendered:
            keys = set(o.get("data") or {}) | set(o.get("stringData") or {})
            if keys != set(values):
                report.error(f"Secret {o['metadata']['name']} has keys {sorted(keys)}, "
                             f"the template {sorted(values)}")
        if not in_render:
            for key in sorted(set(values) - {k for n, k in referenced if n == name}):
                report.error(f"secret template: no pod reads {key}")


# ---------------------------------------------------------------- commands

def cmd_validate(args):
    report = Report()
    docs = load_docs(args.file)
    check_schemas(docs, args.file, args.k8s_version, report)
    names = [(o.get("kind"), (o.get("metadata") or {}).get("namespace"),
              (o.get("metadata") or {}).get("name")) for o in docs]
    for dup in sorted({n for n in names if names.count(n) > 1}, key=str):
        report.error(f"{args.file}: {dup} defined twice")
    template = load_docs(args.secret_template) if args.secret_template else []
    if args.secret_template:
        check_secret_template(template, docs, args.secret_in_render, report)
    if not report.errors:
        objects = Objects(docs, [] if args.secret_in_render else template)
        check_pixpress(objects, args.source_root, report)
        check_wiring(objects, report)
        check_references(docs, objects, report)
    print(f"{args.file}: {len(docs)} objects, {len(report.errors)} errors "
          f"(Kubernetes {', '.join(args.k8s_version)}, strict)")
    return 1 if report.errors else 0


def cmd_schema(args):
    report = Report()
    for path in args.files:
        check_schemas(load_docs(path), path, args.k8s_version, report)
    return 1 if report.errors else 0


class UniqueKeyLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} given twice", key_node.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def cmd_sources(args):
    failures = 0
    paths = sorted(glob.glob(os.path.join(args.dir, "**/*.yaml"), recursive=True))
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                list(yaml.load_all(f, Loader=UniqueKeyLoader))
        except yaml.YAMLError as e:
            print(f"ERROR {path}: {e}")
            failures += 1
    print(f"{len(paths)} YAML files under {args.dir}, {failures} errors")
    return 1 if failures else 0


def cmd_compare(args):
    def index(path):
        return {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o
                for o in load_docs(path)}
    a, b = index(args.a), index(args.b)
    differences = sorted(set(a) ^ set(b), key=str)
    differences += sorted((k for k in set(a) & set(b) if a[k] != b[k]), key=str)
    for key in differences:
        print(f"ERROR {args.a} and {args.b} differ on {key}")
    return 1 if differences else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    validate = sub.add_parser("validate")
    validate.add_argument("--k8s-version", action="append")
    validate.add_argument("--secret-template")
    validate.add_argument("--secret-in-render", action="store_true",
                          help="the template's Secret must be among the rendered objects")
    validate.add_argument("--source-root")
    validate.add_argument("file")
    schema = sub.add_parser("schema")
    schema.add_argument("--k8s-version", action="append")
    schema.add_argument("files", nargs="+")
    sources = sub.add_parser("sources")
    sources.add_argument("dir")
    compare = sub.add_parser("compare")
    compare.add_argument("a")
    compare.add_argument("b")
    args = parser.parse_args()
    if getattr(args, "k8s_version", None) is None and args.command in ("validate", "schema"):
        args.k8s_version = ["1.30"]
    return {"validate": cmd_validate, "schema": cmd_schema, "sources": cmd_sources,
            "compare": cmd_compare}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
