"""What a user has acknowledged once (a site notice), so it is not shown again in every new browser."""

from django.conf import settings
from django.db import models


class NoticeAcknowledgement(models.Model):
    INVESTIGATIONAL_USE = "investigational-use"  # OHIF's "for investigational use only" notice in the viewer
    NOTICES = [(INVESTIGATIONAL_USE, "Viewer: for investigational use only")]

    user = models.ForeignKey(settings.AUTH_USER_MODEL, related_name="notice_acknowledgements",
                             on_delete=models.CASCADE)
    notice = models.CharField(max_length=32, choices=NOTICES)
    acknowledged_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "notice"], name="one_acknowledgement_per_notice")]

    def __str__(self):
        return f"{self.user_id} acknowledged {self.notice}"


def has_acknowledged(user, notice: str) -> bool:
    return bool(user and user.is_authenticated
                and NoticeAcknowledgement.objects.filter(user=user, notice=notice).exists())
