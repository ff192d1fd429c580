"""Finding and aligning faces: MediaPipe detection, the alignment template, the warp."""
