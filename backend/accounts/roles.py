"""The roles as Django groups with explicit permissions.

Permissions, not group names, are what views check, so a site can grant a
permission to another group without code changes. The table is applied after
every migrate (``sync_role_groups``) so it stays in step with the code.
"""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission

RADIOLOGIST = "radiologist"
ANNOTATOR = "annotator"
ADMIN = "admin"
QA_REVIEWER = "qa_reviewer"
ROLES = (RADIOLOGIST, ANNOTATOR, ADMIN, QA_REVIEWER)

# app_label.codename for each role. Custom permissions are declared on the models' Meta.
ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    RADIOLOGIST: (
        "studies.view_study",
        "studies.view_images",
        "inference.view_inferencejob",
        "inference.view_inferenceresult",
        "reports.view_report",
        "reports.change_report",
        "reports.sign_report",
        "reports.view_worklist",
    ),
    ANNOTATOR: (
        "studies.view_study",
        "studies.view_images",
        "reports.view_worklist",  # statuses only; report text stays radiologist/admin
        "annotations.verify_labels",
    ),
    # RADPEER peer review of other readers' signed reports: sees studies, images and reports, edits none.
    QA_REVIEWER: (
        "studies.view_study",
        "studies.view_images",
        "inference.view_inferencejob",
        "inference.view_inferenceresult",
        "reports.view_report",
        "reports.view_worklist",
        "qa.review_case",
    ),
    ADMIN: (
        "studies.view_study",
        "studies.view_images",
        "studies.upload_study",
        "studies.resync_index",
        "inference.view_inferencejob",
        "inference.view_inferenceresult",
        "inference.queue_job",
        "inference.view_modelversion",
        "inference.manage_model_versions",
        "reports.view_report",
        "reports.view_worklist",
        "analytics.view_analytics",
        "annotations.verify_labels",
        "annotations.adjudicate_labels",
        "annotations.import_reports",
        "annotations.view_label_metrics",
        "training.manage_datasets",
        "training.run_training",
        "audit.view_auditevent",
        "qa.review_case",
        # The Django admin's user pages: grant roles and the identified export (limited in accounts/admin.py).
        "auth.view_user",
        "auth.add_user",
        "auth.change_user",
        "auth.view_group",
    ),
}


def _permission(dotted: str) -> Permission:
    app_label, codename = dotted.split(".")
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


def sync_role_groups(**kwargs) -> None:
    """Create the role groups and set exactly the permissions of the table.

    Runs after each app's migrate. Django's own post_migrate receiver creates an app's permissions and may
    run after this one, so the permissions of the apps the table names are created here first (idempotent).
    """
    from django.apps import apps
    from django.contrib.auth.management import create_permissions

    for app_label in {p.split(".")[0] for perms in ROLE_PERMISSIONS.values() for p in perms}:
        create_permissions(apps.get_app_config(app_label), verbosity=0, using=kwargs.get("using", "default"))
    try:
        for role, perms in ROLE_PERMISSIONS.items():
            group, _ = Group.objects.get_or_create(name=role)
            group.permissions.set([_permission(p) for p in perms])
    except Permission.DoesNotExist:
        # Some app's permissions are not created yet (partial migrate); the next migrate syncs.
        return


def role_of(user) -> str | None:
    """The user's role name (admin wins), or None."""
    if not user or not user.is_authenticated:
        return None
    if user.is_superuser:
        return ADMIN
    names = set(user.groups.values_list("name", flat=True))
    for role in (ADMIN, RADIOLOGIST, QA_REVIEWER, ANNOTATOR):
        if role in names:
            return role
    return None
