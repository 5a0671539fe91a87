"""Every endpoint x every role: generated from the URL conf and from the OpenAPI schema (every operation,
every method), so a new endpoint or a new method on an old one cannot be forgotten."""

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, resolve

pytestmark = [pytest.mark.django_db, pytest.mark.security]

UID = "1.2.826.0.1.3680043.10.999.7"
ALL = {"radiologist", "annotator", "admin", "qa_reviewer", "nobody"}
ROLES = {"radiologist", "annotator", "admin", "qa_reviewer"}
READERS = {"radiologist", "admin", "qa_reviewer"}  # who sees results and report texts

# url name -> (method, kwargs, roles allowed). Anonymous is always refused, except where noted.
MATRIX = {
    "me": ("get", {}, ALL),
    "me-logout-all": ("post", {}, ALL),
    "me-acknowledge-notice": ("post", {"notice": "investigational-use"}, ALL),
    "study-list": ("get", {}, ROLES),
    "study-detail": ("get", {"study_instance_uid": UID}, ROLES),
    "study-upload": ("post", {}, {"admin"}),
    "study-resync": ("post", {}, {"admin"}),
    "dicom-modalities": ("get", {}, {"admin"}),
    "study-queue-job": ("post", {"study_instance_uid": UID}, {"admin"}),
    "study-result": ("get", {"study_instance_uid": UID}, READERS),
    "study-result-sr-export": ("post", {"study_instance_uid": UID}, {"admin"}),
    "job-list": ("get", {}, READERS),
    "job-detail": ("get", {"pk": 1}, READERS),
    "model-version-list": ("get", {}, {"admin"}),
    "model-version-promote": ("post", {"pk": 1}, {"admin"}),
    "study-report": ("get", {"study_instance_uid": UID}, READERS),
    "study-report-state": ("get", {"study_instance_uid": UID}, READERS),
    "study-report-claim": ("post", {"study_instance_uid": UID}, {"radiologist"}),
    "study-report-versions": ("post", {"study_instance_uid": UID}, {"radiologist"}),
    "study-report-sign": ("post", {"study_instance_uid": UID}, {"radiologist"}),
    "study-report-addenda": ("post", {"study_instance_uid": UID}, {"radiologist"}),
    "study-report-diff": ("get", {"study_instance_uid": UID}, READERS),
    "worklist": ("get", {}, ROLES),
    "analytics-radpeer": ("get", {}, {"admin"}),
    "analytics-edits": ("get", {}, {"admin"}),
    "analytics-export": ("get", {}, {"admin"}),
    "schema": ("get", {}, ALL),
    "dicomweb": ("get", {"path": "studies"}, ROLES),
    # -- analytics (issue 8) --
    "analytics-conditions": ("get", {}, {"admin"}),
    "analytics-turnaround": ("get", {}, {"admin"}),
    "analytics-export-xlsx": ("get", {}, {"admin"}),
    "analytics-chart": ("get", {}, {"admin"}),
    "analytics-edit-burden": ("get", {}, {"admin"}),  # issue 23
    "analytics-draft-agreement": ("get", {}, {"admin"}),  # issue 23
    # -- annotations (issue 7) --
    "annotation-queue": ("get", {}, {"annotator", "admin"}),
    "annotation-task": ("get", {"pk": 1}, {"annotator", "admin"}),
    "annotation-submit": ("post", {"pk": 1}, {"annotator", "admin"}),
    "annotation-reveal": ("post", {"pk": 1}, {"annotator", "admin"}),  # issue 23 (blind mode)
    "annotation-adjudication-queue": ("get", {}, {"admin"}),
    "annotation-adjudicate": ("post", {"pk": 1}, {"admin"}),
    "annotation-import": ("post", {}, {"admin"}),
    "annotation-metrics": ("get", {}, {"admin"}),
    # -- training (issue 7) --
    "dataset-list": ("get", {}, {"admin"}),
    "dataset-detail": ("get", {"pk": 1}, {"admin"}),
    "dataset-export-json": ("get", {"pk": 1}, {"admin"}),
    "dataset-export-csv": ("get", {"pk": 1}, {"admin"}),
    "training-run-list": ("get", {}, {"admin"}),
    "training-run-detail": ("get", {"pk": 1}, {"admin"}),
    "training-run-comparison": ("get", {"pk": 1}, {"admin"}),
    # -- RADPEER peer review (issue 23) --
    "qa-queue": ("get", {}, {"qa_reviewer", "admin"}),
    "qa-case": ("get", {"pk": 1}, {"qa_reviewer", "admin"}),
    "qa-review": ("post", {"pk": 1}, {"qa_reviewer", "admin"}),
    "training-run-gate": ("get", {"pk": 1}, {"admin"}),
    "training-run-promote": ("post", {"pk": 1}, {"admin"}),
    "training-run-reject": ("post", {"pk": 1}, {"admin"}),
    # -- audit / security (issue 9) --
    "audit-event-list": ("get", {}, {"admin"}),
    "audit-export": ("get", {}, {"admin"}),
}
# Further methods on the same URLs (the schema lists them): (url name, method) -> roles allowed.
METHODS = {
    ("dataset-list", "post"): {"admin"},
    ("training-run-list", "post"): {"admin"},
}
# Not user-facing: authenticated another way, or public by design.
EXEMPT = {
    "orthanc-stable-study": "HMAC-signed by our Orthanc plugin; see test_orthanc_events.py",
    "health": "liveness probe, reveals nothing",
    "login": "the login page itself",
    "logout": "ends the caller's own session",
    "logout-everywhere": "ends the caller's own sessions and tokens (page form; login_required, POST, CSRF)",
    "worklist-page": "HTML page: login_required redirects to /login; its data comes from the worklist API",
    "page-asset": "static JS/CSS of the login and worklist pages, no data",
    "viewer": "OHIF's public static build; index.html is login_required (redirect), data only via /dicom-web/",
    "viewer-app-config": "static viewer config (URLs of our own gateway and extension), no data",
    "viewer-ext": "our extension's static ES modules, no data",
    "dicomweb-fast-path": "nginx's auth_request decision for /dicom-web/ reads: allows only a credential the gateway "
                          "checked in full (test_gateway.py::test_fast_path_decision_allows_only_what_the_gateways_"
                          "fast_path_would); nginx refuses /internal/ from outside (security/test_nginx_front.py)",
    # -- exempt additions (issues 7, 8, 9) --
    "analytics-dashboard": "HTML page: login_required + view_analytics checked on the server (test_analytics_figures.py)",
    "oidc_authentication_init": "hospital SSO start (only when OIDC is configured): redirects to the IdP",
    "oidc_authentication_callback": "hospital SSO return: authenticates by the IdP's signed code flow",
    "oidc_logout": "ends the caller's own session (only when OIDC is configured)",
    "annotate-queue": "HTML page: login_required + verify_labels checked on the server (test_annotations_pages.py)",
    "annotate-task": "HTML page: login_required + verify_labels + in the caller's queue (test_annotations_pages.py)",
    "annotate-asset": "static JS/CSS of the annotator pages, no data",
    "annotate-next": "HTML redirect: login_required + verify_labels; only to a task of the caller's own queue",
    "qa-queue-page": "HTML page: login_required + qa.review_case checked on the server (test_qa.py)",
    "qa-case-page": "HTML page: login_required + qa.review_case + not the reader's own case (test_qa.py)",
    "training-page": "HTML page: login_required + manage_datasets/run_training checked on the server "
                     "(test_training_pages.py)",
    "training-dataset-page": "HTML page: login_required + manage_datasets/run_training (test_training_pages.py)",
    "training-run-page": "HTML page: login_required + manage_datasets/run_training (test_training_pages.py)",
    "training-asset": "static JS/CSS of the training pages, no data",
}


def named_urls(resolver=None, prefix=""):
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            if entry.app_name == "admin" or (entry.namespace or "") in ("admin", "rest_framework"):
                continue
            yield from named_urls(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern) and entry.name:
            yield entry.name


def test_every_named_url_is_in_the_matrix():
    names = set(named_urls())
    assert names - set(MATRIX) - set(EXEMPT) == set(), "add the new endpoint to MATRIX with its roles"
    assert set(MATRIX) - names == set(), "MATRIX names an endpoint that no longer exists"


@pytest.mark.parametrize("name", sorted(MATRIX))
@pytest.mark.parametrize("role", [None, "nobody", "radiologist", "annotator", "admin", "qa_reviewer"])
def test_permission_matrix(name, role, client_for, settings):
    from django.urls import reverse

    from backend.devstack.services import free_port

    settings.ORTHANC_URL = f"http://127.0.0.1:{free_port()}"  # allowed calls must not reach a real store
    method, kwargs, allowed = MATRIX[name]
    response = getattr(client_for(role), method)(reverse(name, kwargs=kwargs))
    if role is not None and role in allowed:
        assert response.status_code not in (401, 403), f"{role} refused on {name}"
    else:
        assert response.status_code in (401, 403), f"{role} allowed on {name}: {response.status_code}"


def schema_operations():
    """(path, method, url name) of every operation in our OpenAPI schema."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    for path, item in schema["paths"].items():
        concrete = path
        for name in ("study_instance_uid", "pk", "id"):
            concrete = concrete.replace("{" + name + "}", UID if name == "study_instance_uid" else "1")
        for method in item:
            if method in ("get", "post", "put", "patch", "delete"):
                yield path, method, resolve(concrete).url_name


def expected_roles(name: str, method: str):
    if (name, method) in METHODS:
        return METHODS[(name, method)]
    matrix_method, _, roles = MATRIX[name]
    return roles if matrix_method == method else None


def test_every_schema_operation_has_roles():
    missing = [(path, method) for path, method, name in schema_operations()
               if name not in EXEMPT and expected_roles(name, method) is None]
    assert not missing, f"add these operations to MATRIX or METHODS with their roles: {missing}"


@pytest.mark.parametrize("role", [None, "nobody", "radiologist", "annotator", "admin", "qa_reviewer"])
def test_every_schema_operation_x_role(role, client_for, settings):
    """The schema's operations beyond the URL matrix (other methods), each refused or allowed as declared."""
    from backend.devstack.services import free_port

    settings.ORTHANC_URL = f"http://127.0.0.1:{free_port()}"
    client = client_for(role)
    for path, method, name in schema_operations():
        if name in EXEMPT or (name, method) not in METHODS:
            continue  # the URL matrix above already covers the rest
        url = path.replace("{pk}", "1").replace("{study_instance_uid}", UID)
        response = getattr(client, method)(url, {}, format="json")
        if role is not None and role in METHODS[(name, method)]:
            assert response.status_code not in (401, 403), f"{role} refused on {method} {path}"
        else:
            assert response.status_code in (401, 403), f"{role} allowed on {method} {path}: {response.status_code}"
