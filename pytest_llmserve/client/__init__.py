"""HTTP clients for the serving APIs (OpenAI-compatible; TGI native later)."""
