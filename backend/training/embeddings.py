"""The stored case embeddings a retraining uses: one per dataset item, from a compatible model version.

``analyze`` stores the case embedding its diagnosis probes consume in ``InferenceResult.data["embedding"]``.
Any model version whose encoders, CLIP projection, synthesizer and configs are identical to the base's
(``spinefm.bundle.embedding_key``) embeds a study the same way, so its stored embeddings serve the base
too: a candidate retrained from the base, once promoted, keeps feeding later retrainings. Items whose study
has no such embedding are listed as skipped, with the reason, never silently dropped.
"""

from __future__ import annotations

from functools import lru_cache

from backend.inference.analyzers import NO_FINDINGS
from backend.inference.models import InferenceResult, ModelVersion
from spinefm.bundle import BundleError, embedding_key, read_manifest
from spinefm.train.retrain import Example

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


def latest(base: ModelVersion, key: str, **study_filter) -> dict:
    """{study ``key`` value: the newest stored case embedding the base can use} for the studies matching
    ``study_filter`` (lookups on ``study__``): from the base or a compatible version, of the base's size."""
    versions, dim = compatible_versions(base), embedding_dim(base)
    found: dict = {}
    rows = (InferenceResult.objects.filter(model_version_id__in=versions,
                                           **{f"study__{k}": v for k, v in study_filter.items()})
            .order_by("-created_at", "-pk").values_list(f"study__{key}", "data__embedding"))
    for study, emb in rows.iterator():
        if study not in found and isinstance(emb, list) and len(emb) == dim:
            found[study] = emb
    return found


def gather(items: list[dict], base: ModelVersion) -> tuple[dict[str, list[Example]], list[dict]]:
    """(examples per split, skipped items with reasons), newest compatible embedding per study."""
    latest_by_uid = latest(base, "study_instance_uid",
                           study_instance_uid__in=sorted({i["study_instance_uid"] for i in items}))
    examples: dict[str, list[Example]] = {"train": [], "val": [], "test": []}
    skipped = []
    for item in items:
        emb = latest_by_uid.get(item["study_instance_uid"])
        if emb is None:
            skipped.append({"task_id": item["task_id"], "study_instance_uid": item["study_instance_uid"],
                            "split": item["split"],
                            "reason": f"no stored case embedding from {base.name} {base.version} or a model "
                                      "version with the same encoders (run inference on the study first)"})
            continue
        # The probes are per condition: targets derived from the item's per-level labels.
        examples[item["split"]].append(Example(emb, condition_targets(item), item["study_instance_uid"]))
    return examples, skipped
