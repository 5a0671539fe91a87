"""Label extraction from report text by a labeler found by name, never imported.

The model library must not import the annotation package (dependencies point one way). A labeler is an
installed ``spinefm.labelers`` entry point: a factory returning ``(name, label)``, where ``label(text)``
gives a LabelSet-like object (``as_dict()`` -> {condition: 1 / 0 / -1}; ``labels[condition].levels``). The
annotation package registers ``rules`` and ``llm`` (pyproject.toml). Callers load one here and pass it on
(report evaluation, ``spinefm dataset build``); there is no built-in fallback: a result says which labeler
wrote its labels, or that none was installed.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any, Callable

from spinefm.conditions import CONDITIONS

GROUP = "spinefm.labelers"


class LabelerUnavailable(RuntimeError):
    """No installed labeler of that name; the message says what is installed and how to get one."""


class ReportLabeler:
    """One loaded labeler: its name (recorded with every label it writes) and what it reads off a text."""

    def __init__(self, name: str, label: Callable[[str], Any], kind: str = ""):
        self.name, self._label, self.kind = name, label, kind

    def label_set(self, text: str) -> Any:
        return self._label(text)

    def labels(self, text: str) -> dict[str, int]:
        """{condition: 1 present, 0 absent, -1 uncertain} for every registry condition."""
        return self.labels_of(self._label(text))

    @staticmethod
    def labels_of(out: Any) -> dict[str, int]:
        values = out.as_dict() if hasattr(out, "as_dict") else dict(out)
        return {c.key: int(getattr(values.get(c.key, 0), "value", values.get(c.key, 0))) for c in CONDITIONS}

    def levels(self, text: str) -> dict[str, list[str]] | None:
        """{condition: levels the text gives for it} (registry spelling, e.g. "L4-L5"); None when this
        labeler does not read levels."""
        labels = getattr(self._label(text), "labels", None)
        if not isinstance(labels, dict):
            return None
        return {k: list(getattr(lab, "levels", []) or []) for k, lab in labels.items()}


def installed() -> list[str]:
    return sorted(ep.name for ep in entry_points(group=GROUP))


def load_labeler(kind: str = "rules", **options: Any) -> ReportLabeler:
    """The installed labeler ``kind`` (``rules``; ``llm`` with base_url, model, api_key)."""
    found = {ep.name: ep for ep in entry_points(group=GROUP)}
    if kind not in found:
        raise LabelerUnavailable(
            f"no report labeler {kind!r} is installed (entry points {GROUP}: {', '.join(sorted(found)) or 'none'}); "
            "the annotation package provides 'rules' and 'llm' (pip install -e . from the repository root)")
    name, label = found[kind].load()(**options)
    return ReportLabeler(name, label, kind)
