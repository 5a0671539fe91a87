"""Report label extraction (placeholder until written)."""
