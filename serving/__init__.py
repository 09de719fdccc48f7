"""Risk service (FastAPI) and the ``crs-risk`` command-line entry point."""
