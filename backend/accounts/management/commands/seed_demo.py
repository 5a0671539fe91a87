"""Create the demo accounts, one per role (idempotent). Passwords are printed, never defaults in production."""

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from backend.accounts.roles import ROLES, sync_role_groups

DEMO_PASSWORD = "spineagent-demo"


class Command(BaseCommand):
    help = "Create demo users radiologist / annotator / admin."

    def add_arguments(self, parser):
        parser.add_argument("--password", default=DEMO_PASSWORD)

    def handle(self, *args, password, **options):
        if settings.PRODUCTION and password == DEMO_PASSWORD:
            raise CommandError("refusing to create demo accounts with the default password in production")
        sync_role_groups()
        for role in ROLES:
            user, _ = User.objects.get_or_create(username=role, defaults={"email": f"{role}@example.org"})
            try:
                validate_password(password, user)
            except ValidationError as exc:
                raise CommandError(f"password refused for {role}: {' '.join(exc.messages)}") from None
            user.set_password(password)
            user.is_staff = role == "admin"
            user.save()
            user.groups.set([Group.objects.get(name=role)])
            self.stdout.write(f"{role:12s} password: {password}")
