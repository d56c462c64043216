"""Server lifecycles: local processes, external endpoints; readiness and leftover sweeps."""
