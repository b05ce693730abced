"""An in-memory Kubernetes API behind httpx.MockTransport that validates every write.

Each POST/PUT body, and each object after a merge patch, goes through the
validator registered for its path, so a router cannot send what a real API
server would reject (within what the published schemas can tell).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import httpx

Validator = Callable[[dict[str, Any]], None]


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


class FakeKube:
    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.validators: dict[str, Validator] = {}  # path fragment -> validator
        self.requests: list[tuple[str, str, dict[str, Any] | None, str]] = []
        self.version = 100

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def _validate(self, path: str, body: dict[str, Any]) -> None:
        for fragment, validator in self.validators.items():
            if fragment in path:
                validator(body)

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        body = json.loads(request.content) if request.content else None
        self.requests.append((request.method, path, body, request.headers.get("content-type", "")))
        if request.method == "GET":
            if path not in self.objects:
                return httpx.Response(404, json={"kind": "Status", "message": "not found"})
            return httpx.Response(200, json=self.objects[path])
        assert body is not None
        if request.method == "POST":
            name = body["metadata"]["name"]
            target = f"{path}/{name}"
            if target in self.objects:
                return httpx.Response(409, json={"message": "already exists"})
            self._validate(path, body)
            self.objects[target] = self._stamp(body)
            return httpx.Response(201, json=self.objects[target])
        if request.method == "PUT":
            current = self.objects.get(path)
            if current is None:
                return httpx.Response(404, json={"message": "not found"})
            sent = body.get("metadata", {}).get("resourceVersion")
            if sent != current["metadata"]["resourceVersion"]:
                return httpx.Response(409, json={"message": "the object has been modified"})
            self._validate(path, body)
            self.objects[path] = self._stamp(body)
            return httpx.Response(200, json=self.objects[path])
        if request.method == "PATCH":
            assert request.headers["content-type"] == "application/merge-patch+json"
            main = path.removesuffix("/status")
            if main not in self.objects:
                return httpx.Response(404, json={"message": "not found"})
            merged = merge_patch(self.objects[main], body)
            self._validate(main, merged)
            self.objects[main] = self._stamp(merged)
            return httpx.Response(200, json=self.objects[main])
        return httpx.Response(405)

    def _stamp(self, body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        body = copy.deepcopy(body)
        body.setdefault("metadata", {})["resourceVersion"] = str(self.version)
        return body
