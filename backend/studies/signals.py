"""Signals other apps listen to, so the index does not import them (one-way dependencies)."""

from django.dispatch import Signal

# Sent after a study's rows are written: sender=Study class, study=Study, created=bool.
study_indexed = Signal()
