"""URL map. Every API view names its permission; see tests/backend/test_permissions.py."""

from django.contrib import admin
from django.http import JsonResponse
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView

from backend.accounts.views import AcknowledgeNotice, LogoutAll, MeView
from backend.dicomweb.views import DicomWebGateway, fast_path_decision
from backend.inference import views as inference
from backend.reports import views as reports
from backend.studies import views as studies


def health(request):
    return JsonResponse({"status": "ok"})


api = [
    path("me", MeView.as_view(), name="me"),
    path("me/logout-all", LogoutAll.as_view(), name="me-logout-all"),
    path("me/notices/<str:notice>", AcknowledgeNotice.as_view(), name="me-acknowledge-notice"),
    path("studies/", studies.StudyList.as_view(), name="study-list"),
    path("studies/upload", studies.StudyUpload.as_view(), name="study-upload"),
    path("studies/resync", studies.StudyResync.as_view(), name="study-resync"),
    path("dicom/modalities", studies.DicomModalities.as_view(), name="dicom-modalities"),
    path("studies/<str:study_instance_uid>/", studies.StudyDetail.as_view(), name="study-detail"),
    path("studies/<str:study_instance_uid>/jobs", inference.QueueJob.as_view(), name="study-queue-job"),
    path("studies/<str:study_instance_uid>/result", inference.LatestResult.as_view(), name="study-result"),
    path("studies/<str:study_instance_uid>/result/sr-export", reports.RetrySRExport.as_view(),
         name="study-result-sr-export"),
    path("studies/<str:study_instance_uid>/report", reports.StudyReport.as_view(), name="study-report"),
    path("studies/<str:study_instance_uid>/report/versions", reports.ReportVersions.as_view(),
         name="study-report-versions"),
    path("studies/<str:study_instance_uid>/report/state", reports.ReportState.as_view(), name="study-report-state"),
    path("studies/<str:study_instance_uid>/report/claim", reports.ClaimReport.as_view(), name="study-report-claim"),
    path("studies/<str:study_instance_uid>/report/sign", reports.SignReport.as_view(), name="study-report-sign"),
    path("studies/<str:study_instance_uid>/report/addenda", reports.ReportAddenda.as_view(),
         name="study-report-addenda"),
    path("studies/<str:study_instance_uid>/report/diff", reports.ReportDiff.as_view(), name="study-report-diff"),
    path("worklist", reports.Worklist.as_view(), name="worklist"),
    path("jobs/", inference.JobList.as_view(), name="job-list"),
    path("jobs/<int:pk>/", inference.JobDetail.as_view(), name="job-detail"),
    path("model-versions/", inference.ModelVersionList.as_view(), name="model-version-list"),
    path("model-versions/<int:pk>/promote", inference.PromoteModelVersion.as_view(), name="model-version-promote"),
    path("orthanc/stable-study", studies.OrthancStableStudy.as_view(), name="orthanc-stable-study"),
    path("analytics/", include("backend.analytics.urls")),  # radpeer, edits, conditions, turnaround, exports, charts
    path("schema", SpectacularAPIView.as_view(), name="schema"),
    path("annotations/", include("backend.annotations.urls")),  # label queue, verification, agreement
    path("training/", include("backend.training.urls")),  # dataset versions, training runs
    path("audit/", include("backend.audit.urls")),  # audit log (admin)
    path("qa/", include("backend.qa.urls")),  # RADPEER peer review: queue, case, review
]

def not_found(request, exception=None):
    """404 for a URL that matches no route: the API's one error body under /api/, Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"error": "not_found", "detail": f"no API resource at {request.path}"}, status=404)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


handler404 = "backend.urls.not_found"

urlpatterns = [
    path("health", health, name="health"),
    path("api/", include(api)),
    path("api-auth/", include("rest_framework.urls")),
    path("admin/", admin.site.urls),
    re_path(r"^dicom-web/(?P<path>.*)$", DicomWebGateway.as_view(), name="dicomweb"),
    # nginx's auth_request for /dicom-web/ reads (docker/nginx/nginx.conf); nginx refuses it from outside.
    path("internal/dicomweb-decision", fast_path_decision, name="dicomweb-fast-path"),
    path("", include("backend.accounts.urls")),  # /oidc/... hospital SSO, only when OIDC is configured
    path("annotate/", include("backend.annotations.page_urls")),  # the annotator's HTML pages
    path("analytics/", include("backend.analytics.page_urls")),  # the admin's analytics dashboard
    path("qa/", include("backend.qa.page_urls")),  # the QA reviewer's pages
    path("training/", include("backend.training.page_urls")),  # datasets, retraining runs, promotion
    path("", include("backend.viewer.urls")),  # login, worklist, /viewer/ (OHIF), /viewer-ext/ (our extension)
]
