"""Routes of the accounts app: the hospital SSO endpoints, present only when SSO is configured.

backend/urls.py includes this at the site root (``path("", include("backend.accounts.urls"))``), giving
/oidc/authenticate/, /oidc/callback/ and /oidc/logout/ when ``SPINEAGENT_OIDC_ENABLED``.
"""

from django.conf import settings
from django.urls import include, path

urlpatterns = []
if settings.SPINEAGENT_OIDC_ENABLED:
    urlpatterns.append(path("oidc/", include("mozilla_django_oidc.urls")))
