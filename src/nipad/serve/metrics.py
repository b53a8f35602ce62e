"""Prometheus metrics of the service (text format at GET /metrics), in a registry of its own per app."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        disable_created_metrics()  # no `*_created` timestamp series: noise on a dashboard
        self.registry = CollectorRegistry()
        self.requests = Counter("nipad_requests", "HTTP requests by endpoint and status code",
                                ["endpoint", "status"], registry=self.registry)
        self.errors = Counter("nipad_errors", "Failed requests by endpoint and kind (client: 4xx, server: 5xx)",
                              ["endpoint", "kind"], registry=self.registry)
        self.latency = Histogram("nipad_request_latency_seconds", "Request latency by endpoint", ["endpoint"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.images = Counter("nipad_images", "Images scored", registry=self.registry)
        self.batch_size = Histogram("nipad_batch_size", "Images per model batch", buckets=(1, 2, 4, 8, 16, 32, 64),
                                    registry=self.registry)
        self.batch_seconds = Histogram("nipad_batch_seconds", "Model time per batch", buckets=LATENCY_BUCKETS,
                                       registry=self.registry)

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)
        if status >= 400:
            self.errors.labels(endpoint, "client" if status < 500 else "server").inc()

    def observe_batch(self, size: int, seconds: float) -> None:
        self.images.inc(size)
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
