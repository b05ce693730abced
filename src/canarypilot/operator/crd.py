"""The CanaryRelease CustomResourceDefinition, built here and written to deploy/operator/.

Python is the source of truth so the schema cannot drift from what the operator reads:
the structural parts mirror resource.py, and the ``policy`` sections are generated from
the settings models the rollout file uses (types, bounds, enums and descriptions), so a
policy the API server accepts is one ``canarypilot rollout`` would accept too, as far as
OpenAPI can say it. ``canarypilot operator crd`` prints it; a test keeps the committed
file equal to this output and applies it to a real API server.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel

from canarypilot.operator.resource import POLICY_SECTIONS
from canarypilot.policy import Settings
from canarypilot.render.operator import GROUP, KIND, PLURAL, VERSION

HISTORY_LIMIT = 20

_STRING = {"type": "string"}
_NAME = {"type": "string", "minLength": 1, "maxLength": 253}


def _obj(required: list[str] | None = None, **properties: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


def _described(schema: dict[str, Any], text: str) -> dict[str, Any]:
    return {**schema, "description": text}


def policy_schema() -> dict[str, Any]:
    """``spec.policy``: one object per settings section, each field typed and bounded."""
    sections: dict[str, Any] = {}
    for section in POLICY_SECTIONS:
        model = Settings.model_fields[section].annotation
        assert isinstance(model, type) and issubclass(model, BaseModel)
        raw = model.model_json_schema()
        defs = raw.get("$defs", {})
        properties = {key: _openapi(value, defs) for key, value in raw.get("properties", {}).items()}
        sections[section] = {
            "type": "object",
            "description": (model.__doc__ or "").strip().splitlines()[0],
            "properties": properties,
        }
    return _described(
        {"type": "object", "properties": sections},
        "The rollout file's settings sections (docs/configuration.md), with their defaults.",
    )


def _openapi(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """A JSON-schema property from pydantic as a structural OpenAPI v3 property."""
    if "$ref" in schema:
        return _openapi({**defs[schema["$ref"].rsplit("/", 1)[-1]], **_keep(schema)}, defs)
    choices = schema.get("anyOf")
    if choices:
        real = [c for c in choices if c.get("type") != "null"]
        if len(real) == 1:
            return {**_openapi({**real[0], **_keep(schema)}, defs), "nullable": True}
        return {"x-kubernetes-preserve-unknown-fields": True, **_keep(schema)}
    kind = schema.get("type")
    out: dict[str, Any] = _keep(schema)
    if kind in ("number", "integer", "boolean", "string"):
        out["type"] = kind
        for bound in ("minimum", "maximum", "minLength", "maxLength", "enum"):
            if bound in schema:
                out[bound] = schema[bound]
        for exclusive, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            if exclusive in schema:
                out[plain], out[exclusive] = schema[exclusive], True
        return out
    if kind == "array" and "items" in schema:
        return {**out, "type": "array", "items": _openapi(schema["items"], defs)}
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return {
            **out,
            "type": "object",
            "additionalProperties": _openapi(schema["additionalProperties"], defs),
        }
    return {"x-kubernetes-preserve-unknown-fields": True, **out}


def _keep(schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": schema["description"]} if "description" in schema else {}


def spec_schema() -> dict[str, Any]:
    secret = _obj(["name"], name=_NAME, key=_described(_STRING, "Key in the Secret (default token)."))
    return _obj(
        ["workload", "service", "router", "metrics"],
        workload=_obj(["deployment"], deployment=_described(_NAME, "The Deployment being released.")),
        service=_obj(
            ["name", "port"],
            name=_described(_NAME, "The stable Service; the operator adds <name>-canary."),
            port={"type": "integer", "minimum": 1, "maximum": 65535},
        ),
        router=_described(
            _obj(
                ingress=_obj(["name"], name=_described(_NAME, "The stable nginx Ingress.")),
                httpRoute=_obj(["name"], name=_NAME, rule={"type": "integer", "minimum": 0}),
            ),
            "Exactly one of ingress (nginx-ingress canary annotations) or httpRoute (Gateway API).",
        )
        | {"minProperties": 1, "maxProperties": 1},
        metrics=_described(
            _obj(
                prometheus=_obj(
                    ["url"],
                    url={"type": "string", "pattern": "^https?://"},
                    authSecretRef=_described(secret, "A Secret key holding a bearer token."),
                ),
                scrape=_obj(
                    ["targets"],
                    targets={
                        "type": "object",
                        "description": "host:port of /metrics per version label.",
                        "additionalProperties": {"type": "array", "items": _STRING},
                    },
                    intervalSeconds={"type": "number", "minimum": 0, "exclusiveMinimum": True},
                ),
            ),
            "Exactly one of prometheus or scrape (the embedded scraper).",
        )
        | {"minProperties": 1, "maxProperties": 1},
        analysis=_described(
            _obj(service=_NAME, canaryVersion=_NAME, stableVersion=_NAME),
            "The labels the metrics carry: job (default: the Service name) and the two versions.",
        ),
        policy=policy_schema(),
        notifications=_obj(
            webhooks={
                "type": "array",
                "maxItems": 10,
                "items": _obj(
                    ["url"],
                    url={"type": "string", "pattern": "^https?://"},
                    format={"type": "string", "enum": ["json", "slack"]},
                ),
            }
        ),
    )


def status_schema() -> dict[str, Any]:
    condition = _obj(
        ["type", "status"],
        type=_STRING,
        status={"type": "string", "enum": ["True", "False", "Unknown"]},
        reason=_STRING,
        message=_STRING,
        lastTransitionTime={"type": "string", "format": "date-time"},
        observedGeneration={"type": "integer"},
    )
    entry = _obj(
        at={"type": "string", "format": "date-time"},
        seq={"type": "integer"},
        kind=_STRING,
        weight={"type": "number"},
        message=_STRING,
    )
    decision = _obj(
        action=_STRING,
        safeWeight={"type": "number", "nullable": True},
        latencyDelta={"type": "number", "nullable": True},
        errorDelta={"type": "number", "nullable": True},
        reasons={"type": "array", "items": _STRING},
        at={"type": "string", "format": "date-time"},
    )
    return _obj(
        phase=_STRING,
        weight={"type": "number"},
        step={"type": "integer"},
        steps={"type": "integer"},
        lastVerdict=_STRING,
        message=_STRING,
        observedGeneration={"type": "integer"},
        conditions={
            "type": "array",
            "items": condition,
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
        lastDecision=decision,
        history={"type": "array", "maxItems": HISTORY_LIMIT, "items": entry},
        stableTemplateHash=_STRING,
        releaseTemplateHash=_STRING,
        rejectedTemplateHash=_STRING,
        finalized={"type": "boolean"},
        checkpoint=_described(
            {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "The controller's state machine checkpoint; read by the operator on restart.",
        ),
    )


def crd() -> dict[str, Any]:
    column = [
        ("Phase", "string", ".status.phase"),
        ("Weight", "number", ".status.weight"),
        ("Step", "integer", ".status.step"),
        ("Verdict", "string", ".status.lastVerdict"),
        ("Age", "date", ".metadata.creationTimestamp"),
    ]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "plural": PLURAL,
                "singular": KIND.lower(),
                "listKind": f"{KIND}List",
                "shortNames": ["crel"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [{"name": n, "type": t, "jsonPath": p} for n, t, p in column],
                    "schema": {
                        "openAPIV3Schema": _obj(
                            ["spec"],
                            apiVersion=_STRING,
                            kind=_STRING,
                            metadata={"type": "object"},
                            spec=spec_schema(),
                            status=status_schema(),
                        )
                    },
                }
            ],
        },
    }


def crd_yaml() -> str:
    header = "# Generated by `canarypilot operator crd` from src/canarypilot/operator/crd.py: do not edit.\n"
    return header + yaml.safe_dump(crd(), sort_keys=False, width=100)
