"""Open the QA cases of signed reports that have none yet (after a lost signal, or a changed sample rate)."""

from django.core.management.base import BaseCommand

from backend.qa.models import QACase
from backend.qa.selection import select
from backend.reports.models import Report


class Command(BaseCommand):
    help = "Select signed reports for RADPEER peer review (2b/3a/3b and the configured random sample)."

    def handle(self, *args, **options):
        before = QACase.objects.count()
        for pk in Report.objects.filter(status=Report.SIGNED, qa_case__isnull=True).values_list("pk", flat=True):
            select(pk)
        self.stdout.write(f"opened {QACase.objects.count() - before} QA case(s)")
