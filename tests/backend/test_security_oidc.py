"""Hospital SSO: the claim -> role mapping, and the whole code flow against a small local OpenID provider."""

import json
import sys
import threading
import time
import types
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from django.contrib.auth.models import User
from django.urls import include, path

from backend.accounts.oidc import RoleMappingOIDCBackend, parse_role_map, roles_from_claims

pytestmark = [pytest.mark.django_db]

SECRET = "oidc-test-client-secret-0123456789"
CLIENT_ID = "spineagent-test"


class FakeProvider:
    """Token and userinfo endpoints of an OpenID provider; the test plays the browser at its login page."""

    def __init__(self):
        self.grants: dict[str, dict] = {}  # code -> {"nonce", "claims"}
        self.tokens: dict[str, dict] = {}  # access token -> claims
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _json(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
                grant = provider.grants.pop(form.get("code", [""])[0], None)
                if (grant is None or form.get("client_secret") != [SECRET]
                        or form.get("client_id") != [CLIENT_ID]):
                    return self._json(400, {"error": "invalid_grant"})
                access = uuid.uuid4().hex
                provider.tokens[access] = grant["claims"]
                now = int(time.time())
                id_token = jwt.encode({"iss": provider.url, "aud": CLIENT_ID, "sub": grant["claims"]["sub"],
                                       "nonce": grant["nonce"], "iat": now, "exp": now + 300}, SECRET,
                                      algorithm="HS256")
                return self._json(200, {"access_token": access, "id_token": id_token, "token_type": "Bearer"})

            def do_GET(self):
                claims = provider.tokens.get(self.headers.get("Authorization", "").removeprefix("Bearer "))
                return self._json(200, claims) if claims else self._json(401, {"error": "invalid_token"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def log_in(self, authorize_url: str, claims: dict) -> tuple[str, str]:
        """The user signs in at the provider: returns (code, state) for our callback."""
        query = parse_qs(urlsplit(authorize_url).query)
        assert query["client_id"] == [CLIENT_ID] and query["response_type"] == ["code"]
        code = uuid.uuid4().hex
        self.grants[code] = {"nonce": query["nonce"][0], "claims": claims}
        return code, query["state"][0]

    def stop(self):
        self.server.shutdown()


@pytest.fixture
def oidc_settings(settings):
    settings.OIDC_RP_CLIENT_ID = CLIENT_ID
    settings.OIDC_RP_CLIENT_SECRET = SECRET
    settings.OIDC_RP_SIGN_ALGO = "HS256"
    settings.OIDC_RP_SCOPES = "openid email profile"
    settings.OIDC_OP_AUTHORIZATION_ENDPOINT = "https://idp.hospital.example/authorize"
    settings.OIDC_OP_TOKEN_ENDPOINT = "http://127.0.0.1:9/token"
    settings.OIDC_OP_USER_ENDPOINT = "http://127.0.0.1:9/userinfo"
    settings.LOGIN_REDIRECT_URL_FAILURE = "/login?sso=failed"
    settings.SPINEAGENT_OIDC_ROLE_CLAIM = "roles"
    settings.SPINEAGENT_OIDC_ROLE_MAP = "spine-radiologists=radiologist,spine-annotators=annotator,pacs-admins=admin"
    settings.SPINEAGENT_OIDC_USERNAME_CLAIM = "preferred_username"
    return settings


def claims(username, *roles, **extra):
    return {"sub": f"sub-{username}", "preferred_username": username, "email": f"{username}@hospital.example",
            "given_name": "Ada", "family_name": "Lovelace", "roles": list(roles), **extra}


def role_names(user):
    return set(user.groups.values_list("name", flat=True))


# --- the mapping, as a unit --------------------------------------------------------------------------------

def test_role_map_parsing_and_claim_shapes(oidc_settings):
    assert parse_role_map(" a=radiologist , b=admin ") == {"a": "radiologist", "b": "admin"}
    with pytest.raises(ValueError, match="superuser"):
        parse_role_map("x=superuser")
    assert roles_from_claims(claims("dr", "spine-radiologists", "nurses")) == {"radiologist"}
    assert roles_from_claims({"roles": "pacs-admins spine-annotators"}) == {"admin", "annotator"}  # one string
    assert roles_from_claims({"roles": [{"nested": 1}, "nurses"]}) == set()
    assert roles_from_claims({}) == set()


def test_sso_user_gets_exactly_the_mapped_roles_and_follows_changes(oidc_settings, users):
    backend = RoleMappingOIDCBackend()
    first = claims("dr.who", "spine-radiologists")
    assert backend.verify_claims(first)
    user = backend.create_user(first)
    assert role_names(user) == {"radiologist"} and not user.has_usable_password()
    assert (user.email, user.first_name) == ("dr.who@hospital.example", "Ada")
    assert list(backend.filter_users_by_claims(first)) == [user]
    # The IdP moves them to the admins: the next login replaces the role, keeps non-role groups.
    from django.contrib.auth.models import Group

    user.groups.add(Group.objects.create(name="teaching-file"))
    backend.update_user(user, claims("dr.who", "pacs-admins"))
    assert role_names(user) == {"admin", "teaching-file"}


def test_sso_refuses_users_without_a_role_or_name_and_never_takes_over_local_accounts(oidc_settings, users):
    backend = RoleMappingOIDCBackend()
    assert not backend.verify_claims(claims("visitor", "nurses"))
    assert not backend.verify_claims(claims("", "spine-radiologists"))
    # The local password account "admin" is not matched, and no second "admin" is made.
    idp_admin = claims("admin", "pacs-admins")
    assert list(backend.filter_users_by_claims(idp_admin)) == []
    assert backend.create_user(idp_admin) is None
    assert User.objects.get(username="admin").has_usable_password()


# --- the whole code flow -----------------------------------------------------------------------------------

@pytest.fixture
def provider():
    fake = FakeProvider()
    yield fake
    fake.stop()


@pytest.fixture
def sso_site(oidc_settings, provider):
    """The site as backend/urls.py serves it with SSO on (the accounts app's routes included)."""
    from backend import urls as site_urls

    oidc_settings.OIDC_OP_TOKEN_ENDPOINT = provider.url + "/token"
    oidc_settings.OIDC_OP_USER_ENDPOINT = provider.url + "/userinfo"
    oidc_settings.SPINEAGENT_OIDC_ENABLED = True
    oidc_settings.AUTHENTICATION_BACKENDS = ["backend.accounts.oidc.RoleMappingOIDCBackend",
                                             "backend.accounts.login_throttle.ThrottledModelBackend"]
    module = types.ModuleType(f"h4_sso_urls_{uuid.uuid4().hex}")
    module.urlpatterns = [path("oidc/", include("mozilla_django_oidc.urls")), *site_urls.urlpatterns]
    sys.modules[module.__name__] = module
    oidc_settings.ROOT_URLCONF = module.__name__
    yield provider
    del sys.modules[module.__name__]


def test_login_page_offers_sso_only_when_enabled(client, oidc_settings, provider, request):
    assert b"hospital SSO" not in client.get("/login").content
    request.getfixturevalue("sso_site")
    page = client.get("/login?next=/viewer/").content.decode()
    assert 'href="/oidc/authenticate/?next=/viewer/"' in page and "Sign in with hospital SSO" in page


def test_code_flow_logs_in_with_the_mapped_role(client, sso_site, users):
    start = client.get("/oidc/authenticate/?next=/viewer/")
    assert start.status_code == 302 and start["Location"].startswith("https://idp.hospital.example/authorize?")
    code, state = sso_site.log_in(start["Location"], claims("dr.house", "spine-radiologists"))
    done = client.get(f"/oidc/callback/?code={code}&state={state}")
    assert done.status_code == 302 and done["Location"] == "/viewer/"
    me = client.get("/api/me").json()
    assert me["username"] == "dr.house" and me["role"] == "radiologist"
    from backend.audit.models import AuditEvent

    login = AuditEvent.objects.get(action="login", username="dr.house")
    assert login.detail["method"] == "sso"


def test_code_flow_refuses_a_user_without_a_role(client, sso_site, users):
    start = client.get("/oidc/authenticate/")
    code, state = sso_site.log_in(start["Location"], claims("visitor", "nurses"))
    done = client.get(f"/oidc/callback/?code={code}&state={state}")
    assert done.status_code == 302 and done["Location"] == "/login?sso=failed"
    assert client.get("/api/me").status_code in (401, 403)
    assert not User.objects.filter(username="visitor").exists()


def test_code_flow_rejects_a_forged_state(client, sso_site, users):
    start = client.get("/oidc/authenticate/")
    code, _ = sso_site.log_in(start["Location"], claims("dr.house", "spine-radiologists"))
    done = client.get(f"/oidc/callback/?code={code}&state=forged")
    assert client.get("/api/me").status_code in (401, 403)
    assert done.status_code in (302, 400)
