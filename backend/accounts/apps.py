from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "backend.accounts"
    label = "accounts"
    verbose_name = "Accounts and roles"

    def ready(self):
        from django.db.models.signals import post_migrate

        from . import login_throttle  # noqa: F401  (connects the failure counters to the auth signals)
        from . import receivers  # noqa: F401  (deactivation revokes tokens and sessions)
        from .roles import sync_role_groups

        # After every app's migrate: the permissions of later apps exist only once their own post_migrate ran.
        post_migrate.connect(sync_role_groups, dispatch_uid="accounts.sync_role_groups")
