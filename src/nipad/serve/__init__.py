"""The HTTP inspection service (`nipad serve`): FastAPI app, micro-batching of concurrent requests, metrics."""
