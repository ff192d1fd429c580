"""One module per command (or pair of related commands); cli/main.py registers them."""
