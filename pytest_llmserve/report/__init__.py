"""Reports of a session and of history: a self-contained HTML file (``html``)."""
