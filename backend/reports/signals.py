"""Signals other apps listen to (analytics computes edit metrics when a report is signed)."""

from django.dispatch import Signal

# Sent on commit after a successful sign-off: sender=Report class, report_id=the signed report's pk.
report_signed = Signal()
