"""``{% sso_login_url as url %}``: the hospital SSO entry point, or None when SSO is off or not routed."""

from django import template
from django.conf import settings
from django.urls import NoReverseMatch, reverse

register = template.Library()


@register.simple_tag
def sso_login_url():
    if not settings.SPINEAGENT_OIDC_ENABLED:
        return None
    try:
        return reverse("oidc_authentication_init")
    except NoReverseMatch:  # settings on but the lead's urls.py line absent: show no dead button
        return None
