"""Static files are served by the app (WhiteNoise) once collected, so the Django admin and the browsable API
are styled; the browsable API's POST works with the page's CSRF token; the admin role manages users' roles
and the identified-export permission from the Django admin, and nothing beyond that."""

import re

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core.management import call_command
from django.test import Client

from backend.audit.models import AuditEvent

pytestmark = [pytest.mark.django_db]


def test_collected_static_files_are_served(settings, tmp_path):
    settings.STATIC_ROOT = tmp_path / "static"
    call_command("collectstatic", "--noinput", verbosity=0)
    client = Client()  # a new handler: WhiteNoise indexes STATIC_ROOT when the middleware is built
    for path in ("/static/admin/css/base.css", "/static/rest_framework/css/bootstrap.min.css",
                 "/static/rest_framework/js/csrf.js"):
        r = client.get(path)
        assert r.status_code == 200, path
        assert b"".join(r.streaming_content) == (settings.STATIC_ROOT / path.removeprefix("/static/")).read_bytes()
    assert client.get("/static/admin/css/nothing.css").status_code == 404


def test_browsable_api_post_with_the_pages_csrf_token(users):
    client = Client(enforce_csrf_checks=True)
    client.force_login(users["admin"])
    page = client.get("/api/training/datasets/", HTTP_ACCEPT="text/html")
    assert page.status_code == 200 and b"/static/rest_framework/" in page.content
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    missing = client.post("/api/training/datasets/", {"name": "x"}, content_type="application/json")
    assert missing.status_code == 403 and b"CSRF" in missing.content
    r = client.post("/api/training/datasets/", {"name": "x"}, content_type="application/json",
                    HTTP_X_CSRFTOKEN=token)
    assert r.status_code == 409 and "no verified labels" in r.json()["detail"]  # past CSRF, refused by the rule


@pytest.fixture
def staff_admin(users):
    user = users["admin"]
    user.is_staff = True
    user.save()
    client = Client()
    client.force_login(user)
    return client


def change_form(client, user):
    html = client.get(f"/admin/auth/user/{user.pk}/change/").content.decode()
    data = {m.group(1): m.group(2) for m in re.finditer(r'<input type="(?:text|email|hidden)" name="(\w+)"'
                                                         r'(?:[^>]*?value="([^"]*)")?', html)}
    data = {k: v or "" for k, v in data.items()}
    data.update({"is_active": "on", "last_login_0": "", "last_login_1": "", "date_joined_0": "2026-01-01",
                 "date_joined_1": "00:00:00"})
    return html, data


def test_admin_role_grants_roles_and_the_identified_export(staff_admin, users):
    index = staff_admin.get("/admin/").content.decode()
    assert "/admin/auth/user/" in index and "/admin/audit/auditevent/" in index
    target = users["radiologist"]
    html, data = change_form(staff_admin, target)
    export = Permission.objects.get(content_type__app_label="analytics", codename="export_identified")
    other = Permission.objects.get(content_type__app_label="training", codename="run_training")
    # Only role groups and the grantable permission are offered; is_superuser is not editable.
    assert f'value="{export.pk}"' in html and f'value="{other.pk}"' not in html
    assert 'name="is_superuser"' not in html

    annotator = Group.objects.get(name="annotator")
    radiologist = Group.objects.get(name="radiologist")
    r = staff_admin.post(f"/admin/auth/user/{target.pk}/change/", {
        **data, "groups": [radiologist.pk, annotator.pk], "user_permissions": [export.pk],
        "is_superuser": "on"})
    assert r.status_code == 302, re.findall(r'class="errorlist[^"]*"[^>]*>(.*?)</ul>', r.content.decode(), re.S)
    target = User.objects.get(pk=target.pk)
    assert set(target.groups.values_list("name", flat=True)) == {"radiologist", "annotator"}
    assert target.has_perm("analytics.export_identified") and not target.is_superuser
    event = AuditEvent.objects.get(target_type="user", target_id=str(target.pk))
    assert event.username == "admin" and event.detail["after"]["permissions"] == ["export_identified"]
    assert event.detail["before"]["groups"] == ["radiologist"]

    # A permission outside the grantable set is refused by the form.
    r = staff_admin.post(f"/admin/auth/user/{target.pk}/change/", {**data, "user_permissions": [other.pk]})
    assert r.status_code == 200 and not User.objects.get(pk=target.pk).has_perm("training.run_training")
    # Superusers' accounts and the role groups' permissions are out of reach.
    root = User.objects.create_superuser("root", password="root-password-123")
    page = staff_admin.get(f"/admin/auth/user/{root.pk}/change/")
    assert page.status_code == 200 and 'name="username"' not in page.content.decode()  # view only
    r = staff_admin.post(f"/admin/auth/user/{root.pk}/change/", {**data, "username": "root", "is_superuser": ""})
    assert r.status_code == 403 and User.objects.get(pk=root.pk).is_superuser
    r = staff_admin.post(f"/admin/auth/group/{radiologist.pk}/change/", {"name": "radiologist", "permissions": []})
    assert r.status_code == 403 and radiologist.permissions.exists()


def test_admin_role_adds_a_user_audited(staff_admin):
    password = "a-long-enough-pass-1"
    r = staff_admin.post("/admin/auth/user/add/", {"username": "newreader", "usable_password": "true",
                                                   "password1": password, "password2": password})
    assert r.status_code == 302, r.content[:2000]
    user = User.objects.get(username="newreader")
    assert not user.is_superuser and not user.groups.exists()
    event = AuditEvent.objects.get(target_type="user", target_id=str(user.pk))
    assert event.detail["change"] == "added" and event.username == "admin"


def test_other_roles_do_not_reach_the_user_admin(users):
    for role in ("radiologist", "annotator"):
        user = users[role]
        user.is_staff = True  # even if someone marked them staff
        user.save()
        client = Client()
        client.force_login(user)
        assert client.get("/admin/auth/user/").status_code == 403
