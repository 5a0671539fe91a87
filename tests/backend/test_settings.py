"""Production mode refuses development defaults; services come from the environment."""

import os
import subprocess
import sys

PROBE = "import django; django.setup(); from django.conf import settings; print(settings.DATABASES['default']['HOST'])"


def run_settings(**env):
    full = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "ORTHANC_", "SPINEAGENT_"))}
    full.update(DJANGO_SETTINGS_MODULE="backend.settings", **env)
    return subprocess.run([sys.executable, "-c", PROBE], env=full, capture_output=True, text=True)


def test_production_refuses_defaults():
    result = run_settings(SPINEAGENT_ENV="production", DATABASE_URL="postgres://spineagent:spineagent@db:5432/x")
    assert result.returncode != 0
    for problem in ("DJANGO_SECRET_KEY", "ORTHANC_PASSWORD", "ORTHANC_GATEWAY_PASSWORD", "ORTHANC_WEBHOOK_SECRET",
                    "DATABASE_URL"):
        assert problem in result.stderr


def test_production_refuses_debug():
    result = run_settings(SPINEAGENT_ENV="production", DJANGO_DEBUG="1", DJANGO_SECRET_KEY="x" * 50,
                          ORTHANC_PASSWORD="p", ORTHANC_WEBHOOK_SECRET="s")
    assert result.returncode != 0 and "DJANGO_DEBUG must be off" in result.stderr


def test_production_starts_with_real_settings():
    result = run_settings(SPINEAGENT_ENV="production", DJANGO_SECRET_KEY="x" * 50, ORTHANC_PASSWORD="p",
                          ORTHANC_GATEWAY_PASSWORD="g", ORTHANC_WEBHOOK_SECRET="s",
                          DATABASE_URL="postgres://u:p@db.internal:5432/spineagent")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "db.internal"


# --- issue 9: database password, HTTPS-only, throttling, CORS, SSO configuration -----------------------------

REAL = dict(SPINEAGENT_ENV="production", DJANGO_SECRET_KEY="x" * 50, ORTHANC_PASSWORD="p", ORTHANC_WEBHOOK_SECRET="s",
            ORTHANC_GATEWAY_PASSWORD="g", DATABASE_URL="postgres://u:p@db.internal:5432/spineagent")
SHOW = ("import django, json; django.setup(); from django.conf import settings as s; print(json.dumps({k: getattr(s, k, None)"
        " for k in %r}, default=str))")


def settings_of(*names, **env):
    full = {k: v for k, v in os.environ.items()
            if not k.startswith(("DJANGO_", "ORTHANC_", "SPINEAGENT_", "OIDC_", "DATABASE_URL"))}
    full.update(DJANGO_SETTINGS_MODULE="backend.settings", **env)
    result = subprocess.run([sys.executable, "-c", SHOW % (names,)], env=full, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    import json

    return json.loads(result.stdout)


def test_production_refuses_the_development_database_password():
    result = run_settings(**{**REAL, "DATABASE_URL": "postgres://spineagent:spineagent@db:5432/spineagent"})
    assert result.returncode != 0 and "DATABASE_URL must carry a real database password" in result.stderr
    no_url = {k: v for k, v in REAL.items() if k != "DATABASE_URL"}  # the built-in default is the dev password
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    full = {k: v for k, v in env.items() if not k.startswith(("DJANGO_", "ORTHANC_", "SPINEAGENT_"))}
    full.update(DJANGO_SETTINGS_MODULE="backend.settings", **no_url)
    result = subprocess.run([sys.executable, "-c", PROBE], env=full, capture_output=True, text=True)
    assert result.returncode != 0 and "DATABASE_URL" in result.stderr


def test_production_is_https_only_and_throttled():
    s = settings_of("SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SESSION_COOKIE_HTTPONLY", "SECURE_HSTS_SECONDS",
                    "SECURE_PROXY_SSL_HEADER", "SECURE_SSL_REDIRECT", "SPINEAGENT_THROTTLE_RATES",
                    "CORS_ALLOWED_ORIGINS", "SPINEAGENT_TRUSTED_PROXIES", "CSRF_TRUSTED_ORIGINS", **REAL)
    assert s["SESSION_COOKIE_SECURE"] and s["CSRF_COOKIE_SECURE"] and s["SESSION_COOKIE_HTTPONLY"]
    assert s["SECURE_HSTS_SECONDS"] >= 180 * 24 * 3600 and s["SECURE_PROXY_SSL_HEADER"]
    assert s["SECURE_SSL_REDIRECT"] is False  # TLS ends at the proxy unless the site says otherwise
    assert all(s["SPINEAGENT_THROTTLE_RATES"].values())
    assert s["CORS_ALLOWED_ORIGINS"] == [] and s["CSRF_TRUSTED_ORIGINS"] == []
    assert s["SPINEAGENT_TRUSTED_PROXIES"] == 1  # nginx of docker/compose.yaml
    s = settings_of("SECURE_SSL_REDIRECT", "CORS_ALLOWED_ORIGINS", "CSRF_TRUSTED_ORIGINS", "SPINEAGENT_THROTTLE_RATES",
                    SPINEAGENT_SSL_REDIRECT="1", SPINEAGENT_CORS_ORIGINS="https://a.example, https://b.example",
                    SPINEAGENT_CSRF_TRUSTED_ORIGINS="https://spine.hospital.example", SPINEAGENT_THROTTLE_USER="",
                    **REAL)
    assert s["SECURE_SSL_REDIRECT"] is True
    assert s["CORS_ALLOWED_ORIGINS"] == ["https://a.example", "https://b.example"]
    assert s["CSRF_TRUSTED_ORIGINS"] == ["https://spine.hospital.example"]
    assert s["SPINEAGENT_THROTTLE_RATES"]["user"] is None  # an empty rate switches that scope off


def test_development_is_not_throttled_and_has_no_cors():
    s = settings_of("SPINEAGENT_THROTTLE_RATES", "CORS_ALLOWED_ORIGINS", "SPINEAGENT_OIDC_ENABLED")
    assert s == {"SPINEAGENT_THROTTLE_RATES": {"anon": None, "user": None}, "CORS_ALLOWED_ORIGINS": [],
                 "SPINEAGENT_OIDC_ENABLED": False}


def test_django_deploy_checks_pass_for_what_we_promise():
    full = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "ORTHANC_", "SPINEAGENT_"))}
    import secrets

    full.update(DJANGO_SETTINGS_MODULE="backend.settings", DJANGO_ALLOWED_HOSTS="spine.hospital.example",
                **{**REAL, "DJANGO_SECRET_KEY": secrets.token_urlsafe(50)})
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy"], env=full, capture_output=True,
                            text=True, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    out = result.stdout + result.stderr
    # HSTS, secure session/CSRF cookies, secret key, DEBUG, nosniff, X-Frame-Options.
    for check in ("W004", "W012", "W016", "W009", "W018", "W006", "W019", "W020"):
        assert f"security.{check}" not in out, out


def test_sso_needs_its_endpoints_and_turns_on_with_a_client_id():
    result = run_settings(OIDC_RP_CLIENT_ID="spineagent")
    assert result.returncode != 0 and "OIDC_OP_TOKEN_ENDPOINT" in result.stderr
    s = settings_of("SPINEAGENT_OIDC_ENABLED", "AUTHENTICATION_BACKENDS", OIDC_RP_CLIENT_ID="spineagent",
                    OIDC_RP_CLIENT_SECRET="x", OIDC_OP_AUTHORIZATION_ENDPOINT="https://idp/a",
                    OIDC_OP_TOKEN_ENDPOINT="https://idp/t", OIDC_OP_USER_ENDPOINT="https://idp/u")
    assert s["SPINEAGENT_OIDC_ENABLED"] is True
    assert s["AUTHENTICATION_BACKENDS"][0] == "backend.accounts.oidc.RoleMappingOIDCBackend"


def test_gateway_account_must_not_be_the_backends():
    result = run_settings(ORTHANC_USERNAME="same", ORTHANC_GATEWAY_USERNAME="same")
    assert result.returncode != 0 and "ORTHANC_GATEWAY_USERNAME must differ" in result.stderr
