"""Servers built from source on first use, into the cache (llama.cpp's ``llama-server``)."""
