"""Helpers the readiness suites call, so the suites read like the checklist."""
