"""``facekit serve``: a local HTTP service and web page in front of the predictor (needs the ``serve`` extra)."""
