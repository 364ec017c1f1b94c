"""Small shared utilities: atomic files, locks, module helpers."""
