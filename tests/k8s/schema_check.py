"""Checks Kubernetes manifests offline against the API's own object model.

`kubectl apply --dry-run=client` needs an API server for its OpenAPI document, so this walks
each object through the model classes of the Kubernetes Python client (Debian's
python3-kubernetes): every field must be one the API type declares, with the declared kind of
value, and every required field must be there. Prints the objects as JSON (a list) for the
caller's own checks; exits 1 with one line per problem.

usage: schema_check.py MANIFEST...
"""

import json
import re
import sys

import yaml
from kubernetes import client

# apiVersion/kind -> the client's model class name
KINDS = {
    ("v1", "ServiceAccount"): "V1ServiceAccount",
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("apps/v1", "DaemonSet"): "V1DaemonSet",
}
SCALARS = {"str": str, "bool": bool, "int": int, "float": (int, float), "object": object}


def required_fields(cls):
    """Fields whose setter refuses None: the API's required ones."""
    required = []
    for attr in cls.openapi_types:
        obj = cls.__new__(cls)
        obj.local_vars_configuration = client.Configuration()
        obj.local_vars_configuration.client_side_validation = True
        try:
            setattr(obj, attr, None)
        except ValueError:
            required.append(attr)
    return required


def check(value, type_name, path, problems):
    list_type = re.fullmatch(r"list\[(.+)\]", type_name)
    dict_type = re.fullmatch(r"dict\(str, (.+)\)", type_name)
    if list_type:
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list, got {value!r}")
            return
        for i, item in enumerate(value):
            check(item, list_type.group(1), f"{path}[{i}]", problems)
    elif dict_type:
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a map, got {value!r}")
            return
        for key, item in value.items():
            check(item, dict_type.group(1), f"{path}.{key}", problems)
    elif type_name in SCALARS:
        if type_name == "str" and not isinstance(value, str):
            problems.append(f"{path}: expected a string, got {value!r}")
        elif type_name != "str" and not isinstance(value, SCALARS[type_name]):
            problems.append(f"{path}: expected {type_name}, got {value!r}")
        elif type_name == "int" and isinstance(value, bool):
            problems.append(f"{path}: expected int, got {value!r}")
    else:
        cls = getattr(client, type_name)
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a {type_name} object, got {value!r}")
            return
        by_json = {json_name: attr for attr, json_name in cls.attribute_map.items()}
        for key, item in value.items():
            if key not in by_json:
                problems.append(f"{path}.{key}: not a field of {type_name}")
                continue
            check(item, cls.openapi_types[by_json[key]], f"{path}.{key}", problems)
        for attr in required_fields(cls):
            if cls.attribute_map[attr] not in value:
                problems.append(f"{path}: {type_name} needs {cls.attribute_map[attr]}")


def main():
    problems = []
    objects = []
    for manifest in sys.argv[1:]:
        with open(manifest) as f:
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
        for i, doc in enumerate(docs):
            key = (doc.get("apiVersion"), doc.get("kind"))
            where = f"{manifest}#{i} {key[1]}"
            if key not in KINDS:
                problems.append(f"{where}: no model for apiVersion/kind {key}")
                continue
            check(doc, KINDS[key], where, problems)
            objects.append(doc)
    for problem in problems:
        print(problem, file=sys.stderr)
    json.dump(objects, sys.stdout)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
