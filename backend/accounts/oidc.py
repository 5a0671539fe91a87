"""Hospital SSO (OpenID Connect) users get exactly the roles their identity provider says.

``SPINEAGENT_OIDC_ROLE_CLAIM`` names the claim (``groups``, ``roles``...; a list
or a single string) and ``SPINEAGENT_OIDC_ROLE_MAP`` maps its values to our
three role groups (``"spine-rad=radiologist,pacs-admins=admin"``). The role
groups are set on every SSO login, so a change at the IdP takes effect at the
next login. A user whose claims map to no role is refused (no account is made).

SSO users are matched by username (``SPINEAGENT_OIDC_USERNAME_CLAIM``) but never
onto a local account that has a password: an IdP user called ``admin`` must not
become our local ``admin``. SSO-made accounts have no usable password.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import transaction
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from .roles import ROLES

log = logging.getLogger(__name__)


def parse_role_map(text: str) -> dict[str, str]:
    """``"a=radiologist, b=admin"`` -> {"a": "radiologist", "b": "admin"}; unknown roles are a configuration error."""
    mapping = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        value, _, role = item.partition("=")
        role = role.strip()
        if role not in ROLES:
            raise ValueError(f"SPINEAGENT_OIDC_ROLE_MAP: {role!r} is not one of {', '.join(ROLES)}")
        mapping[value.strip()] = role
    return mapping


def roles_from_claims(claims: dict) -> set[str]:
    """Our role names for the IdP values found in the configured claim."""
    values = claims.get(settings.SPINEAGENT_OIDC_ROLE_CLAIM) or []
    if isinstance(values, str):
        values = values.replace(",", " ").split()
    mapping = parse_role_map(settings.SPINEAGENT_OIDC_ROLE_MAP)
    return {mapping[v] for v in values if isinstance(v, str) and v in mapping}


class RoleMappingOIDCBackend(OIDCAuthenticationBackend):
    def _username(self, claims: dict) -> str:
        return str(claims.get(settings.SPINEAGENT_OIDC_USERNAME_CLAIM) or "").strip()[:150]

    def verify_claims(self, claims):
        if not self._username(claims):
            log.warning("OIDC login refused: no %r claim", settings.SPINEAGENT_OIDC_USERNAME_CLAIM)
            return False
        if not roles_from_claims(claims):
            log.warning("OIDC login refused for %s: no SpineAgent role in claim %r", self._username(claims),
                        settings.SPINEAGENT_OIDC_ROLE_CLAIM)
            return False
        return True

    def filter_users_by_claims(self, claims):
        # Only accounts SSO itself made (no usable password) can be matched: never a local password account.
        users = self.UserModel.objects.filter(username=self._username(claims))
        return [u for u in users if not u.has_usable_password()]

    def create_user(self, claims):
        username = self._username(claims)
        if self.UserModel.objects.filter(username=username).exists():
            log.warning("OIDC login refused: %s is a local password account", username)
            return None
        user = self.UserModel(username=username, email=claims.get("email") or "")
        user.set_unusable_password()
        user.save()
        return self.update_user(user, claims)

    @transaction.atomic
    def update_user(self, user, claims):
        user.first_name = str(claims.get("given_name") or "")[:150]
        user.last_name = str(claims.get("family_name") or "")[:150]
        user.email = str(claims.get("email") or user.email)
        user.save(update_fields=["first_name", "last_name", "email"])
        roles = roles_from_claims(claims)
        keep = user.groups.exclude(name__in=ROLES)  # groups that are not roles are the site's business
        user.groups.set([*keep, *Group.objects.filter(name__in=roles)])
        return user
