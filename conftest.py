"""Root conftest: keeps pytest from collecting the example profiles and fixtures folders."""

collect_ignore = ["fixtures", "examples"]
