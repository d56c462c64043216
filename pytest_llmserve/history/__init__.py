"""Run records, where they are kept, and how a run is compared with earlier ones.

``record`` builds one versioned record per target per session, ``store`` keeps
them (a folder, or one SQLite file), ``compare`` turns ``--llmserve-fail-on``
rules into noise-aware verdicts, ``session`` wires them to a pytest session.
"""
