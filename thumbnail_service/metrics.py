"""Prometheus metrics of the thumbnail service (default registry, served by ``serve()``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LATENCY = Histogram(
    "thumbnail_engine_seconds",
    "Time an engine took to produce a thumbnail, by engine and outcome.",
    ["engine", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
FALLBACKS = Counter(
    "thumbnail_fallbacks_total",
    "Requests the preferred engine failed on and the other engine answered.",
    ["from_engine", "to_engine"],
)
REJECTIONS = Counter(
    "thumbnail_rejections_total", "Requests refused or failed, by error reason.", ["reason"]
)
QUEUE_DEPTH = Gauge("thumbnail_queue_depth", "Admitted requests waiting for a processing slot.")
IN_FLIGHT = Gauge("thumbnail_in_flight", "Requests holding a processing slot.")
UPLOAD_BYTES = Counter("thumbnail_upload_bytes_total", "Bytes received as uploads.")
