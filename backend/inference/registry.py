"""Registering and promoting model versions. Promotion is atomic: one active version at a time."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from backend import celery
from spinefm.bundle import MANIFEST, manifest_sha256, read_manifest

from .analyzers import NO_FINDINGS
from .models import ModelVersion


def register_bundle(path: Path | str, state: str = ModelVersion.CANDIDATE) -> ModelVersion:
    """Register a bundle directory from its manifest (idempotent on name + version)."""
    if str(path) == NO_FINDINGS:
        mv, _ = ModelVersion.objects.get_or_create(
            name="no-findings-placeholder", version="0",
            defaults={"path": NO_FINDINGS, "synthetic_training": False, "notes": "pipeline placeholder"})
    else:
        path = Path(path).resolve()
        if not (path / MANIFEST).is_file():
            raise FileNotFoundError(f"{path} is not a model bundle (no {MANIFEST})")
        manifest = read_manifest(path)
        mv, _ = ModelVersion.objects.update_or_create(
            name=manifest["name"], version=str(manifest["version"]),
            defaults={
                "path": str(path),
                "metrics": manifest.get("metrics", {}),
                "synthetic_training": bool(manifest.get("synthetic_training", True)),
                "manifest_sha256": manifest_sha256(path),
            },
        )
    if state == ModelVersion.ACTIVE:
        promote(mv)
    return mv


@transaction.atomic
def promote(model_version: ModelVersion) -> ModelVersion:
    """Make this the active version; the previous one is retired. New jobs use it at once."""
    ModelVersion.objects.select_for_update().filter(state=ModelVersion.ACTIVE).exclude(
        pk=model_version.pk).update(state=ModelVersion.RETIRED)
    model_version.state = ModelVersion.ACTIVE
    model_version.promoted_at = timezone.now()
    model_version.save(update_fields=["state", "promoted_at"])
    if settings.SPINEAGENT_SITE_INDEX == "signed" and model_version.path != NO_FINDINGS:
        # by name: the training app's task (its queue's worker holds the text encoder), no import circle
        transaction.on_commit(lambda: celery.enqueue("backend.training.tasks.rebuild_site_index", model_version.pk),
                              robust=True)
    return model_version
