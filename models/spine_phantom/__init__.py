"""Synthetic spine MRI phantoms (placeholder until written)."""
