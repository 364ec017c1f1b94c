"""Experiments built from the library: the embedded benchmark's baseline-vs-PGFL-KD run."""
