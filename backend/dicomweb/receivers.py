"""Revoke the gateway's remembered credentials whenever a user's access changes (see access_cache)."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.signals import user_logged_out
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver
from rest_framework.authtoken.models import Token

from . import access_cache

User = get_user_model()
CHANGES = ("post_add", "post_remove", "post_clear")


@receiver(user_logged_out, dispatch_uid="gateway.logout")
def _logged_out(sender, request, user, **kwargs):
    if user is not None:
        access_cache.revoke_user(user.pk)


@receiver(post_save, sender=User, dispatch_uid="gateway.user_saved")
def _user_saved(sender, instance, created, update_fields=None, **kwargs):
    # Deactivation, superuser or password changes; a login's last_login update changes no access.
    if not created and set(update_fields or ()) != {"last_login"}:
        access_cache.revoke_user(instance.pk)


@receiver(m2m_changed, sender=User.groups.through, dispatch_uid="gateway.user_groups")
@receiver(m2m_changed, sender=User.user_permissions.through, dispatch_uid="gateway.user_permissions")
def _user_access_changed(sender, instance, action, reverse, pk_set, **kwargs):
    if action not in CHANGES:
        return
    if isinstance(instance, User):
        access_cache.revoke_user(instance.pk)
    else:  # changed from the group's or permission's side: every user touched
        for pk in pk_set or ():
            access_cache.revoke_user(pk)
        if action == "post_clear":
            access_cache.revoke_all()


@receiver(m2m_changed, sender=Group.permissions.through, dispatch_uid="gateway.group_permissions")
def _group_permissions_changed(sender, action, **kwargs):
    if action in CHANGES:
        access_cache.revoke_all()


@receiver(post_delete, sender=Token, dispatch_uid="gateway.token_deleted")
def _token_deleted(sender, instance, **kwargs):
    access_cache.revoke_user(instance.user_id)
