"""Profiles and targets: what to serve, and the markers each target carries."""
