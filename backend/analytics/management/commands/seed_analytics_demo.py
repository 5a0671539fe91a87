"""Sign N synthetic demo cases through the report services so the analytics dashboard has data."""

from django.core.management.base import BaseCommand

from backend.analytics import demo


class Command(BaseCommand):
    help = ("Create N demo studies (no images, patient DEMO^CASE<n>), AI drafts from simulated predictions, and "
            "sign them as demo readers; the dashboard labels them as demo data. Idempotent per case number.")

    def add_arguments(self, parser):
        parser.add_argument("--count", type=int, default=60)
        parser.add_argument("--days", type=int, default=30, help="spread arrivals over this many past days")
        parser.add_argument("--seed", type=int, default=8)

    def handle(self, *args, **options):
        signed = demo.seed(options["count"], options["days"], options["seed"])
        self.stdout.write(f"signed {signed} demo report(s) (synthetic; labelled as demo data on /analytics/)")
