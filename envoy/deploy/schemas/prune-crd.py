#!/usr/bin/env python3
"""Regenerates the small schemas in this directory (a maintainer's tool; the tests only read the
JSON files). For each custom resource kind used under envoy/deploy, it takes the published CRD's
openAPIV3Schema and keeps only the properties the manifests use, with their published types,
enums, patterns, bounds and `required` lists; descriptions and x-kubernetes-* extensions are
dropped, and objects with listed properties get `additionalProperties: false` (standing in for
the API server's strict field validation, which refuses unknown fields). A manifest that uses a
field the published schema does not have makes this script fail.

usage: prune-crd.py CRD_FILE... (the published CRD YAML files, see README.md)
Core kinds (Namespace, ConfigMap, Service, Deployment, NetworkPolicy) are written by hand.
"""
import json
import pathlib
import sys

import yaml

HERE = pathlib.Path(__file__).resolve().parent
DEPLOY = HERE.parent
KEEP = ("type", "required", "enum", "pattern", "minLength", "maxLength", "minimum", "maximum",
        "minItems", "maxItems", "maxProperties", "const")
COMBINATORS = ("oneOf", "anyOf", "allOf", "not")


def strip(schema):
    """A published subschema without descriptions and extensions, kept whole."""
    if isinstance(schema, dict):
        return {k: strip(v) for k, v in schema.items()
                if k in KEEP or k in COMBINATORS or k in ("properties", "items", "additionalProperties")}
    if isinstance(schema, list):
        return [strip(x) for x in schema]
    return schema


def prune(schema, instances, where):
    out = {k: schema[k] for k in KEEP if k in schema}
    for k in COMBINATORS:
        if k in schema:
            out[k] = strip(schema[k])
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return out  # free-form (pluginConfig, config, patch values): checked elsewhere
    if schema.get("x-kubernetes-int-or-string"):
        return {"anyOf": [{"type": "integer"}, {"type": "string"}]}
    dicts = [i for i in instances if isinstance(i, dict)]
    lists = [i for i in instances if isinstance(i, list)]
    if "properties" in schema and dicts:
        keys = sorted({k for d in dicts for k in d})
        props = {}
        for key in keys:
            if key not in schema["properties"]:
                sys.exit(f"{where}.{key}: not in the published schema")
            props[key] = prune(schema["properties"][key], [d[key] for d in dicts if key in d],
                               f"{where}.{key}")
        out["properties"] = props
        out["additionalProperties"] = False
    elif "additionalProperties" in schema:
        out["additionalProperties"] = strip(schema["additionalProperties"])
    if "items" in schema and lists:
        out["items"] = prune(schema["items"], [x for l in lists for x in l], f"{where}[]")
    return out


METADATA = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 253,
                 "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"},
        "namespace": {"type": "string", "minLength": 1, "maxLength": 63,
                      "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "labels": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 63}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


def manifests():
    for path in sorted(DEPLOY.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield path, doc


def main(crd_files):
    used = {}
    for path, doc in manifests():
        used.setdefault((doc["apiVersion"], doc["kind"]), []).append(doc)
    for crd_file in crd_files:
        for crd in yaml.safe_load_all(pathlib.Path(crd_file).read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                api_version = f"{group}/{version['name']}"
                docs = used.get((api_version, kind))
                if not docs:
                    continue
                published = version["schema"]["openAPIV3Schema"]
                spec = prune(published["properties"]["spec"], [d["spec"] for d in docs], "spec")
                schema = {
                    "$schema": "https://json-schema.org/draft/2020-12/schema",
                    "$comment": f"{crd['metadata']['name']} {version['name']}: the parts of the "
                                "published CRD schema that envoy/deploy uses (README.md)",
                    "type": "object",
                    "required": ["apiVersion", "kind", "metadata", "spec"],
                    "additionalProperties": False,
                    "properties": {
                        "apiVersion": {"const": api_version},
                        "kind": {"const": kind},
                        "metadata": METADATA,
                        "spec": spec,
                    },
                }
                out = HERE / f"{group}_{version['name']}_{kind}.json"
                out.write_text(json.dumps(schema, indent=1) + "\n")
                print(f"wrote {out.name}")


if __name__ == "__main__":
    main(sys.argv[1:])
