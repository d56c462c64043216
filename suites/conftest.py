"""The readiness suites need only the pytest-llmserve plugin (installed via its entry point)."""
