"""The ``pgflkd`` command line."""
