"""pytest-llmserve: start LLM serving frameworks per target and check them for production."""

__version__ = "0.1.0"
