"""Data-quality, drift, model-performance and pipeline-health checks, and the weekly report."""
