"""Django settings for SpineAgent, read from the environment with safe local defaults.

A real deployment points ``DATABASE_URL``, ``CELERY_BROKER_URL`` and
``ORTHANC_URL`` at its own services; production mode (``SPINEAGENT_ENV=production``)
refuses the local defaults.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in {"1", "true", "yes", "on"}


ENVIRONMENT = env("SPINEAGENT_ENV", "development")
PRODUCTION = ENVIRONMENT == "production"
DEV_SECRET = "dev-only-insecure-secret-key"

SECRET_KEY = env("DJANGO_SECRET_KEY", DEV_SECRET)
DEBUG = env_bool("DJANGO_DEBUG", not PRODUCTION)
ALLOWED_HOSTS = [h for h in env("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver").split(",") if h]
DATA_DIR = Path(env("SPINEAGENT_DATA_DIR", str(BASE_DIR / "var")))

INSTALLED_APPS = [
    "backend.accounts",  # first: its createsuperuser (password validation when non-interactive) wins over Django's
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "corsheaders",  # strict CORS allowlist (issue 9)
    "backend.studies",
    "backend.inference",
    "backend.dicomweb",
    "backend.reports",
    "backend.analytics",
    "backend.audit",
    "backend.annotations",
    "backend.training",
    "backend.qa",
    "backend.viewer",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # /static/ (the Django admin's and the browsable API's files) from STATIC_ROOT, filled by collectstatic
    # (the demo's start, the Docker image); nginx serves the same files itself in compose.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "corsheaders.middleware.CorsMiddleware",  # before CommonMiddleware, as django-cors-headers requires
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "backend.accounts.login_throttle.LoginThrottleMiddleware",  # 429 on password logins after repeated failures
    "backend.audit.middleware.AuditMiddleware",  # view/edit/sign events of successful API calls
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "backend.middleware.ServiceUnavailableMiddleware",
    "backend.middleware.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "backend.urls"
LOGIN_URL = "/login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login"
WSGI_APPLICATION = "backend.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "backend" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "backend.viewer.navigation.navigation",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env("DATABASE_URL", "postgres://spineagent:spineagent@127.0.0.1:5432/spineagent"),
        conn_max_age=60,
        conn_health_checks=True,
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Every path that sets a password checks these: the admin's forms, changepassword, createsuperuser (also
# non-interactive: backend/accounts/management/commands/createsuperuser.py) and seed_demo.
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# Uploads are parsed in memory up to this size, then spooled to disk.
DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 16 * 1024 * 1024
SPINEAGENT_MAX_UPLOAD_BYTES = int(env("SPINEAGENT_MAX_UPLOAD_BYTES", str(2 * 1024**3)))  # one request
# Caps on what an upload expands to (zips streamed to disk, never into memory): files, one file, all files.
SPINEAGENT_UPLOAD_MAX_FILES = int(env("SPINEAGENT_UPLOAD_MAX_FILES", "20000"))
SPINEAGENT_UPLOAD_MAX_FILE_BYTES = int(env("SPINEAGENT_UPLOAD_MAX_FILE_BYTES", str(1024**3)))
SPINEAGENT_UPLOAD_MAX_EXPANDED_BYTES = int(env("SPINEAGENT_UPLOAD_MAX_EXPANDED_BYTES", str(8 * 1024**3)))
DATA_UPLOAD_MAX_NUMBER_FILES = SPINEAGENT_UPLOAD_MAX_FILES  # Django's default (100) is one small series

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "backend.accounts.tokens.ExpiringTokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "backend.pagination.Pagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "backend.api_errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "SpineAgent API",
    "VERSION": "0.1.0",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums",
                             "backend.api_errors.add_common_error_responses"],
}

# --- Orthanc (DICOM store, DICOMweb) -------------------------------------------------
ORTHANC_URL = env("ORTHANC_URL", "http://127.0.0.1:8042").rstrip("/")
ORTHANC_USERNAME = env("ORTHANC_USERNAME", "spineagent")
ORTHANC_PASSWORD = env("ORTHANC_PASSWORD", "spineagent-dev-orthanc")
# The DICOMweb gateway's own Orthanc account: our Orthanc plugin confines it to GET under /dicom-web/, so a
# path that slipped past the gateway's grammar still could not reach Orthanc's REST API (defence in depth).
ORTHANC_GATEWAY_USERNAME = env("ORTHANC_GATEWAY_USERNAME", "spineagent-gateway")
ORTHANC_GATEWAY_PASSWORD = env("ORTHANC_GATEWAY_PASSWORD", "spineagent-dev-gateway")
if ORTHANC_GATEWAY_USERNAME == ORTHANC_USERNAME:
    raise ImproperlyConfigured("ORTHANC_GATEWAY_USERNAME must differ from ORTHANC_USERNAME (the gateway's account "
                               "is confined to DICOMweb reads; the backend's is not)")
ORTHANC_DICOMWEB_ROOT = env("ORTHANC_DICOMWEB_ROOT", "/dicom-web")
ORTHANC_TIMEOUT = float(env("ORTHANC_TIMEOUT", "30"))
# Shared secret with the Orthanc plugin that announces stable studies (HMAC-SHA256).
ORTHANC_WEBHOOK_SECRET = env("ORTHANC_WEBHOOK_SECRET", "spineagent-dev-webhook-secret")
# Bytes per chunk the DICOMweb gateway streams from Orthanc to the viewer (backend/dicomweb/proxy.py).
SPINEAGENT_GATEWAY_CHUNK = int(env("SPINEAGENT_GATEWAY_CHUNK", str(1024 * 1024)))

# --- Celery / Redis ------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
CELERY_RESULT_BACKEND = None  # results live in PostgreSQL (InferenceResult), not in Redis
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "backend.inference.tasks.run_inference_job": {"queue": "inference"},
    "backend.training.tasks.*": {"queue": "training"},
}
# A message not acked this long after delivery is redelivered (worker died mid-job).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": int(env("CELERY_VISIBILITY_TIMEOUT", "3600")),
    "socket_connect_timeout": 3,
    "socket_timeout": 10,
}
CELERY_BROKER_CONNECTION_TIMEOUT = 3
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0.2, "interval_step": 0.5}
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)

# --- Inference -----------------------------------------------------------------------
SPINEAGENT_AUTO_QUEUE_INFERENCE = env_bool("SPINEAGENT_AUTO_QUEUE_INFERENCE", True)
SPINEAGENT_DEFAULT_BUNDLE = Path(
    env("SPINEAGENT_DEFAULT_BUNDLE", str(BASE_DIR / "models" / "bundles" / "spineagent-phantom-nano"))
)
SPINEAGENT_MAX_JOB_ATTEMPTS = int(env("SPINEAGENT_MAX_JOB_ATTEMPTS", "3"))
# torch intra-op threads of the worker's inference and retraining, and --threads of the training chain's
# stages: one by default, since torch's default oversubscribes small CPU workers; GPU workers raise it.
SPINEAGENT_TORCH_THREADS = int(env("SPINEAGENT_TORCH_THREADS", "1"))
# RADPEER peer review: share of signed reports scored 1 or 2a drawn into the QA queue (2b/3a/3b always are).
# Drawn from a hash of the study UID, so a study is always in or out for a given rate (backend/qa/selection.py).
SPINEAGENT_QA_SAMPLE_RATE = float(env("SPINEAGENT_QA_SAMPLE_RATE", "0.05"))

# Similar cases from the site's own signed reports (backend/inference/site_index.py, docs/training.md):
#   off     the bundle's own training cases (synthetic phantoms for the default bundle)
#   signed  every signed report whose study has a stored case embedding, identifiers removed; rebuilt by
#           `manage.py rebuild_site_index` and after each promotion
SPINEAGENT_SITE_INDEX = (env("SPINEAGENT_SITE_INDEX", "off") or "off").strip().lower()
if SPINEAGENT_SITE_INDEX not in ("off", "signed"):
    raise ImproperlyConfigured("SPINEAGENT_SITE_INDEX must be 'off' or 'signed'")
SPINEAGENT_SITE_INDEX_DIR = Path(env("SPINEAGENT_SITE_INDEX_DIR", str(DATA_DIR / "site-index")))

# The report drafter (docs/weights.md). Empty: the bundle's choice (its manifest's "report" section;
# "llava" when it ships a report agent, else "template"). Set, it wins for every bundle on this site:
#   template                                  deterministic text from the agent outputs, no LM
#   openai  + _BASE_URL, _MODEL, _API_KEY, _TIMEOUT_S    any OpenAI-compatible endpoint (vLLM, ...)
#   llava   + _LM_PATH (local causal-LM directory, Llama-3.x layout) + _AGENT_DIR (our projector and LoRA
#             adapter for that LM; default <bundle>/report_agent), _DEVICE, _DTYPE (GPU and bf16 when present)
# Checked and loaded once per worker process at start-up; one that cannot load is reported in the worker
# log then, and the template writes the drafts with the fallback recorded in each result.
SPINEAGENT_DRAFTER = (env("SPINEAGENT_DRAFTER", "") or "").strip().lower()
SPINEAGENT_DRAFTER_BASE_URL = env("SPINEAGENT_DRAFTER_BASE_URL", "")
SPINEAGENT_DRAFTER_MODEL = env("SPINEAGENT_DRAFTER_MODEL", "")
SPINEAGENT_DRAFTER_API_KEY = env("SPINEAGENT_DRAFTER_API_KEY", "")
SPINEAGENT_DRAFTER_TIMEOUT_S = env("SPINEAGENT_DRAFTER_TIMEOUT_S", "60")
SPINEAGENT_DRAFTER_LM_PATH = env("SPINEAGENT_DRAFTER_LM_PATH", "")
SPINEAGENT_DRAFTER_AGENT_DIR = env("SPINEAGENT_DRAFTER_AGENT_DIR", "")
SPINEAGENT_DRAFTER_DEVICE = env("SPINEAGENT_DRAFTER_DEVICE", "")
SPINEAGENT_DRAFTER_DTYPE = env("SPINEAGENT_DRAFTER_DTYPE", "")

# --- Annotation (backend/annotations) -----------------------------------------------
# Report labeler of new label tasks besides the rules (backend/annotations/labelers.py): "rules", or "llm"
# with an OpenAI-compatible endpoint (_BASE_URL and _MODEL required; _API_KEY, _TIMEOUT seconds, _MAX_RETRIES).
# An empty variable means its default.
SPINEAGENT_LABELER = env("SPINEAGENT_LABELER") or "rules"
SPINEAGENT_LLM_BASE_URL = env("SPINEAGENT_LLM_BASE_URL") or ""
SPINEAGENT_LLM_MODEL = env("SPINEAGENT_LLM_MODEL") or ""
SPINEAGENT_LLM_API_KEY = env("SPINEAGENT_LLM_API_KEY") or ""
SPINEAGENT_LLM_TIMEOUT = float(env("SPINEAGENT_LLM_TIMEOUT") or "60")
SPINEAGENT_LLM_MAX_RETRIES = int(env("SPINEAGENT_LLM_MAX_RETRIES") or "2")
# "blind" (the extraction withheld until a first pass) or "assisted" (preset); backend/annotations/modes.py.
SPINEAGENT_ANNOTATION_MODE = env("SPINEAGENT_ANNOTATION_MODE") or "blind"
# Independent annotations a label task needs before it is adjudicated, unless its creator says otherwise.
SPINEAGENT_REQUIRED_ANNOTATIONS = env("SPINEAGENT_REQUIRED_ANNOTATIONS") or "1"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
}

# --- Security (issue 9): cache, throttling, CORS, cookies, SSO, de-identification, audit --------------
# Shared by all web processes (login-failure counters, API throttles, audit de-duplication), so Redis,
# on a database of its own (not the broker's). Keys carry the database name: two deployments (or two
# test runs) sharing one Redis never see each other's counters.
def _cache_url_next_to(broker: str) -> str:
    """The broker's Redis, another database number (1, or 2 when the broker itself uses 1)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(broker)
    if parts.scheme not in ("redis", "rediss"):
        return "redis://127.0.0.1:6379/1"
    return urlunsplit(parts._replace(path="/2" if parts.path.strip("/") == "1" else "/1"))


CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": env("SPINEAGENT_CACHE_URL") or _cache_url_next_to(CELERY_BROKER_URL),
        "KEY_PREFIX": f"spineagent:{DATABASES['default'].get('NAME', '')}",
        "OPTIONS": {"socket_connect_timeout": 3, "socket_timeout": 5},
    }
}

# API tokens older than this are refused (manage.py drf_create_token -r USER issues a new one).
SPINEAGENT_TOKEN_TTL_DAYS = int(env("SPINEAGENT_TOKEN_TTL_DAYS", "30"))

# Content-Security-Policy (backend.middleware): no inline script anywhere, everything from our own origin.
# The viewer (OHIF) also needs web workers from blob: URLs, WebAssembly (image codecs) and inline styles.
SPINEAGENT_CSP_PAGES = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                        "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
                        "frame-ancestors 'none'")
SPINEAGENT_CSP_VIEWER = ("default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self' blob:; "
                         "child-src 'self' blob:; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
                         "font-src 'self' data:; media-src 'self' blob:; connect-src 'self'; object-src 'none'; "
                         "base-uri 'self'; form-action 'self'; frame-ancestors 'self'")

# Proxies in front of the app that append to X-Forwarded-For (docker/nginx: 1). Client addresses (audit log,
# throttles) are read that many hops from the right; 0 = the socket's address.
SPINEAGENT_TRUSTED_PROXIES = int(env("SPINEAGENT_TRUSTED_PROXIES", "1" if PRODUCTION else "0"))
REST_FRAMEWORK["NUM_PROXIES"] = SPINEAGENT_TRUSTED_PROXIES

# Password logins: this many failures per username (per client address) within the window -> HTTP 429.
SPINEAGENT_LOGIN_FAILURES_PER_USER = int(env("SPINEAGENT_LOGIN_FAILURES_PER_USER", "5"))
SPINEAGENT_LOGIN_FAILURES_PER_IP = int(env("SPINEAGENT_LOGIN_FAILURES_PER_IP", "20"))  # a ward shares one NAT
SPINEAGENT_LOGIN_FAILURE_WINDOW = int(env("SPINEAGENT_LOGIN_FAILURE_WINDOW", "900"))  # seconds
AUTHENTICATION_BACKENDS = ["backend.accounts.login_throttle.ThrottledModelBackend"]

# API request rates ("100/minute"); empty = not throttled. Off in development and tests, on in production.
SPINEAGENT_THROTTLE_RATES = {
    "anon": env("SPINEAGENT_THROTTLE_ANON", "300/minute" if PRODUCTION else "") or None,
    "user": env("SPINEAGENT_THROTTLE_USER", "6000/minute" if PRODUCTION else "") or None,
}
REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"] = [
    "backend.accounts.throttles.AnonRateThrottle",
    "backend.accounts.throttles.UserRateThrottle",
]

# CORS: no cross-origin access unless an origin is listed (comma-separated, e.g. https://pacs.hospital.org).
CORS_ALLOWED_ORIGINS = [o.strip() for o in (env("SPINEAGENT_CORS_ORIGINS", "") or "").split(",") if o.strip()]
CORS_ALLOW_CREDENTIALS = env_bool("SPINEAGENT_CORS_ALLOW_CREDENTIALS", False)
CSRF_TRUSTED_ORIGINS = [o.strip() for o in (env("SPINEAGENT_CSRF_TRUSTED_ORIGINS", "") or "").split(",")
                        if o.strip()]
SESSION_COOKIE_HTTPONLY = True  # the viewer's JS reads only the CSRF cookie, never the session
SESSION_COOKIE_SAMESITE = CSRF_COOKIE_SAMESITE = "Lax"

# Optional hospital SSO (OpenID Connect code flow, mozilla-django-oidc): on when a client id is set.
OIDC_RP_CLIENT_ID = env("OIDC_RP_CLIENT_ID", "")
SPINEAGENT_OIDC_ENABLED = bool(OIDC_RP_CLIENT_ID)
if SPINEAGENT_OIDC_ENABLED:
    INSTALLED_APPS.append("mozilla_django_oidc")
    AUTHENTICATION_BACKENDS.insert(0, "backend.accounts.oidc.RoleMappingOIDCBackend")
    OIDC_RP_CLIENT_SECRET = env("OIDC_RP_CLIENT_SECRET", "")
    OIDC_OP_AUTHORIZATION_ENDPOINT = env("OIDC_OP_AUTHORIZATION_ENDPOINT", "")
    OIDC_OP_TOKEN_ENDPOINT = env("OIDC_OP_TOKEN_ENDPOINT", "")
    OIDC_OP_USER_ENDPOINT = env("OIDC_OP_USER_ENDPOINT", "")
    OIDC_OP_JWKS_ENDPOINT = env("OIDC_OP_JWKS_ENDPOINT") or None
    OIDC_RP_SIGN_ALGO = env("OIDC_RP_SIGN_ALGO", "RS256")
    OIDC_RP_SCOPES = env("OIDC_RP_SCOPES", "openid email profile")
    OIDC_TIMEOUT = float(env("OIDC_TIMEOUT", "10"))
    LOGIN_REDIRECT_URL_FAILURE = "/login?sso=failed"
    missing = [n for n in ("OIDC_RP_CLIENT_SECRET", "OIDC_OP_AUTHORIZATION_ENDPOINT", "OIDC_OP_TOKEN_ENDPOINT",
                           "OIDC_OP_USER_ENDPOINT") if not globals()[n]]
    if missing:
        raise ImproperlyConfigured("OIDC_RP_CLIENT_ID is set but not " + ", ".join(missing))
# Which claim carries the IdP's groups/roles, and how its values map to our roles ("idp-value=role,...").
SPINEAGENT_OIDC_ROLE_CLAIM = env("SPINEAGENT_OIDC_ROLE_CLAIM", "groups")
SPINEAGENT_OIDC_ROLE_MAP = env("SPINEAGENT_OIDC_ROLE_MAP",
                               "radiologist=radiologist,annotator=annotator,admin=admin,qa_reviewer=qa_reviewer")
SPINEAGENT_OIDC_USERNAME_CLAIM = env("SPINEAGENT_OIDC_USERNAME_CLAIM", "preferred_username")

# Uploads through the API are de-identified (DICOM PS3.15 basic profile, dicognito) before Orthanc sees them.
SPINEAGENT_DEIDENTIFY_ON_INGEST = env_bool("SPINEAGENT_DEIDENTIFY_ON_INGEST", False)
# Pseudonym key: the same original UID maps to the same new UID across uploads (idempotent re-upload).
SPINEAGENT_DEIDENTIFY_KEY = env("SPINEAGENT_DEIDENTIFY_KEY", "")

# Image views are audited once per user and study within this many seconds (a viewer fetches every frame).
SPINEAGENT_AUDIT_IMAGE_VIEW_SECONDS = int(env("SPINEAGENT_AUDIT_IMAGE_VIEW_SECONDS", "900"))

# The viewer's site settings (backend/viewer/config.py): the sagittal sequence types hung side by side when
# a study opens (left to right), and how often OHIF's "investigational use only" notice is shown:
# once-per-user (acknowledged once, recorded on the account) or every-session (OHIF's own default).
SPINEAGENT_VIEWER_LAYOUT = tuple(s.strip().upper() for s in env("SPINEAGENT_VIEWER_LAYOUT", "T1,T2").split(",")
                                 if s.strip())
SPINEAGENT_VIEWER_NOTICE = env("SPINEAGENT_VIEWER_NOTICE", "once-per-user")
# The prebuilt OHIF viewer (scripts/build_viewer.sh): its dist under viewer/, the vendor bundle under ext/.
SPINEAGENT_OHIF_DIR = Path(env("SPINEAGENT_OHIF_DIR", str(BASE_DIR / "var" / "ohif")))


if PRODUCTION:
    problems = []
    if DEBUG:
        problems.append("DJANGO_DEBUG must be off")
    if SECRET_KEY == DEV_SECRET or len(SECRET_KEY) < 32:
        problems.append("DJANGO_SECRET_KEY must be set to a long random value")
    if ORTHANC_PASSWORD == "spineagent-dev-orthanc":
        problems.append("ORTHANC_PASSWORD must not be the development default")
    if ORTHANC_GATEWAY_PASSWORD == "spineagent-dev-gateway":
        problems.append("ORTHANC_GATEWAY_PASSWORD must not be the development default")
    if ORTHANC_WEBHOOK_SECRET == "spineagent-dev-webhook-secret":
        problems.append("ORTHANC_WEBHOOK_SECRET must not be the development default")
    if DATABASES["default"].get("PASSWORD") == "spineagent":
        problems.append("DATABASE_URL must carry a real database password, not the development default")
    if problems:
        raise ImproperlyConfigured("refusing to start in production mode: " + "; ".join(problems))
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = int(env("SPINEAGENT_HSTS_SECONDS", str(365 * 24 * 3600)))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SPINEAGENT_HSTS_INCLUDE_SUBDOMAINS", False)
    # TLS usually ends at the hospital's proxy, which redirects; set this when the app itself must.
    SECURE_SSL_REDIRECT = env_bool("SPINEAGENT_SSL_REDIRECT", False)
