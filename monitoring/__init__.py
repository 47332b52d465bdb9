"""The pipeline dashboard and the Prometheus /metrics endpoint."""
