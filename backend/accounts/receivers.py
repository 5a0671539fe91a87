"""Deactivating a user ends their sessions and deletes their API tokens at once."""

from django.contrib.auth import get_user_model
from django.db.models.signals import post_save
from django.dispatch import receiver

from .tokens import revoke_credentials


@receiver(post_save, sender=get_user_model(), dispatch_uid="accounts.deactivated")
def _deactivated(sender, instance, created, update_fields=None, **kwargs):
    if not created and not instance.is_active and (update_fields is None or "is_active" in update_fields):
        revoke_credentials(instance)
