#!/usr/bin/env python3
"""A minimal kustomize, for checking k8s/ where no kustomize binary is installed.

Usage: kustomize_lite.py DIR  (prints the rendered manifests, like `kustomize build DIR`)

It implements only what pixpress's kustomizations use, and refuses anything else
rather than render it differently from kustomize:
  resources (files and directories), namespace, images (newName/newTag/digest),
  patches (strategic-merge patches from `path` or inline `patch`, matched by kind and
  name), configMapGenerator / secretGenerator (literals, envs, files; behavior create,
  merge, replace; the content-hash name suffix and the references to it), and
  generatorOptions.
.ci/check-k8s.sh compares its output with real kustomize's whenever one is installed.
"""

import base64
import copy
import hashlib
import json
import os
import re
import sys

import yaml

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
KNOWN_FIELDS = {
    "apiVersion", "kind", "resources", "namespace", "images", "patches",
    "configMapGenerator", "secretGenerator", "generatorOptions",
}
GENERATOR_FIELDS = {
    "name", "behavior", "literals", "envs", "files", "options", "type",
}
GENERATOR_OPTIONS = {"disableNameSuffixHash", "labels", "annotations"}
CLUSTER_SCOPED = {
    "Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
    "PersistentVolume", "StorageClass", "PriorityClass", "IngressClass",
    "RuntimeClass", "CSIDriver", "APIService", "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
}
# Strategic-merge keys of the Kubernetes lists a patch may merge into; other lists are
# replaced whole, as kustomize does for lists without a merge key.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "imagePullSecrets": "name",
}
# Kustomize's legacy output order.
KIND_ORDER = [
    "Namespace", "ResourceQuota", "StorageClass", "CustomResourceDefinition",
    "ServiceAccount", "PodSecurityPolicy", "Role", "ClusterRole", "RoleBinding",
    "ClusterRoleBinding", "ConfigMap", "Secret", "Endpoints", "Service", "LimitRange",
    "PriorityClass", "PersistentVolume", "PersistentVolumeClaim", "Deployment",
    "StatefulSet", "CronJob", "PodDisruptionBudget",
]
KIND_ORDER_LAST = ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"]
# Internal bookkeeping keys, removed before output.
GEN = "__generated__"


class KustomizeError(Exception):
    pass


def load_yaml_docs(path):
    with open(path, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    for d in docs:
        if not isinstance(d, dict) or "kind" not in d or "metadata" not in d:
            raise KustomizeError(f"{path}: not a Kubernetes object: {str(d)[:80]}")
    return docs


def find_kustomization(directory):
    for name in KUSTOMIZATION_FILES:
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    raise KustomizeError(f"{directory}: no kustomization file")


def key_of(obj):
    return (obj["kind"], obj["metadata"]["name"])


# ---------------------------------------------------------------- generators

def parse_env_file(path):
    """kustomize's env-file rules (api/kv): '#' comments, KEY=VALUE, value verbatim."""
    pairs = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f.read().splitlines()):
            if number == 0 and line.startswith("\ufeff"):
                line = line[1:]
            line = line.lstrip()
            if not line or line.startswith("#"):
                continue
            key, _, value = line.partition("=")
            if not re.fullmatch(r"[-._a-zA-Z][-._a-zA-Z0-9]*", key):
                raise KustomizeError(f"{path}: {key!r} is not a valid variable name")
            pairs.append((key, value))
    return pairs


def remove_quotes(value):
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def generator_pairs(gen, base_dir):
    pairs = []
    for env in gen.get("envs") or []:
        pairs += parse_env_file(os.path.join(base_dir, env))
    for literal in gen.get("literals") or []:
        key, sep, value = literal.partition("=")
        if not sep or not key:
            raise KustomizeError(f"invalid literal {literal!r}, expected key=value")
        pairs.append((key, remove_quotes(value)))
    for source in gen.get("files") or []:
        key, sep, path = source.partition("=")
        if not sep:
            key, path = os.path.basename(source), source
        with open(os.path.join(base_dir, path), encoding="utf-8") as f:
            pairs.append((key, f.read()))
    data = {}
    for key, value in pairs:
        if key in data:
            raise KustomizeError(f"generator {gen['name']}: key {key} given twice")
        data[key] = value
    return data


def generate(kind, gen, base_dir, options):
    unknown = set(gen) - GENERATOR_FIELDS
    if unknown:
        raise KustomizeError(f"{kind} generator {gen.get('name')}: unsupported {sorted(unknown)}")
    opts = dict(options or {})
    opts.update(gen.get("options") or {})
    unknown = set(opts) - GENERATOR_OPTIONS
    if unknown:
        raise KustomizeError(f"generator options {sorted(unknown)} unsupported")
    data = generator_pairs(gen, base_dir)
    obj = {"apiVersion": "v1", "kind": kind, "metadata": {"name": gen["name"]}}
    if opts.get("labels"):
        obj["metadata"]["labels"] = dict(opts["labels"])
    if opts.get("annotations"):
        obj["metadata"]["annotations"] = dict(opts["annotations"])
    if kind == "Secret":
        obj["type"] = gen.get("type", "Opaque")
        obj["data"] = {k: encode_base64(v) for k, v in data.items()}
    else:
        obj["data"] = data
    obj[GEN] = {"hash": not opts.get("disableNameSuffixHash", False)}
    return obj


def apply_generator(resources, kind, gen, base_dir, options):
    new = generate(kind, gen, base_dir, options)
    behavior = gen.get("behavior", "create")
    existing = [r for r in resources if key_of(r) == key_of(new)]
    if behavior == "create":
        if existing:
            raise KustomizeError(f"{kind} {gen['name']} exists: use behavior merge/replace")
        resources.append(new)
    elif behavior in ("merge", "replace"):
        if not existing:
            raise KustomizeError(f"{kind} {gen['name']}: nothing to {behavior}")
        old = existing[0]
        if behavior == "merge":
            old.setdefault("data", {}).update(new["data"])
            for field in ("labels", "annotations"):
                if field in new["metadata"]:
                    old["metadata"].setdefault(field, {}).update(new["metadata"][field])
        else:
            old["data"] = new["data"]
            # Only a generated object keeps its hash suffix.
            new[GEN]["hash"] = new[GEN]["hash"] and GEN in old
            old[GEN] = new[GEN]
    else:
        raise KustomizeError(f"{kind} {gen['name']}: unknown behavior {behavior}")


def encode_base64(value):
    """kyaml's encodeBase64: lines of 70 characters, each ended by a newline, once the
    encoding is 70 characters or longer."""
    encoded = base64.b64encode(value.encode()).decode()
    if len(encoded) < 70:
        return encoded
    return "".join(encoded[i:i + 70] + "\n" for i in range(0, len(encoded), 70))


def go_json(value):
    """What Go's json.Marshal writes for this value (sorted keys, HTML-safe)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text


def name_hash(obj):
    """kustomize's api/hasher: the first 10 hex digits of a sha256, a few letters swapped.

    Its "name" is always empty: the hasher looks up the path "metadata/name" as a single
    field name, which no object has (kustomize v5 behaves so; matched against it)."""
    encoded = {"kind": obj["kind"], "name": "", "data": obj.get("data") or ""}
    if obj["kind"] == "Secret":
        encoded["type"] = obj.get("type", "")
        if obj.get("stringData"):
            encoded["stringData"] = obj["stringData"]
    elif obj.get("binaryData"):
        encoded["binaryData"] = obj["binaryData"]
    digest = hashlib.sha256(go_json(encoded).encode()).hexdigest()[:10]
    return digest.translate(str.maketrans("013ae", "ghkmt"))


# ---------------------------------------------------------------- transformers

def strip_directives(value):
    if isinstance(value, dict):
        return {k: strip_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [strip_directives(v) for v in value]
    return value


def merge_list(field, base, patch):
    merge_key = MERGE_KEYS.get(field)
    if not merge_key or not all(isinstance(i, dict) and merge_key in i for i in base + patch):
        return strip_directives(patch)
    result = copy.deepcopy(base)
    for item in patch:
        matches = [i for i, b in enumerate(result) if b[merge_key] == item[merge_key]]
        if item.get("$patch") == "delete":
            result = [b for b in result if b[merge_key] != item[merge_key]]
        elif matches:
            result[matches[0]] = strategic_merge(result[matches[0]], item)
        else:
            result.append(strip_directives(item))
    return result


def strategic_merge(base, patch):
    if patch.get("$patch") == "replace":
        return strip_directives(patch)
    for key in patch:
        if key.startswith("$") and key != "$patch":
            raise KustomizeError(f"patch directive {key} unsupported")
    result = copy.deepcopy(base)
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = strategic_merge(result[key], value)
        elif isinstance(value, list) and isinstance(result.get(key), list):
            result[key] = merge_list(key, result[key], value)
        else:
            result[key] = strip_directives(value)
    return result


def apply_patches(resources, patches, base_dir):
    for entry in patches:
        unknown = set(entry) - {"path", "patch"}
        if unknown:
            raise KustomizeError(f"patch fields {sorted(unknown)} unsupported")
        if "path" in entry:
            docs = load_yaml_docs(os.path.join(base_dir, entry["path"]))
        else:
            docs = [d for d in yaml.safe_load_all(entry["patch"]) if d is not None]
        for patch in docs:
            if not isinstance(patch, dict) or "kind" not in patch:
                raise KustomizeError("only strategic-merge patches are supported")
            targets = [i for i, r in enumerate(resources) if key_of(r) == key_of(patch)]
            if not targets:
                raise KustomizeError(f"patch target {key_of(patch)} not found")
            for i in targets:
                if patch.get("$patch") == "delete":
                    resources[i] = None
                else:
                    internal = resources[i].pop(GEN, None)
                    resources[i] = strategic_merge(resources[i], patch)
                    if internal is not None:
                        resources[i][GEN] = internal
        resources[:] = [r for r in resources if r is not None]


def pod_specs(obj):
    spec = obj.get("spec") or {}
    kind = obj["kind"]
    if kind == "Pod":
        yield spec
    elif kind == "CronJob":
        yield spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec", {})
    elif kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job",
                  "ReplicationController"):
        yield spec.get("template", {}).get("spec", {})


def containers(pod_spec):
    for field in ("initContainers", "containers", "ephemeralContainers"):
        yield from pod_spec.get(field) or []


def split_image(image):
    name, digest = (image.split("@", 1) + [None])[:2]
    tag = None
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1:]
    return name, tag, digest


def apply_images(resources, images):
    for entry in images:
        unknown = set(entry) - {"name", "newName", "newTag", "digest"}
        if unknown:
            raise KustomizeError(f"image fields {sorted(unknown)} unsupported")
    for obj in resources:
        for pod in pod_specs(obj):
            for container in containers(pod):
                name, tag, digest = split_image(container.get("image", ""))
                for entry in images:
                    if entry["name"] != name:
                        continue
                    name = entry.get("newName", name)
                    if "newTag" in entry:
                        tag, digest = str(entry["newTag"]), None
                    if "digest" in entry:
                        tag, digest = None, entry["digest"]
                    container["image"] = name + (f":{tag}" if tag else "") + (
                        f"@{digest}" if digest else "")
                    break


def apply_namespace(resources, namespace):
    for obj in resources:
        if obj["kind"] not in CLUSTER_SCOPED:
            obj["metadata"]["namespace"] = namespace


def rename_references(resources, renamed):
    """Point every pod's ConfigMap/Secret references at the suffixed names."""
    def fix(ref, field, kind):
        if ref and ref.get(field) and (kind, ref[field]) in renamed:
            ref[field] = renamed[(kind, ref[field])]

    for obj in resources:
        for pod in pod_specs(obj):
            for secret in pod.get("imagePullSecrets") or []:
                fix(secret, "name", "Secret")
            for volume in pod.get("volumes") or []:
                fix(volume.get("configMap"), "name", "ConfigMap")
                fix(volume.get("secret"), "secretName", "Secret")
                for source in (volume.get("projected") or {}).get("sources") or []:
                    fix(source.get("configMap"), "name", "ConfigMap")
                    fix(source.get("secret"), "name", "Secret")
            for container in containers(pod):
                for env in container.get("env") or []:
                    value_from = env.get("valueFrom") or {}
                    fix(value_from.get("configMapKeyRef"), "name", "ConfigMap")
                    fix(value_from.get("secretKeyRef"), "name", "Secret")
                for source in container.get("envFrom") or []:
                    fix(source.get("configMapRef"), "name", "ConfigMap")
                    fix(source.get("secretRef"), "name", "Secret")


# ---------------------------------------------------------------- build

def accumulate(directory, seen=()):
    directory = os.path.realpath(directory)
    if directory in seen:
        raise KustomizeError(f"{directory}: cycle in resources")
    path = find_kustomization(directory)
    with open(path, encoding="utf-8") as f:
        kustomization = yaml.safe_load(f) or {}
    unknown = set(kustomization) - KNOWN_FIELDS
    if unknown:
        raise KustomizeError(f"{path}: fields {sorted(unknown)} not supported here")

    resources = []
    for entry in kustomization.get("resources") or []:
        target = os.path.join(directory, entry)
        if os.path.isdir(target):
            resources += accumulate(target, seen + (directory,))
        else:
            resources += load_yaml_docs(target)
    options = kustomization.get("generatorOptions")
    for gen in kustomization.get("configMapGenerator") or []:
        apply_generator(resources, "ConfigMap", gen, directory, options)
    for gen in kustomization.get("secretGenerator") or []:
        apply_generator(resources, "Secret", gen, directory, options)
    apply_patches(resources, kustomization.get("patches") or [], directory)
    if kustomization.get("namespace"):
        apply_namespace(resources, kustomization["namespace"])
    apply_images(resources, kustomization.get("images") or [])

    seen_keys = set()
    for obj in resources:
        k = (obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"])
        if k in seen_keys:
            raise KustomizeError(f"{directory}: {k} defined twice")
        seen_keys.add(k)
    return resources


def build(directory):
    resources = accumulate(directory)
    renamed = {}
    for obj in resources:
        internal = obj.pop(GEN, None)
        if internal and internal["hash"]:
            name = obj["metadata"]["name"]
            obj["metadata"]["name"] = f"{name}-{name_hash(obj)}"
            renamed[(obj["kind"], name)] = obj["metadata"]["name"]
    rename_references(resources, renamed)

    def order(obj):
        kind = obj["kind"]
        if kind in KIND_ORDER:
            rank = KIND_ORDER.index(kind)
        elif kind in KIND_ORDER_LAST:
            rank = 1000 + KIND_ORDER_LAST.index(kind)
        else:
            rank = len(KIND_ORDER)
        return (rank, kind, obj["metadata"].get("namespace") or "", obj["metadata"]["name"])

    return sorted(resources, key=order)


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    try:
        resources = build(argv[1])
    except (KustomizeError, OSError, yaml.YAMLError) as e:
        print(f"kustomize_lite: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(yaml.safe_dump_all(resources, sort_keys=True, default_flow_style=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
