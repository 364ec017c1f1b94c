"""Datasets, pose-aware transforms, loaders and the embedded synthetic benchmark."""
