from django.core.management.base import BaseCommand

from backend.inference.jobs import dispatch_pending


class Command(BaseCommand):
    help = "Send queued jobs that never reached the broker (e.g. created while Redis was down)."

    def handle(self, *args, **options):
        self.stdout.write(f"dispatched {dispatch_pending()} job(s)")
