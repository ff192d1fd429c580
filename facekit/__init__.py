"""facekit: age and gender models from UTKFace-style face images."""

__version__ = "0.1.0"
