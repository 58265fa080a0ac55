"""The chart's values: values.schema.json rejects bad input with a clear message, covers
every value, and every value in values.yaml says what it does."""

import json
import re
import subprocess

import jsonschema
import pytest
import yaml

from .support.helm import CHART, RELEASE

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
DEFAULTS = yaml.safe_load((CHART / "values.yaml").read_text())


def template(helm, tmp_path, values: dict) -> subprocess.CompletedProcess:
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    return subprocess.run(
        [str(helm), "template", RELEASE, str(CHART), "--values", str(values_file)],
        capture_output=True,
        text=True,
        timeout=120,
    )


# (values, a fragment the error must contain: where the problem is)
BAD_VALUES = {
    "unknown top-level key": ({"hubb": {}}, "additional properties 'hubb'"),
    "unknown nested key": ({"hub": {"baseURL": "/"}}, "additional properties 'baseURL'"),
    "wrong type": ({"singleuser": {"previewPort": "3000"}}, "/singleuser/previewPort"),
    "preview on jupyter's port": ({"singleuser": {"previewPort": 8888}}, "/singleuser/previewPort"),
    "base url without slash": ({"hub": {"baseUrl": "ide"}}, "/hub/baseUrl"),
    "subdomain host without scheme": (
        {"hub": {"subdomainHost": "codepilot.example.com"}},
        "/hub/subdomainHost",
    ),
    "unknown credentials mode": ({"s3": {"credentials": {"mode": "open"}}}, "/s3/credentials/mode"),
    "sts lifetime too long": (
        {"s3": {"credentials": {"durationSeconds": 86400}}},
        "/s3/credentials/durationSeconds",
    ),
    "bad bucket name": ({"s3": {"bucket": "My_Bucket"}}, "/s3/bucket"),
    "wildcard in the prefix": ({"s3": {"prefix": "code*"}}, "/s3/prefix"),
    "memory with a k8s suffix the hub does not parse": (
        {"singleuser": {"memory": {"guarantee": "512Mi", "limit": "1G"}}},
        "/singleuser/memory/guarantee",
    ),
    "negative cpu": ({"singleuser": {"cpu": {"guarantee": -1, "limit": 1}}}, "/singleuser/cpu"),
    "size without a name": (
        {
            "singleuser": {
                "sizes": [
                    {
                        "displayName": "x",
                        "cpu": {"guarantee": 1, "limit": 1},
                        "memory": {"guarantee": "1G", "limit": "1G"},
                    }
                ]
            }
        },
        "/singleuser/sizes/0",
    ),
    "group with an unknown role": (
        {"hub": {"groups": {"cs101": {"teachers": ["ada"], "tas": ["bob"]}}}},
        "additional properties 'tas'",
    ),
    "teachers as one string": ({"hub": {"teachers": "ana"}}, "/hub/teachers"),
    "empty teacher name": ({"hub": {"teachers": [""]}}, "/hub/teachers/0"),
    "teacher named twice": ({"hub": {"teachers": ["ana", "ana"]}}, "/hub/teachers"),
    "short cookie secret": ({"hub": {"cookieSecret": "abc"}}, "/hub/cookieSecret"),
    "short proxy token": ({"proxy": {"secretToken": "short"}}, "/proxy/secretToken"),
    "bad pull policy": ({"hub": {"image": {"pullPolicy": "Sometimes"}}}, "/hub/image/pullPolicy"),
    "image tag with spaces": ({"singleuser": {"image": {"tag": "1 0"}}}, "/singleuser/image/tag"),
    "bad service type": ({"proxy": {"service": {"type": "External"}}}, "/proxy/service/type"),
    "bad cidr": (
        {"networkPolicy": {"singleuser": {"privateRanges": ["ten"]}}},
        "/networkPolicy/singleuser/privateRanges/0",
    ),
    "list where a map goes": ({"singleuser": {"extraEnv": ["A=1"]}}, "/singleuser/extraEnv"),
    "non-string env value": (
        {"singleuser": {"extraEnv": {"DEBUG": 1}}},
        "/singleuser/extraEnv/DEBUG",
    ),
    "culler timeout as text": ({"culler": {"timeout": "1h"}}, "/culler/timeout"),
}


@pytest.mark.integration
@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_schema_rejects_bad_values(helm, tmp_path, case):
    values, fragment = BAD_VALUES[case]
    result = template(helm, tmp_path, values)
    assert result.returncode != 0, f"{case}: accepted"
    assert (
        "values don't meet the specifications of the schema" in result.stderr
        or "codepilot:" in result.stderr
    )
    assert fragment in result.stderr, result.stderr


# Mistakes across values that the templates reject (the schema cannot say them).
BAD_COMBINATIONS = {
    "static mode without keys": (
        {"s3": {"credentials": {"mode": "static"}}},
        "s3.credentials.mode=static",
    ),
    "sts without a role": ({"s3": {"bucket": "workspaces"}}, "needs s3.credentials.roleArn"),
    "dns to the metadata range": (
        {"networkPolicy": {"dnsRanges": ["169.254.0.0/16"]}},
        "holds the cloud metadata address",
    ),
    "dns to everywhere": (
        {"networkPolicy": {"dnsRanges": ["0.0.0.0/0"]}},
        "holds the cloud metadata address",
    ),
    "key id without the secret": ({"s3": {"accessKeyId": "AKIA"}}, "s3.secretAccessKey is empty"),
    "secret without the key id": ({"s3": {"secretAccessKey": "x"}}, "s3.accessKeyId is empty"),
}


@pytest.mark.integration
@pytest.mark.parametrize("case", sorted(BAD_COMBINATIONS))
def test_templates_reject_inconsistent_values(helm, tmp_path, case):
    values, fragment = BAD_COMBINATIONS[case]
    result = template(helm, tmp_path, values)
    assert result.returncode != 0
    assert fragment in result.stderr, result.stderr


@pytest.mark.integration
def test_good_values_pass(helm, tmp_path):
    result = template(
        helm,
        tmp_path,
        {
            "hub": {"subdomainHost": "https://codepilot.example.com:8443/", "baseUrl": "/a/b/"},
            "singleuser": {"image": {"tag": "0.1.0@sha256:" + "0" * 64}},
            "networkPolicy": {
                "dnsRanges": ["10.96.0.10/32", "169.254.20.10/32", "fd00::/8"],
                "singleuser": {"privateRanges": ["fd00::/8", "10.0.0.0/8"]},
            },
        },
    )
    assert result.returncode == 0, result.stderr


def test_defaults_satisfy_the_schema():
    jsonschema.validate(DEFAULTS, SCHEMA, cls=jsonschema.Draft7Validator)


def resolve(node: dict) -> dict:
    while "$ref" in node:
        node = SCHEMA["definitions"][node["$ref"].rsplit("/", 1)[1]]
    return node


def uncovered_paths(value, node, path="") -> list[str]:
    """Paths of values.yaml that the schema does not describe by name or by a typed map."""
    node = resolve(node)
    missing = []
    if isinstance(value, dict):
        properties = node.get("properties", {})
        for key, child in value.items():
            if key in properties:
                missing += uncovered_paths(child, properties[key], f"{path}.{key}")
            elif isinstance(node.get("additionalProperties"), dict):
                missing += uncovered_paths(child, node["additionalProperties"], f"{path}.{key}")
            elif node.get("type") == "object" and "properties" not in node:
                continue  # a free-form map (authenticator traits, annotations)
            else:
                missing.append(f"{path}.{key}")
    elif isinstance(value, list) and "items" in node:
        for index, item in enumerate(value):
            missing += uncovered_paths(item, node["items"], f"{path}[{index}]")
    return missing


def test_schema_covers_every_value():
    assert uncovered_paths(DEFAULTS, SCHEMA) == []


def closed_objects_missing(node, path="$") -> list[str]:
    """Objects with named properties that still accept unknown keys."""
    problems = []
    if isinstance(node, dict):
        if "properties" in node and node.get("additionalProperties") is not False:
            problems.append(path)
        for key, child in node.items():
            problems += closed_objects_missing(child, f"{path}.{key}")
    elif isinstance(node, list):
        for index, child in enumerate(node):
            problems += closed_objects_missing(child, f"{path}[{index}]")
    return problems


def test_schema_rejects_unknown_keys_everywhere():
    assert closed_objects_missing(SCHEMA) == []


# Kubernetes objects handed to a pod spec as they are; commented as a whole.
PASSED_THROUGH = {"resources"}


def test_every_value_has_a_comment():
    """Each value of values.yaml has a comment line above it (sections and list items aside)."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    uncommented = []
    list_item_indent = None
    opaque_indent = None  # inside a Kubernetes object passed through whole (resources)
    for number, line in enumerate(lines):
        match = re.match(r"^(\s*)(- )?([A-Za-z][A-Za-z0-9]*):", line)
        if not match:
            continue
        indent = len(match.group(1))
        if opaque_indent is not None and indent > opaque_indent:
            continue
        opaque_indent = indent if match.group(3) in PASSED_THROUGH else None
        if match.group(2):  # a key of a list item (e.g. one of singleuser.sizes)
            list_item_indent = indent
            continue
        if list_item_indent is not None and indent > list_item_indent:
            continue
        list_item_indent = None
        following = next((lines[i] for i in range(number + 1, len(lines)) if lines[i].strip()), "")
        following_indent = len(following) - len(following.lstrip())
        is_section = line.rstrip().endswith(":") and following_indent > indent
        if is_section and not following.lstrip().startswith("- "):
            continue  # a section: its values carry the comments
        previous = next((lines[i] for i in range(number - 1, -1, -1) if lines[i].strip()), "")
        if not previous.strip().startswith("#"):
            uncommented.append(f"{number + 1}: {line.strip()}")
    assert uncommented == []
