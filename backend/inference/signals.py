"""Signals other apps listen to (reports build the AI draft, annotations refresh priorities); this app's
receivers export the DICOM SR."""

from django.dispatch import Signal

# Sent after a job's result is committed: sender=InferenceResult class, result=InferenceResult.
inference_succeeded = Signal()
