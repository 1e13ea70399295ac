"""Structured logs and Prometheus metrics, shared by the control plane and the gateway."""
