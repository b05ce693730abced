"""Real servers started on loopback for the demo and the tests: Prometheus, HAProxy, nginx."""
