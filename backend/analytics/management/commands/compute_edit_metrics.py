"""Back-fill (or refresh) EditMetrics for every signed report. Idempotent: one row per report, updated."""

from django.core.management.base import BaseCommand

from backend.analytics.services import compute_all


class Command(BaseCommand):
    help = "Compute edit metrics (AI draft vs signed text) for all signed reports; safe to run again."

    def add_arguments(self, parser):
        parser.add_argument("--missing-only", action="store_true", help="skip reports that already have metrics")

    def handle(self, *args, missing_only=False, **options):
        stored, skipped = compute_all(missing_only=missing_only)
        self.stdout.write(f"edit metrics stored for {stored} signed report(s); {skipped} without an AI draft skipped")
