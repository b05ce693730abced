"""A real control plane's storage and API on loopback: etcd, then kube-apiserver.

No kubelet, no controller-manager, no controllers: only the API server, which is
what the routers talk to. It validates every object against the built-in types
and the installed CRDs' schemas, keeps resourceVersions in etcd, splits ``/status``
subresources, and answers with its own errors, so what passes here is what a
cluster would accept. Authentication is a static bearer token whose user is in
``system:masters``; authorization is ``AlwaysAllow`` unless a test asks for ``RBAC`` (the
token's user is still allowed everything; other identities get only what RBAC grants).
"""

from __future__ import annotations

import csv
import io
import json
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from canarypilot.local.processes import LocalServer, free_port

TOKEN_USER = "canarypilot-tests"


class LocalEtcd(LocalServer):
    """A one-member etcd with its data in ``workdir``; ``url`` is its client URL."""

    name = "etcd"

    def __init__(self, binary: Path, workdir: Path) -> None:
        self.binary, self.workdir = binary, workdir
        self.port, self.peer_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self, *, timeout: float = 30.0) -> LocalEtcd:
        peer = f"http://127.0.0.1:{self.peer_port}"
        argv = [
            str(self.binary),
            "--name=test",
            f"--data-dir={self.workdir / 'etcd-data'}",
            f"--listen-client-urls={self.url}",
            f"--advertise-client-urls={self.url}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=test={peer}",
            "--listen-metrics-urls=",
            "--unsafe-no-fsync",  # a throwaway test store: durability costs time and buys nothing
            "--log-level=warn",
        ]
        self._launch(argv, log_path=self.workdir / "etcd.log", timeout=timeout)
        return self

    def _ready(self) -> bool:
        try:
            answer = httpx.get(f"{self.url}/health", timeout=0.5)
        except httpx.HTTPError:
            return False
        return answer.status_code == 200 and answer.json().get("health") == "true"


def write_service_account_keys(workdir: Path) -> tuple[Path, Path]:
    """An RSA key pair for service-account tokens, which kube-apiserver insists on."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private, public = workdir / "sa.key", workdir / "sa.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


class LocalApiServer(LocalServer):
    """kube-apiserver on 127.0.0.1 over ``etcd_url``, with a self-signed serving cert.

    ``--cert-dir`` makes it generate a CA and a serving cert for 127.0.0.1 on start;
    ``ca_pem`` is that CA, read from the chain it writes (``apiserver.crt``).
    """

    name = "kube-apiserver"

    def __init__(
        self,
        binary: Path,
        workdir: Path,
        *,
        etcd_url: str,
        token: str,
        extra_args: Sequence[str] = (),
        authorization: str = "AlwaysAllow",
    ) -> None:
        self.binary, self.workdir, self.etcd_url, self.token = binary, workdir, etcd_url, token
        self.authorization = authorization
        self.extra_args = list(extra_args)
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.cert_dir = workdir / "certs"

    def start(self, *, timeout: float = 90.0) -> LocalApiServer:
        self.cert_dir.mkdir(parents=True, exist_ok=True)
        tokens = self.workdir / "tokens.csv"
        line = io.StringIO()
        csv.writer(line).writerow([self.token, TOKEN_USER, TOKEN_USER, "system:masters"])
        tokens.write_text(line.getvalue())
        sa_key, sa_pub = write_service_account_keys(self.workdir)
        argv = [
            str(self.binary),
            f"--etcd-servers={self.etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.port}",
            f"--cert-dir={self.cert_dir}",
            f"--token-auth-file={tokens}",
            f"--authorization-mode={self.authorization}",
            "--anonymous-auth=false",
            f"--service-account-key-file={sa_pub}",
            f"--service-account-signing-key-file={sa_key}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--service-cluster-ip-range=10.96.0.0/24",  # a setting for Service IPs; nothing routes there
            "--endpoint-reconciler-type=none",
            "--enable-priority-and-fairness=false",
            "--profiling=false",
            "--v=1",
            *self.extra_args,
        ]
        self._launch(argv, log_path=self.workdir / "kube-apiserver.log", timeout=timeout)
        return self

    def _ready(self) -> bool:
        try:
            answer = httpx.get(
                f"{self.url}/readyz",
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=1.0,
                verify=False,  # the CA exists only once the server has written it; tests verify
            )
        except httpx.HTTPError:
            return False
        return answer.status_code == 200

    def _diagnostics(self) -> str:
        return "" if self.process is None else self.process.log_tail(40)

    @property
    def ca_pem(self) -> str:
        return (self.cert_dir / "apiserver.crt").read_text()


@dataclass(frozen=True)
class Cluster:
    """What a test needs to talk to the API server: its URL, a kubeconfig, the token."""

    url: str
    kubeconfig: Path
    token: str
    ca_pem: str
    #: The kube-apiserver's process id (0 when unknown), for tests that take it away.
    api_pid: int = 0

    def http(self) -> httpx.Client:
        """A synchronous client for set-up and for reading objects back, TLS verified."""
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.token}"},
            verify=ssl.create_default_context(cadata=self.ca_pem),
            timeout=10.0,
        )


def write_kubeconfig(path: Path, *, server: str, ca_pem: str, token: str) -> Path:
    import base64

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "local",
        "clusters": [
            {
                "name": "local",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_pem.encode()).decode(),
                },
            }
        ],
        "users": [{"name": "tests", "user": {"token": token}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": "tests"}}],
    }
    path.write_text(yaml.safe_dump(config))
    return path


def install_crds(client: httpx.Client, crd_files: list[Path], *, timeout: float = 60.0) -> None:
    """Create the CRDs, then wait until each is Established and its resources answer."""
    crds: list[dict[str, Any]] = []
    for path in crd_files:
        crds += [
            d
            for d in yaml.safe_load_all(path.read_text())
            if d and d.get("kind") == "CustomResourceDefinition"
        ]
    for crd in crds:
        answer = client.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=crd)
        if answer.status_code not in (201, 409):
            raise RuntimeError(
                f"creating CRD {crd['metadata']['name']}: {answer.status_code} {answer.text[:500]}"
            )
    deadline = time.monotonic() + timeout
    for crd in crds:
        name, spec = crd["metadata"]["name"], crd["spec"]
        served = next(v["name"] for v in spec["versions"] if v.get("storage"))
        resources = f"/apis/{spec['group']}/{served}/{spec['names']['plural']}"
        while not (_established(client, name) and client.get(resources).status_code == 200):
            if time.monotonic() >= deadline:
                raise RuntimeError(f"CRD {name} not Established and served after {timeout:g}s")
            time.sleep(0.2)


def _established(client: httpx.Client, name: str) -> bool:
    answer = client.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
    if answer.status_code != 200:
        return False
    conditions = (answer.json().get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)


def create_namespace(client: httpx.Client, name: str) -> None:
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    answer = client.post("/api/v1/namespaces", json=body)
    if answer.status_code != 201:
        raise RuntimeError(
            f"creating namespace {name}: {answer.status_code} {json.dumps(answer.json())[:300]}"
        )
