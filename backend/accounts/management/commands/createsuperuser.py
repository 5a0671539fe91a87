"""Django's createsuperuser, with the password validators also in non-interactive mode.

Django checks AUTH_PASSWORD_VALIDATORS only when it prompts; a deployment script that sets
DJANGO_SUPERUSER_PASSWORD would otherwise create an admin with any password at all.
"""

import os

from django.contrib.auth import get_user_model
from django.contrib.auth.management.commands import createsuperuser
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError


class Command(createsuperuser.Command):
    def handle(self, *args, **options):
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
        if not options.get("interactive") and password:
            User = get_user_model()
            candidate = User(**{User.USERNAME_FIELD: options.get(User.USERNAME_FIELD)
                                or os.environ.get(f"DJANGO_SUPERUSER_{User.USERNAME_FIELD.upper()}", ""),
                                "email": options.get("email") or os.environ.get("DJANGO_SUPERUSER_EMAIL", "")})
            try:
                validate_password(password, candidate)
            except ValidationError as exc:
                raise CommandError("DJANGO_SUPERUSER_PASSWORD refused: " + " ".join(exc.messages)) from None
        return super().handle(*args, **options)
