"""Grafana dashboards as code, provisioning and the push client."""
