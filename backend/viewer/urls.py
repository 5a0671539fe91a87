"""Pages for people (login, worklist) and the OHIF viewer with our extension. The APIs live in backend/urls.py."""

from django.contrib.auth import views as auth_views
from django.urls import path, re_path

from backend.accounts.views import logout_everywhere

from . import views

urlpatterns = [
    path("", views.worklist, name="worklist-page"),
    path("worklist", views.worklist),
    path("login", auth_views.LoginView.as_view(template_name="viewer/login.html", redirect_authenticated_user=True),
         name="login"),
    path("logout", auth_views.LogoutView.as_view(), name="logout"),
    path("logout-everywhere", logout_everywhere, name="logout-everywhere"),
    path("assets/<path:path>", views.page_asset, name="page-asset"),
    path("viewer/app-config.js", views.app_config, name="viewer-app-config"),
    re_path(r"^viewer-ext/(?P<path>.*)$", views.extension_file, name="viewer-ext"),
    re_path(r"^viewer(?:/(?P<path>.*))?$", views.viewer, name="viewer"),
]
