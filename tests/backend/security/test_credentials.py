"""Credentials end when they should (issue 17): logout, a role change and deactivation reach the gateway's
access cache at once; API tokens expire and are revoked by logout-everywhere and deactivation; every path
that sets a password applies the validators."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

pytestmark = [pytest.mark.security, pytest.mark.django_db]
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def gateway_reader(users, settings):
    """The annotator reading through the gateway; Orthanc is absent, so 'allowed' shows as 503, not 200."""
    from django.test import Client

    from backend.devstack.services import free_port
    from backend.dicomweb import access_cache

    access_cache.forget_all()
    settings.ORTHANC_URL = f"http://127.0.0.1:{free_port()}"
    client = Client()
    client.force_login(users["annotator"])
    return client


ALLOWED, REFUSED = {503}, {401, 403}


def test_logout_ends_image_access_at_once(gateway_reader):
    assert gateway_reader.get("/dicom-web/studies").status_code in ALLOWED  # full check, then remembered
    cookie = gateway_reader.cookies["sessionid"].value
    assert gateway_reader.get("/dicom-web/studies").status_code in ALLOWED  # the fast path
    assert gateway_reader.post("/logout").status_code == 302
    gateway_reader.cookies["sessionid"] = cookie  # a copy of the old cookie, replayed at once
    assert gateway_reader.get("/dicom-web/studies").status_code in REFUSED


def test_a_role_change_and_deactivation_end_image_access_at_once(gateway_reader, users):
    from django.contrib.auth.models import Group

    assert gateway_reader.get("/dicom-web/studies").status_code in ALLOWED
    users["annotator"].groups.remove(Group.objects.get(name="annotator"))
    assert gateway_reader.get("/dicom-web/studies").status_code in REFUSED
    users["annotator"].groups.add(Group.objects.get(name="annotator"))
    assert gateway_reader.get("/dicom-web/studies").status_code in ALLOWED
    users["annotator"].is_active = False
    users["annotator"].save()
    assert gateway_reader.get("/dicom-web/studies").status_code in REFUSED


def test_a_revocation_reaches_other_web_processes(gateway_reader, users):
    """Another process's revocation arrives through the shared cache: emulate it by writing only there."""
    from django.core.cache import cache

    from backend.dicomweb import access_cache

    assert gateway_reader.get("/dicom-web/studies").status_code in ALLOWED
    import time

    cache.set(access_cache._revoked_key(users["annotator"].pk), time.time(), 60)  # what revoke_user writes
    assert gateway_reader.get("/dicom-web/studies").status_code in ALLOWED  # re-checked in full: still allowed
    assert len([e for e in access_cache._allowed.values() if e[0] == users["annotator"].pk]) == 1


def token_client(key: str):
    from rest_framework.test import APIClient

    return APIClient(HTTP_AUTHORIZATION=f"Token {key}")


def test_tokens_expire(users, settings):
    from rest_framework.authtoken.models import Token

    settings.SPINEAGENT_TOKEN_TTL_DAYS = 30
    token = Token.objects.create(user=users["radiologist"])
    assert token_client(token.key).get("/api/me").status_code == 200
    Token.objects.filter(pk=token.pk).update(created=timezone.now() - timedelta(days=31))
    response = token_client(token.key).get("/api/me")
    assert response.status_code in (401, 403) and "expired" in response.json()["detail"]


def test_logout_everywhere_revokes_tokens_and_sessions(users, client_for):
    from django.contrib.sessions.models import Session
    from django.test import Client
    from rest_framework.authtoken.models import Token

    from backend.audit.models import AuditEvent

    token = Token.objects.create(user=users["radiologist"])
    other_browser, other_user = Client(), client_for("annotator")
    other_browser.force_login(users["radiologist"])
    assert other_browser.get("/api/me").status_code == 200
    response = token_client(token.key).post("/api/me/logout-all")
    assert response.status_code == 200 and response.json() == {"tokens": 1, "sessions": 1}
    assert not Token.objects.filter(user=users["radiologist"]).exists()
    assert other_browser.get("/api/me").status_code in (401, 403)  # the other browser is logged out too
    assert token_client(token.key).get("/api/me").status_code in (401, 403)
    assert other_user.get("/api/me").status_code == 200  # nobody else's session is touched
    assert Session.objects.count() == 1
    event = AuditEvent.objects.get(target_type="user-credentials")
    assert event.username == "radiologist" and event.detail["logout_all"] == {"tokens": 1, "sessions": 1}

    # The page's form does the same for the browser it is pressed in.
    browser = Client()
    browser.force_login(users["radiologist"])
    browser.get("/")
    assert browser.post("/logout-everywhere").status_code == 302
    assert browser.get("/api/me").status_code in (401, 403)


def test_deactivation_revokes_tokens_and_sessions(users):
    from django.test import Client
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=users["radiologist"])
    browser = Client()
    browser.force_login(users["radiologist"])
    users["radiologist"].is_active = False
    users["radiologist"].save(update_fields=["is_active"])
    assert not Token.objects.filter(pk=token.pk).exists()
    assert browser.get("/api/me").status_code in (401, 403)


@pytest.mark.parametrize("password, why", [
    ("short-pw-1", "too short"), ("123456789012345", "entirely numeric"), ("password12345", "too common"),
    ("radiologist-2024", "too similar"),
])
def test_every_password_path_applies_the_validators(users, client_for, password, why):
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match=why):
        validate_password(password, users["radiologist"])
    # Django's admin (the user-add form) refuses it.
    admin = client_for("admin")
    users["admin"].is_superuser = users["admin"].is_staff = True
    users["admin"].save()
    response = admin.post("/admin/auth/user/add/", {"username": "radiologist-new", "password1": password,
                                                    "password2": password, "usable_password": "true"})
    assert response.status_code == 200 and why in response.content.decode().replace("&#x27;", "'")


def run_manage(*args, **env):
    from django.db import connection

    db = connection.settings_dict
    full = dict(os.environ, DATABASE_URL=f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
                **env)
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=full, capture_output=True, text=True)


@pytest.mark.django_db(transaction=True)
def test_commands_that_set_passwords_apply_the_validators(users):
    result = run_manage("createsuperuser", "--noinput", "--username", "root2", "--email", "r@example.org",
                        DJANGO_SUPERUSER_PASSWORD="123456789012")
    assert result.returncode != 0 and "entirely numeric" in result.stderr
    result = run_manage("seed_demo", "--password", "short")
    assert result.returncode != 0 and "too short" in result.stderr
