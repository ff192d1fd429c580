"""Small shared helpers: atomic writes, figures, model-file downloads."""
