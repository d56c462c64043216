"""The embedded model and its precision variants, built on demand into the cache.

Kept import-light (no torch, no subprocess at import): the profile validator imports
the catalog at startup, and building lives in ``embedded`` / ``builder_env``.
"""
