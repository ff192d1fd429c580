"""Using trained files: loading, predicting, evaluating and checking them."""
