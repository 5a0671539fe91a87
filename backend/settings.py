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
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "backend.accounts",
    "backend.studies",
    "backend.inference",
    "backend.dicomweb",
    "backend.reports",
    "backend.analytics",
    "backend.audit",
    "backend.annotations",
    "backend.training",
    "backend.viewer",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "backend.middleware.ServiceUnavailableMiddleware",
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

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
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
SPINEAGENT_MAX_UPLOAD_BYTES = int(env("SPINEAGENT_MAX_UPLOAD_BYTES", str(2 * 1024**3)))

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "backend.api_errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "SpineAgent API",
    "VERSION": "0.1.0",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
}

# --- Orthanc (DICOM store, DICOMweb) -------------------------------------------------
ORTHANC_URL = env("ORTHANC_URL", "http://127.0.0.1:8042").rstrip("/")
ORTHANC_USERNAME = env("ORTHANC_USERNAME", "spineagent")
ORTHANC_PASSWORD = env("ORTHANC_PASSWORD", "spineagent-dev-orthanc")
ORTHANC_DICOMWEB_ROOT = env("ORTHANC_DICOMWEB_ROOT", "/dicom-web")
ORTHANC_TIMEOUT = float(env("ORTHANC_TIMEOUT", "30"))
# Shared secret with the Orthanc plugin that announces stable studies (HMAC-SHA256).
ORTHANC_WEBHOOK_SECRET = env("ORTHANC_WEBHOOK_SECRET", "spineagent-dev-webhook-secret")

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

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
}

if PRODUCTION:
    problems = []
    if DEBUG:
        problems.append("DJANGO_DEBUG must be off")
    if SECRET_KEY == DEV_SECRET or len(SECRET_KEY) < 32:
        problems.append("DJANGO_SECRET_KEY must be set to a long random value")
    if ORTHANC_PASSWORD == "spineagent-dev-orthanc":
        problems.append("ORTHANC_PASSWORD must not be the development default")
    if ORTHANC_WEBHOOK_SECRET == "spineagent-dev-webhook-secret":
        problems.append("ORTHANC_WEBHOOK_SECRET must not be the development default")
    if problems:
        raise ImproperlyConfigured("refusing to start in production mode: " + "; ".join(problems))
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
