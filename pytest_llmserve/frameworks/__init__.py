"""Serving frameworks, one module each, behind ``base.Framework``."""
