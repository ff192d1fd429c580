"""facekit's command line (installed as the ``facekit_cli`` package; see pyproject.toml)."""
