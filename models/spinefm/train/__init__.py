"""Training and evaluation, none of it loaded by the backend's inference: the stages (align, synth, heads,
levels, locator, calibrate, default), their one loop and schedules, evaluation, comparison, bundling, the
backend's retraining of diagnosis heads, self-supervised encoder pretraining (``ssl``) and the report agent's
training (``report_agent``) and evaluation (``report_eval``)."""
