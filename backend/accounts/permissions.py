"""DRF permission classes built from model permissions (checked on the server, per request)."""

from rest_framework.permissions import BasePermission


def require_perms(*perms: str) -> type[BasePermission]:
    """A permission class that needs an authenticated user holding all ``perms``."""

    class HasPerms(BasePermission):
        required = perms
        message = f"requires permission: {', '.join(perms)}"

        def has_permission(self, request, view):
            user = request.user
            return bool(user and user.is_authenticated and user.has_perms(perms))

    HasPerms.__name__ = "Has_" + "_".join(p.split(".")[1] for p in perms)
    return HasPerms


CanViewStudies = require_perms("studies.view_study")
CanViewImages = require_perms("studies.view_images")
CanUploadStudies = require_perms("studies.upload_study")
CanResyncIndex = require_perms("studies.resync_index")
CanViewJobs = require_perms("inference.view_inferencejob")
CanQueueJobs = require_perms("inference.queue_job")
CanViewModelVersions = require_perms("inference.view_modelversion")
CanManageModelVersions = require_perms("inference.manage_model_versions")
