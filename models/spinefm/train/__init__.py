"""Training stages: align (tri-modal CLIP), synth (synthesizer), heads (agents), default (whole pipeline)."""
