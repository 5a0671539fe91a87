"""Dataset versions: immutable snapshots of verified labels, split by patient, exported as JSON/CSV.

Only :class:`~backend.annotations.models.VerifiedLabels` are snapshotted (extractions are suggestions,
never ground truth). Each item is assigned to train/val/test by hashing ``(seed, patient)``: the
assignment of a patient depends on nothing else, so

* every study of one patient lands in the same split (no patient spans splits);
* the same seed gives the same split for a patient in every later dataset version, so a patient who was
  in the test split of version 1 is never in the training split of version 2 (comparisons across
  versions do not leak);
* tasks without a patient id fall back to their StudyInstanceUID as the group.

The ratios are the expected shares (default 70/15/15); with few patients the realised shares wander,
which ``counts`` shows.

Each item carries ``labels`` {condition: 1|0|-1} and ``level_labels`` {condition: {level | "study": 1|0|-1}}
(``backend.annotations.levels``; rows verified before per-level labels sit at "study"). The diagnosis
probes train per condition, on targets derived from the levels (:func:`condition_targets`); versions made
before ``level_labels`` existed keep their ``labels``. The levels themselves train the level agent in the
image chains (chain.py): the cells :func:`present_levels` lists become its targets.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils.dateparse import parse_date, parse_datetime

from backend.annotations import levels
from backend.annotations.models import LabelTask, VerifiedLabels
from backend.errors import Conflict, Invalid
from backend.spreadsheets import csv_lines
from spinefm.conditions import CONDITIONS, LABEL_NAMES, LabelValue

from .models import DatasetVersion

SPLITS = ("train", "val", "test")
DEFAULT_RATIOS = {"train": 0.70, "val": 0.15, "test": 0.15}
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
NAME_MESSAGE = "name must be 1-128 characters: letters, digits, '.', '_' or '-', starting with a letter or digit"
SEED_LIMIT = 2**31
SYNTHETIC_NOTE = "SYNTHETIC: contains labels of synthetic phantom studies; not patient data"
ITEM_FIELDS = ("task_id", "study_instance_uid", "patient_id", "group", "split", "source", "method", "decided_at",
               "synthetic")


# ---- the split -------------------------------------------------------------------------------------------------

def split_group(patient_id: str, study_instance_uid: str) -> str:
    """The unit that never spans splits: the patient, or the study when the patient is unknown."""
    patient = (patient_id or "").strip()
    return f"patient:{patient}" if patient else f"study:{study_instance_uid}"


def split_of(group: str, seed: int, ratios: Mapping[str, float] = DEFAULT_RATIOS) -> str:
    """Deterministic split of a group: a uniform number from sha256(seed, group) against cumulative ratios."""
    digest = hashlib.sha256(f"spineagent-split\x00{seed}\x00{group}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    edge = 0.0
    for split in SPLITS:
        edge += ratios[split]
        if u < edge:
            return split
    return SPLITS[-1] if ratios[SPLITS[-1]] > 0 else max(SPLITS, key=lambda s: ratios[s])


def parse_ratios(raw: Any) -> dict[str, float]:
    """{"train", "val", "test"} non-negative numbers (normalised to sum 1); train and test must be > 0."""
    if raw in (None, ""):
        return dict(DEFAULT_RATIOS)
    if not isinstance(raw, Mapping) or set(raw) - set(SPLITS):
        raise Invalid(f"ratios must be an object with keys {', '.join(SPLITS)}", field="ratios")
    values = {}
    for s in SPLITS:
        v = raw.get(s, 0)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1e6:
            raise Invalid(f"ratios.{s} must be a non-negative number", field="ratios")
        values[s] = float(v)
    total = sum(values.values())
    if values["train"] <= 0 or values["test"] <= 0:
        raise Invalid("ratios.train and ratios.test must be greater than 0", field="ratios")
    return {s: values[s] / total for s in SPLITS}


def parse_seed(raw: Any) -> int:
    if raw in (None, ""):
        return 0
    try:
        seed = int(raw)
    except (TypeError, ValueError):
        raise Invalid("seed must be an integer", field="seed") from None
    if isinstance(raw, (bool, float)) or not -SEED_LIMIT <= seed < SEED_LIMIT:
        raise Invalid("seed must be an integer in [-2^31, 2^31)", field="seed")
    return seed


# ---- filters ---------------------------------------------------------------------------------------------------

def _when(value: Any, field: str, end: bool) -> dt.datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, str):
        try:
            moment = parse_datetime(value)
            day = None if moment else parse_date(value)
        except ValueError:
            moment = day = None
        if moment is not None:
            return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)
        if day is not None and day < dt.date.max:
            return dt.datetime.combine(day + dt.timedelta(days=1) if end else day, dt.time(), dt.timezone.utc)
    raise Invalid(f"filters.{field} must be an ISO date (YYYY-MM-DD) or date-time", field=f"filters.{field}")


def parse_filters(raw: Any) -> dict:
    """Optional {"source": imported|signed, "method": single|agreement|adjudicated, "decided_from", "decided_to"}."""
    if raw in (None, ""):
        return {}
    if not isinstance(raw, Mapping):
        raise Invalid("filters must be an object", field="filters")
    known = {"source", "method", "decided_from", "decided_to"}
    if unknown := sorted(str(k) for k in raw if k not in known):
        raise Invalid(f"unknown filter(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}", field="filters")
    clean: dict[str, str] = {}
    for key, choices in (("source", LabelTask.SOURCES), ("method", VerifiedLabels.METHODS)):
        if raw.get(key) not in (None, ""):
            if raw[key] not in dict(choices):
                raise Invalid(f"filters.{key} must be one of {', '.join(dict(choices))}", field=f"filters.{key}")
            clean[key] = raw[key]
    moments = {key: _when(raw.get(key), key, end=key == "decided_to") for key in ("decided_from", "decided_to")}
    if None not in moments.values() and moments["decided_from"] >= moments["decided_to"]:
        raise Invalid("filters.decided_from must be before filters.decided_to", field="filters")
    clean.update({key: moment.isoformat() for key, moment in moments.items() if moment is not None})
    return clean


def verified_queryset(filters: Mapping[str, str]):
    qs = VerifiedLabels.objects.select_related("task", "task__study").order_by("task__study_instance_uid", "task_id")
    if "source" in filters:
        qs = qs.filter(task__source=filters["source"])
    if "method" in filters:
        qs = qs.filter(method=filters["method"])
    if "decided_from" in filters:
        qs = qs.filter(decided_at__gte=filters["decided_from"])
    if "decided_to" in filters:
        qs = qs.filter(decided_at__lt=filters["decided_to"])
    return qs


# ---- items, counts, hash ---------------------------------------------------------------------------------------

def is_synthetic(task: LabelTask) -> bool:
    """A phantom study says so: spine_phantom writes SYNTHETIC in StudyDescription and PHANTOM- patient ids."""
    study = task.study
    patient = task.patient_id or (study.patient_id if study else "")
    return patient.upper().startswith("PHANTOM-") or bool(study and "SYNTHETIC" in study.study_description.upper())


def make_items(verified, seed: int, ratios: Mapping[str, float]) -> list[dict]:
    items = []
    for v in verified:
        task = v.task
        patient = task.patient_id or (task.study.patient_id if task.study else "")
        group = split_group(patient, task.study_instance_uid)
        items.append({
            "task_id": task.pk, "study_instance_uid": task.study_instance_uid, "patient_id": patient,
            "group": group, "split": split_of(group, seed, ratios), "source": task.source, "method": v.method,
            "decided_at": v.decided_at.isoformat(), "synthetic": is_synthetic(task),
            "labels": {k: int(val) for k, val in sorted(v.labels.items())},
            "level_labels": {k: dict(at) for k, at in sorted(levels.of_annotation(v).items())},
        })
    return items


def condition_targets(item: Mapping) -> dict[str, int]:
    """The per-condition training targets of an item: derived from its per-level labels where it has them
    (present at any level, absent at all, else uncertain); an item of an older version: its ``labels``."""
    by_level = item.get("level_labels")
    return levels.derive(by_level) if by_level else {k: int(v) for k, v in item["labels"].items()}


def present_levels(item: Mapping) -> list[tuple[str, str]]:
    """(condition, spinal level) cells an item's verified labels call present: the level agent's targets
    ("study" and "multilevel" name no level; uncertain and absent levels are no targets)."""
    return [(k, lv) for k, at in sorted((item.get("level_labels") or {}).items())
            for lv in levels.ordered(at) if at[lv] == LabelValue.PRESENT and lv in levels.SPINE_LEVELS]


def canonical_json(items: list[dict]) -> bytes:
    return json.dumps(items, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def items_sha256(items: list[dict]) -> str:
    return hashlib.sha256(canonical_json(items)).hexdigest()


def count_items(items: list[dict]) -> dict:
    """Items and patients per split; per condition and split: present / absent / uncertain."""
    splits = {s: {"items": 0, "patients": set()} for s in SPLITS}
    conditions: dict[str, dict] = {}
    for item in items:
        s = splits[item["split"]]
        s["items"] += 1
        s["patients"].add(item["group"])
        for cond, value in item["labels"].items():
            row = conditions.setdefault(cond, {sp: {"present": 0, "absent": 0, "uncertain": 0} for sp in SPLITS})
            row[item["split"]][LABEL_NAMES.get(value, "absent")] += 1
    return {
        "items": len(items), "patients": len({i["group"] for i in items}),
        "synthetic_items": sum(1 for i in items if i["synthetic"]),
        "splits": {s: {"items": v["items"], "patients": len(v["patients"])} for s, v in splits.items()},
        "conditions": conditions,
    }


# ---- the snapshot ----------------------------------------------------------------------------------------------

def parse_name(raw: Any) -> str:
    if not isinstance(raw, str) or not NAME_RE.match(raw):
        raise Invalid(NAME_MESSAGE, field="name")
    return raw


def snapshot(name: str, *, user=None, description: str = "", seed: Any = 0, ratios: Any = None,
             filters: Any = None) -> DatasetVersion:
    """Freeze the current verified labels (matching ``filters``) as the next version of ``name``."""
    name = parse_name(name)
    if not isinstance(description, str) or len(description) > 10_000:
        raise Invalid("description must be a string of at most 10000 characters", field="description")
    seed, ratios, filters = parse_seed(seed), parse_ratios(ratios), parse_filters(filters)
    items = make_items(verified_queryset(filters), seed, ratios)
    if not items:
        raise Conflict("no verified labels match; verify some label tasks first", filters=filters)
    for _attempt in range(5):  # two snapshots of one name at once: the unique constraint decides, we retry
        try:
            with transaction.atomic():
                latest = DatasetVersion.objects.filter(name=name).aggregate(v=Max("version"))["v"] or 0
                return DatasetVersion.objects.create(
                    name=name, version=latest + 1, description=description, created_by=user, split_seed=seed,
                    items=items, counts=count_items(items), sha256=items_sha256(items), filters=filters,
                    ratios=ratios, synthetic=any(i["synthetic"] for i in items))
        except IntegrityError:
            continue
    raise Conflict(f"could not allocate a version number for {name!r}; try again")


def summary(ds: DatasetVersion) -> dict:
    """What the API shows for a dataset version (items only through the exports)."""
    return {
        "id": ds.pk, "name": ds.name, "version": ds.version, "description": ds.description,
        "created_by": ds.created_by.username if ds.created_by else None, "created_at": ds.created_at.isoformat(),
        "split_seed": ds.split_seed, "ratios": ds.ratios, "filters": ds.filters, "sha256": ds.sha256,
        "synthetic": ds.synthetic, "label": SYNTHETIC_NOTE if ds.synthetic else "", "counts": ds.counts,
    }


# ---- exports ---------------------------------------------------------------------------------------------------

def condition_columns(ds: DatasetVersion) -> list[str]:
    """Registry conditions in registry order, then any other key the items carry (sorted)."""
    registry = [c.key for c in CONDITIONS]
    seen = {k for item in ds.items for k in item["labels"]}
    return [k for k in registry if k in seen] + sorted(seen - set(registry))


def level_columns(ds: DatasetVersion) -> list[tuple[str, str]]:
    """(condition, level) pairs that occur in the items, in condition column order, then level order."""
    seen: dict[str, set] = {}
    for item in ds.items:
        for k, at in (item.get("level_labels") or {}).items():
            seen.setdefault(k, set()).update(at)
    return [(k, lv) for k in condition_columns(ds) + sorted(set(seen) - set(condition_columns(ds)))
            for lv in levels.ordered(seen.get(k, ()))]


def json_chunks(ds: DatasetVersion) -> Iterator[str]:
    """The dataset as one JSON document {"dataset": {...}, "items": [...]}, one item per chunk."""
    head = json.dumps({k: v for k, v in summary(ds).items() if k != "counts"}, sort_keys=True)
    yield '{"dataset": ' + head + ', "items": ['
    for n, item in enumerate(ds.items):
        yield ("," if n else "") + "\n" + json.dumps(item, sort_keys=True)
    yield "\n]}\n"


def csv_chunks(ds: DatasetVersion) -> Iterator[str]:
    """One row per item: the item's fields, one column per condition (1 / 0 / -1, empty if absent), then one
    column ``condition@level`` per condition x level that occurs in the version (empty where the item does not
    name that level for the condition: absent there, as docs/annotation.md says)."""
    conditions = condition_columns(ds)
    cells = level_columns(ds)
    return csv_lines([*ITEM_FIELDS, *conditions, *(f"{k}@{lv}" for k, lv in cells)],
                     ([*(item[f] for f in ITEM_FIELDS), *(item["labels"].get(c, "") for c in conditions),
                       *((item.get("level_labels") or {}).get(k, {}).get(lv, "") for k, lv in cells)]
                      for item in ds.items))
