"""The stored case embeddings a retraining uses: one per dataset item, from a compatible model version.

``analyze`` stores the case embedding its diagnosis probes consume in ``InferenceResult.data["embedding"]``.
Any model version whose encoders, CLIP projection, synthesizer and configs are identical to the base's
(``spinefm.retrain.embedding_key``) embeds a study the same way, so its stored embeddings serve the base
too: a candidate retrained from the base, once promoted, keeps feeding later retrainings. Items whose study
has no such embedding are listed as skipped, with the reason, never silently dropped.
"""

from __future__ import annotations

from functools import lru_cache

from backend.inference.analyzers import NO_FINDINGS
from backend.inference.models import InferenceResult, ModelVersion
from spinefm.bundle import BundleError, read_manifest
from spinefm.retrain import Example, embedding_key

from .datasets import condition_targets


@lru_cache(maxsize=64)
def _key_of(path: str, manifest_sha256: str) -> str | None:
    try:
        return embedding_key(read_manifest(path))
    except BundleError:
        return None


def key_of(mv: ModelVersion) -> str | None:
    """The version's embedding key, or None for placeholders and bundles no longer on disk."""
    if mv.path == NO_FINDINGS:
        return None
    return _key_of(mv.path, mv.manifest_sha256)


def compatible_versions(base: ModelVersion) -> list[int]:
    """Ids of the model versions whose stored embeddings equal the base's own."""
    key = key_of(base)
    if key is None:
        return []
    return [mv.pk for mv in ModelVersion.objects.all() if mv.pk == base.pk or key_of(mv) == key]


def embedding_dim(base: ModelVersion) -> int:
    return int(read_manifest(base.path)["configs"]["clip"]["proj_dim"])


def gather(items: list[dict], base: ModelVersion) -> tuple[dict[str, list[Example]], list[dict]]:
    """(examples per split, skipped items with reasons), newest compatible embedding per study."""
    versions = compatible_versions(base)
    dim = embedding_dim(base)
    uids = sorted({i["study_instance_uid"] for i in items})
    latest: dict[str, list] = {}
    rows = (InferenceResult.objects.filter(study__study_instance_uid__in=uids, model_version_id__in=versions)
            .order_by("-created_at", "-pk").values_list("study__study_instance_uid", "data__embedding"))
    for uid, emb in rows.iterator():
        if uid not in latest and isinstance(emb, list) and len(emb) == dim:
            latest[uid] = emb
    examples: dict[str, list[Example]] = {"train": [], "val": [], "test": []}
    skipped = []
    for item in items:
        emb = latest.get(item["study_instance_uid"])
        if emb is None:
            skipped.append({"task_id": item["task_id"], "study_instance_uid": item["study_instance_uid"],
                            "split": item["split"],
                            "reason": f"no stored case embedding from {base.name} {base.version} or a model "
                                      "version with the same encoders (run inference on the study first)"})
            continue
        # The probes are per condition: targets derived from the item's per-level labels.
        examples[item["split"]].append(Example(emb, condition_targets(item), item["study_instance_uid"]))
    return examples, skipped
