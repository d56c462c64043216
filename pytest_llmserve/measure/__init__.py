"""Measurements: statistics, accuracy through the server, Prometheus, NVML."""
