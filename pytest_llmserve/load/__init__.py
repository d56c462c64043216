"""Load generation: workloads, schedules, the async streaming client, run records."""
