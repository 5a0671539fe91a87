"""The top navigation bar of every page of ours (base.html): the pages the user's permissions open, by role."""

from __future__ import annotations

from backend.accounts.roles import role_of

# (key, label, URL, permission that opens it; None: staff only, the Django admin)
PAGES = (
    ("worklist", "Worklist", "/", "studies.view_study"),
    ("annotate", "Label verification", "/annotate/", "annotations.verify_labels"),
    ("qa", "QA review", "/qa/", "qa.review_case"),
    ("analytics", "Analytics", "/analytics/", "analytics.view_analytics"),
    ("training", "Training", "/training/", "training.run_training"),
    ("admin", "Admin", "/admin/", None),
)


def links_for(user, path: str = "/") -> list[dict]:
    """The pages ``user`` may open, the one ``path`` is on marked current."""
    if not user.is_authenticated:
        return []
    links = []
    for key, label, url, perm in PAGES:
        allowed = user.is_staff if perm is None else user.has_perm(perm)
        if allowed:
            current = path == url if url == "/" else path.startswith(url)
            links.append({"key": key, "label": label, "url": url, "current": current or (key == "worklist"
                                                                                       and path == "/worklist")})
    return links


def navigation(request) -> dict:
    """Template context processor: ``nav_links`` and the user's ``role`` for the header."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav_links": []}
    return {"nav_links": links_for(user, request.path), "role": role_of(user) or "none"}
