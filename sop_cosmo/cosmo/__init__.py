"""Weak-lensing cosmology: CosmoGridV1 reader, simulator, patches and statistics."""
