"""Pose-aware datasets registered with torchreid: name -> class."""

DATASETS: dict[str, type] = {}
