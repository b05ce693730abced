"""A manifest set that passes every rule; each rule test breaks exactly one thing in a copy of it."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

GOOD = """
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: checkout
  namespace: shop
  annotations:
    canarypilot.io/db-max-connections: "1000"
spec:
  replicas: 4
  minReadySeconds: 30
  selector:
    matchLabels: {app: checkout}
  template:
    metadata:
      labels: {app: checkout}
    spec:
      terminationGracePeriodSeconds: 75
      containers:
        - name: api
          image: registry.example/checkout:1.2.0
          readinessProbe:
            httpGet: {path: /healthz, port: 8080}
            successThreshold: 2
          resources:
            requests: {memory: 1Gi}
            limits: {memory: 1536Mi}
          env:
            - name: DB_MAX_OPEN_CONNS
              value: "20"
  strategy:
    canary:
      dynamicStableScale: true
      trafficRouting:
        nginx: {stableIngress: checkout}
      steps:
        - setCanaryScale: {replicas: 1}
        - analysis:
            templates: [{templateName: gate}]
        - setCanaryScale: {matchTrafficWeight: true}
        - setWeight: 10
        - pause: {duration: 60s}
        - analysis:
            templates: [{templateName: gate}]
        - setWeight: 50
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: checkout
  namespace: shop
  annotations:
    nginx.ingress.kubernetes.io/proxy-read-timeout: "60"
    nginx.ingress.kubernetes.io/proxy-next-upstream: "error timeout http_502 http_503"
    nginx.ingress.kubernetes.io/proxy-next-upstream-tries: "3"
    nginx.ingress.kubernetes.io/proxy-next-upstream-timeout: "10"
spec:
  ingressClassName: nginx
  rules: []
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: gate
  namespace: shop
spec:
  metrics:
    - name: safe-weight
      interval: 30s
      count: 3
      failureLimit: 1
      successCondition: result.status == "proceed"
      provider:
        web:
          url: http://canarypilot.tools:8080/analyze?service=checkout
          timeoutSeconds: 15
          jsonPath: "{$}"
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: checkout
  namespace: shop
spec:
  scaleTargetRef: {apiVersion: argoproj.io/v1alpha1, kind: Rollout, name: checkout}
  minReplicas: 4
  maxReplicas: 4
---
apiVersion: autoscaling.k8s.io/v1
kind: VerticalPodAutoscaler
metadata:
  name: checkout
  namespace: shop
spec:
  targetRef: {apiVersion: argoproj.io/v1alpha1, kind: Rollout, name: checkout}
  updatePolicy: {updateMode: "Off"}
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: checkout
  namespace: shop
spec:
  endpoints:
    - port: http
      interval: 30s
"""


Docs = list[dict[str, Any]]


def good_docs() -> Docs:
    return [d for d in yaml.safe_load_all(GOOD) if d]


def by_kind(docs: Docs, kind: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind)


def dump(docs: Docs) -> str:
    return yaml.safe_dump_all(copy.deepcopy(docs), sort_keys=False)


@pytest.fixture
def docs() -> Docs:
    return good_docs()
