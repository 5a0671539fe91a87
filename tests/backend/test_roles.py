"""Role groups carry exactly the permission table after a plain migrate (no seeding step needed)."""

import pytest
from django.contrib.auth.models import Group

from backend.accounts.roles import ROLE_PERMISSIONS


@pytest.mark.django_db
@pytest.mark.parametrize("role", sorted(ROLE_PERMISSIONS))
def test_groups_match_table_after_migrate(role):
    group = Group.objects.get(name=role)
    held = {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")}
    assert held == set(ROLE_PERMISSIONS[role])
