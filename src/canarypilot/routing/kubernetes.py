"""A small async Kubernetes API client over httpx: just what the routers need.

Credentials come from the pod's service account when running in a cluster
(``/var/run/secrets/kubernetes.io/serviceaccount``), else from a kubeconfig
(``$KUBECONFIG`` or ``~/.kube/config``): server, CA, and a bearer token
(``token`` or ``tokenFile``). The token file is re-read on each request because
projected service-account tokens rotate. Errors are split the usual way: 404 is
``NotFound``, 409 and 5xx and network errors are ``RouterUnavailable`` (retry),
other 4xx are ``RouterError`` carrying the API server's message.
"""

from __future__ import annotations

import base64
import os
import ssl
from pathlib import Path
from typing import Any

import httpx
import yaml

from canarypilot._exceptions import ConfigError, RouterError, RouterUnavailable

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
MAX_BODY = 4 * 1024 * 1024


class NotFound(RouterError):
    """The object does not exist."""


class Conflict(RouterUnavailable):
    """HTTP 409: the object changed since it was read (a stale ``resourceVersion``) or
    already exists. Read it again and decide again."""


class KubeClient:
    """``get``/``create``/``replace``/``patch`` of JSON objects at API paths.

    >>> # client = KubeClient.from_environment()
    >>> # ingress = await client.get("/apis/networking.k8s.io/v1/namespaces/prod/ingresses/web")
    """

    def __init__(
        self,
        server: str,
        *,
        token: str | None = None,
        token_file: Path | None = None,
        verify: ssl.SSLContext | bool = True,
        timeout_seconds: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not server.startswith(("https://", "http://")):
            raise ConfigError(f"Kubernetes API server {server!r} must be an http(s) URL")
        self.server = server.rstrip("/")
        self._token = token
        self._token_file = token_file
        self._client = httpx.AsyncClient(
            base_url=self.server, verify=verify, timeout=timeout_seconds, transport=transport
        )

    @classmethod
    def from_environment(
        cls, *, kubeconfig: str | None = None, context: str | None = None, timeout_seconds: float = 5.0
    ) -> KubeClient:
        host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
        if kubeconfig is None and host and port and (SERVICE_ACCOUNT / "token").exists():
            ctx = ssl.create_default_context(cafile=str(SERVICE_ACCOUNT / "ca.crt"))
            return cls(
                f"https://{host}:{port}",
                token_file=SERVICE_ACCOUNT / "token",
                verify=ctx,
                timeout_seconds=timeout_seconds,
            )
        path = Path(kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or "~/.kube/config")
        return cls.from_kubeconfig(path.expanduser(), context=context, timeout_seconds=timeout_seconds)

    @classmethod
    def from_kubeconfig(
        cls, path: Path, *, context: str | None = None, timeout_seconds: float = 5.0
    ) -> KubeClient:
        try:
            config = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read kubeconfig {path}: {exc}") from exc
        if not isinstance(config, dict):
            raise ConfigError(f"kubeconfig {path} is not a mapping")
        name = context or config.get("current-context")
        ctx = _named(config, "contexts", name, "context", path)
        cluster = _named(config, "clusters", ctx.get("cluster"), "cluster", path)
        user = _named(config, "users", ctx.get("user"), "user", path) if ctx.get("user") else {}
        verify: ssl.SSLContext | bool = True
        if cluster.get("insecure-skip-tls-verify"):
            verify = False
        elif cluster.get("certificate-authority-data"):
            pem = base64.b64decode(cluster["certificate-authority-data"]).decode()
            verify = ssl.create_default_context(cadata=pem)
        elif cluster.get("certificate-authority"):
            verify = ssl.create_default_context(cafile=str(cluster["certificate-authority"]))
        token_file = Path(user["tokenFile"]) if user.get("tokenFile") else None
        if not user.get("token") and token_file is None:
            raise ConfigError(f"kubeconfig {path}: user of context {name!r} has no token or tokenFile")
        return cls(
            str(cluster.get("server", "")),
            token=user.get("token"),
            token_file=token_file,
            verify=verify,
            timeout_seconds=timeout_seconds,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def get(self, path: str) -> dict[str, Any]:
        return await self._send("GET", path)

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self._send("POST", path, json=body)

    async def replace(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self._send("PUT", path, json=body)

    async def patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """A JSON merge patch (RFC 7386)."""
        return await self._send("PATCH", path, json=body, content_type="application/merge-patch+json")

    async def json_patch(self, path: str, operations: list[dict[str, Any]]) -> dict[str, Any]:
        """A JSON patch (RFC 6902): with a ``test`` operation, applied only if it holds."""
        return await self._send("PATCH", path, json=operations, content_type="application/json-patch+json")

    async def _send(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | list[dict[str, Any]] | None = None,
        content_type: str | None = None,
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        token = self._bearer()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if content_type:
            headers["Content-Type"] = content_type
        try:
            response = await self._client.request(method, path, json=json, headers=headers)
        except httpx.HTTPError as exc:
            raise RouterUnavailable(
                f"Kubernetes API {self.server} unreachable: {type(exc).__name__}"
            ) from exc
        if len(response.content) > MAX_BODY:
            raise RouterError(f"Kubernetes API answer to {method} {path} is larger than {MAX_BODY} bytes")
        message = _message(response)
        if response.status_code == 404:
            raise NotFound(f"{method} {path}: not found")
        if response.status_code == 409:
            raise Conflict(f"{method} {path}: HTTP 409: {message}")
        if response.status_code >= 500:
            raise RouterUnavailable(f"{method} {path}: HTTP {response.status_code}: {message}")
        if response.status_code >= 400:
            raise RouterError(f"{method} {path}: HTTP {response.status_code}: {message}")
        try:
            body = response.json()
        except ValueError as exc:
            raise RouterError(f"{method} {path}: the API server did not answer JSON") from exc
        if not isinstance(body, dict):
            raise RouterError(f"{method} {path}: expected a JSON object")
        return body

    def _bearer(self) -> str | None:
        if self._token_file is not None:
            try:
                return self._token_file.read_text().strip()
            except OSError as exc:
                raise ConfigError(f"cannot read the token file {self._token_file}: {exc.strerror}") from exc
        return self._token


def _named(config: dict[str, Any], section: str, name: Any, key: str, path: Path) -> dict[str, Any]:
    for entry in config.get(section) or []:
        if isinstance(entry, dict) and entry.get("name") == name and isinstance(entry.get(key), dict):
            return dict(entry[key])
    raise ConfigError(f"kubeconfig {path}: no {key} named {name!r}")


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("message", ""))[:300] if isinstance(body, dict) else ""


__all__ = ["Conflict", "KubeClient", "NotFound"]
