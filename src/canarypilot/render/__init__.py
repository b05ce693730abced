"""Deployable configuration written from the settings: Argo Rollouts manifests
(``render.argo``) and monitoring configuration (``render.monitoring*``).

Renderers return plain dicts (one per Kubernetes object or config file) so the tests
can validate them against the real schemas before anything is written.
"""
