"""Training and evaluation, none of it loaded by the backend's inference: the stages (align, synth, heads,
levels, locator, calibrate, default), their one loop and schedules, evaluation, comparison, bundling and the
backend's retraining of diagnosis heads."""
