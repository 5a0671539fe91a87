"""Register a model bundle as a ModelVersion, optionally promoting it to active."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from spinefm.bundle import BundleError

from backend.inference.registry import register_bundle


class Command(BaseCommand):
    help = "Register a SpineFM bundle directory (default: the shipped phantom bundle)."

    def add_arguments(self, parser):
        parser.add_argument("path", nargs="?", default=str(settings.SPINEAGENT_DEFAULT_BUNDLE))
        parser.add_argument("--activate", action="store_true", help="promote it to the active version")

    def handle(self, *args, path, activate, **options):
        try:
            mv = register_bundle(path, state="active" if activate else "candidate")
        except (FileNotFoundError, BundleError) as exc:  # one line naming the file, never a traceback
            raise CommandError(str(exc)) from None
        self.stdout.write(f"{mv.label} state={mv.state} path={mv.path}")
