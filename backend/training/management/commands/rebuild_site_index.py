"""manage.py rebuild_site_index: similar cases from the site's own signed reports (docs/training.md)."""

from django.core.management.base import BaseCommand, CommandError

from backend.inference.models import ModelVersion
from backend.training import site_index
from backend.errors import Conflict


class Command(BaseCommand):
    help = ("Rebuild the similar-case bank from signed reports (SPINEAGENT_SITE_INDEX=signed), identifiers "
            "removed, for the active model version or --model-version ID.")

    def add_arguments(self, parser):
        parser.add_argument("--model-version", type=int, help="id of the model version (default: the active one)")

    def handle(self, *args, model_version=None, **options):
        base = None
        if model_version is not None:
            base = ModelVersion.objects.filter(pk=model_version).first()
            if base is None:
                raise CommandError(f"no model version with id {model_version}")
        try:
            summary = site_index.rebuild(base, via="manage.py rebuild_site_index")
        except Conflict as exc:
            raise CommandError(str(exc)) from None
        skipped = ", ".join(f"{n} {why}" for why, n in summary.skipped.items()) or "none"
        self.stdout.write(f"{summary.description} indexed into {summary.path}; skipped: {skipped}")
