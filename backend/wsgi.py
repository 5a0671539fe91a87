import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.settings")
application = get_wsgi_application()

# nginx's per-frame image decisions, answered without the full request cycle where it would change nothing
from backend.dicomweb.quick_decision import QuickDecision  # noqa: E402  (needs the apps loaded above)

application = QuickDecision(application)
