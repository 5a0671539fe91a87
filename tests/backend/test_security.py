"""Login throttling (real Redis cache), API request throttling, and the CORS allowlist."""

import ipaddress
import random
import uuid

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.test import Client, RequestFactory
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from backend.accounts import login_throttle

pytestmark = [pytest.mark.django_db]

PASSWORD = "correct-horse-battery-9"


def fresh_ip() -> str:
    """An address no earlier run used: the failure counters live in Redis for their whole window."""
    return str(ipaddress.IPv4Address(0x0A000000 + random.randrange(1, 2**24 - 1)))


@pytest.fixture
def account(db):
    """A user whose name no earlier run used (same reason)."""
    return User.objects.create_user(f"u-{uuid.uuid4().hex[:10]}", password=PASSWORD)


def post_login(username, password, ip, path="/login", client=None):
    return (client or Client()).post(path, {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_five_wrong_passwords_lock_the_username_even_with_the_right_one(account):
    name, ip = account.username, fresh_ip()
    for _ in range(5):
        r = post_login(name, "wrong", ip)
        assert r.status_code == 200 and b"Wrong username or password" in r.content
    r = post_login(name, PASSWORD, ip)
    assert r.status_code == 429 and int(r["Retry-After"]) > 0 and b"Too many failed logins" in r.content
    assert "_auth_user_id" not in r.wsgi_request.session
    assert post_login(name, PASSWORD, fresh_ip()).status_code == 429  # per username: another address too
    assert post_login(name.upper(), PASSWORD, fresh_ip()).status_code == 429  # case games do not reset it
    # Every other password path is closed too: the backend refuses without checking the password.
    assert authenticate(RequestFactory().post("/", REMOTE_ADDR=fresh_ip()), username=name, password=PASSWORD) is None
    for path in ("/api-auth/login/", "/admin/login/"):
        assert post_login(name, PASSWORD, fresh_ip(), path=path).status_code == 429
    login_throttle.clear(username=name)  # the window ends (or an admin clears it)
    r = post_login(name, PASSWORD, fresh_ip())
    assert r.status_code == 302 and r.wsgi_request.user == account


def test_failures_from_one_address_lock_that_address(account, settings):
    settings.SPINEAGENT_LOGIN_FAILURES_PER_IP = 3
    ip = fresh_ip()
    for _ in range(3):
        assert post_login(f"guess-{uuid.uuid4().hex[:6]}", "wrong", ip).status_code == 200
    assert post_login(account.username, PASSWORD, ip).status_code == 429
    assert post_login(account.username, PASSWORD, fresh_ip()).status_code == 302  # the user is not locked


def test_a_successful_login_clears_the_usernames_count(account):
    name, ip = account.username, fresh_ip()
    for _ in range(4):
        post_login(name, "wrong", ip)
    assert post_login(name, PASSWORD, ip).status_code == 302
    for _ in range(4):
        assert post_login(name, "wrong", fresh_ip()).status_code == 200  # 4 + 4 > 5, but counting restarted
    assert post_login(name, PASSWORD, fresh_ip()).status_code == 302


def test_throttle_fails_open_when_the_cache_is_down(account, settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": "redis://127.0.0.1:1/0", "OPTIONS": {"socket_connect_timeout": 0.2}}}
    assert post_login(account.username, "wrong", fresh_ip()).status_code == 200
    assert post_login(account.username, PASSWORD, fresh_ip()).status_code == 302


# --- API request rates -------------------------------------------------------------------------------------

@pytest.fixture
def private_cache(settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "LOCATION": f"h4-{uuid.uuid4().hex}"}}


def test_api_is_not_throttled_by_default_in_development(client_for, private_cache):
    c = client_for("radiologist")
    assert all(c.get("/api/me").status_code == 200 for _ in range(40))
    anon = Client()
    assert all(anon.get("/api/me").status_code in (401, 403) for _ in range(40))


class _OpenView(APIView):
    permission_classes = [AllowAny]

    def get(self, request):
        return Response({})


def test_api_rates_from_settings_answer_429(client_for, settings, private_cache):
    settings.SPINEAGENT_THROTTLE_RATES = {"anon": "3/minute", "user": "5/minute"}
    # DRF checks permissions before rates, so the anonymous scope bites only where anonymous callers are let
    # in. Our one such view, the HMAC-checked Orthanc webhook, is exempt on purpose (a C-STORE backlog must
    # not be throttled); the anonymous scope is shown on a view that admits anyone.
    anon, ip = Client(), fresh_ip()
    codes = [anon.post("/api/orthanc/stable-study", REMOTE_ADDR=ip).status_code for _ in range(4)]
    assert codes == [403, 403, 403, 403]
    open_view = _OpenView.as_view()
    factory = APIRequestFactory()
    codes = [open_view(factory.get("/open", REMOTE_ADDR=ip)).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    assert open_view(factory.get("/open", REMOTE_ADDR=fresh_ip())).status_code == 200  # per address
    rad = client_for("radiologist")
    codes = [rad.get("/api/me").status_code for _ in range(6)]
    assert codes == [200] * 5 + [429]
    assert client_for("admin").get("/api/me").status_code == 200  # per user


# --- CORS --------------------------------------------------------------------------------------------------

def test_cors_denies_unlisted_origins_and_allows_listed_ones(client_for, settings):
    c = client_for("radiologist")
    assert "Access-Control-Allow-Origin" not in c.get("/api/me", HTTP_ORIGIN="https://pacs.example").headers
    settings.CORS_ALLOWED_ORIGINS = ["https://pacs.example"]
    r = c.get("/api/me", HTTP_ORIGIN="https://pacs.example")
    assert r["Access-Control-Allow-Origin"] == "https://pacs.example"
    assert "Access-Control-Allow-Origin" not in c.get("/api/me", HTTP_ORIGIN="https://evil.example").headers
    preflight = Client().options("/api/me", HTTP_ORIGIN="https://evil.example",
                                 HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST")
    assert "Access-Control-Allow-Origin" not in preflight.headers
    preflight = Client().options("/api/me", HTTP_ORIGIN="https://pacs.example",
                                 HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST")
    assert preflight["Access-Control-Allow-Origin"] == "https://pacs.example"
    assert "Access-Control-Allow-Credentials" not in preflight.headers  # cookies not shared unless configured


def test_session_cookie_is_http_only(client, users):
    r = client.post("/login", {"username": "radiologist", "password": "test-password-123"}, REMOTE_ADDR=fresh_ip())
    assert r.status_code == 302 and r.cookies["sessionid"]["httponly"]
