"""Re-sync the study index from Orthanc (studies that arrived while the backend was down, or by C-STORE)."""

from django.core.management.base import BaseCommand

from backend.studies.ingest import resync_from_orthanc


class Command(BaseCommand):
    help = "Index every study Orthanc holds and drop index rows Orthanc no longer has."

    def handle(self, *args, **options):
        summary = resync_from_orthanc()
        self.stdout.write(", ".join(f"{k}={v}" for k, v in summary.items()))
