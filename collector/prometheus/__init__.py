"""Prometheus text exposition: parse ``/metrics`` of model servers and exporters into points."""
