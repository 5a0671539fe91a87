"""PNG charts of the analytics figures, drawn with matplotlib's Agg renderer.

``matplotlib.figure.Figure`` is used directly, never pyplot: no display, no global figure registry,
safe in threaded web workers. An empty selection gives a "no data" image (HTTP 200, same size) so the
dashboard's <img> tags always show something readable.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # before anything could pick an interactive backend

from matplotlib.figure import Figure  # noqa: E402

from backend.reports.radpeer import SCORES  # noqa: E402

from . import burden_summary, conditions, edit_burden, services, turnaround  # noqa: E402

CHARTS = ("radpeer", "edits", "conditions", "errors", "turnaround", "burden", "significant")
SIZE = (8, 4.2)
DPI = 100
SCORE_COLOURS = {"1": "#4caf50", "2a": "#c0ca33", "2b": "#ffa000", "3a": "#f4511e", "3b": "#c62828"}


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _figure(title: str) -> tuple[Figure, object]:
    fig = Figure(figsize=SIZE, layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title)
    return fig, ax


def no_data(title: str) -> bytes:
    fig, ax = _figure(title)
    ax.set_axis_off()
    ax.text(0.5, 0.5, "No data: no signed report matches these filters", ha="center", va="center", fontsize=14,
            color="#555555", transform=ax.transAxes)
    return _png(fig)


def radpeer_histogram(params: dict) -> bytes | None:
    rows = services.radpeer_summary({**params, "group_by": None})
    if not rows:
        return None
    counts = rows[0]["counts"]
    fig, ax = _figure(f"RADPEER scores of the AI drafts (n = {rows[0]['n']})")
    bars = ax.bar(list(SCORES), [counts[s] for s in SCORES], color=[SCORE_COLOURS[s] for s in SCORES])
    ax.bar_label(bars)
    ax.set_xlabel("RADPEER score")
    ax.set_ylabel("signed reports")
    return _png(fig)


def edits_boxplot(params: dict) -> bytes | None:
    by_score = {s: [] for s in SCORES}
    for score, distance in (services.metrics_queryset(params).exclude(radpeer_score="")
                            .values_list("radpeer_score", "char_distance")):
        by_score[score].append(distance)
    if not any(by_score.values()):
        return None
    fig, ax = _figure("Edit distance (characters) by RADPEER score")
    ax.boxplot([by_score[s] for s in SCORES], tick_labels=[f"{s}\nn={len(by_score[s])}" for s in SCORES])
    ax.set_ylabel("normalised Levenshtein distance")
    ax.set_ylim(-0.02, 1.02)
    return _png(fig)


def _condition_rows(params: dict) -> list[dict]:
    data = conditions.summary(services.metrics_queryset(params))
    return [r for r in data["conditions"] if r["n"]] if data["reports"] else []


def condition_bars(params: dict) -> bytes | None:
    every = _condition_rows(params)
    if not every:
        return None
    # Conditions never present and never falsely reported would only show a specificity of 1 (as the table).
    rows = [r for r in every if r["signed_present"] or r["draft"]["fp"] or r["ai"]["fp"]] or every
    fig, ax = _figure("Draft findings against the signed report, per condition")
    y = range(len(rows))
    sens = [r["draft"]["sensitivity"]["rate"] or 0 for r in rows]
    spec = [r["draft"]["specificity"]["rate"] or 0 for r in rows]
    ax.barh([i - 0.2 for i in y], sens, height=0.4, label="sensitivity", color="#1e88e5")
    ax.barh([i + 0.2 for i in y], spec, height=0.4, label="specificity", color="#8e24aa")
    ax.set_yticks(list(y), [r["condition"] for r in rows])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.legend(loc="lower right")
    return _png(fig)


def error_bars(params: dict) -> bytes | None:
    every = _condition_rows(params)
    if not every:
        return None
    rows = [r for r in every if r["draft"]["false_positive_findings"] or r["draft"]["omitted_findings"]]
    fig, ax = _figure("False-positive and omitted findings of the drafts, per condition")
    if not rows:
        ax.text(0.5, 0.5, "none: every draft finding was kept and none was added", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_axis_off()
        return _png(fig)
    y = range(len(rows))
    ax.barh([i - 0.2 for i in y], [r["draft"]["false_positive_findings"] for r in rows], height=0.4,
            label="false positive (draft present, signed absent)", color="#e53935")
    ax.barh([i + 0.2 for i in y], [r["draft"]["omitted_findings"] for r in rows], height=0.4,
            label="omitted (signed present, draft absent)", color="#fb8c00")
    ax.set_yticks(list(y), [r["condition"] for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("reports")
    ax.legend(loc="lower right")
    return _png(fig)


def turnaround_boxplot(params: dict) -> bytes | None:
    values = {name: [] for name in turnaround.INTERVAL_NAMES}
    for m in services.metrics_queryset(params):
        for name, value in turnaround.per_report(m).items():
            if value is not None:
                values[name].append(value / 3600)
    if not any(values.values()):
        return None
    fig, ax = _figure("Turnaround (hours)")
    labels = [f"{title}\nn={len(values[name])}" for name, _, _, title in turnaround.INTERVALS]
    ax.boxplot([values[name] for name in turnaround.INTERVAL_NAMES], tick_labels=labels)
    ax.set_ylabel("hours")
    return _png(fig)


SENTENCE_COLOURS = {"kept": "#4caf50", "edited": "#ffa000", "added": "#1e88e5", "deleted": "#e53935"}
ERROR_COLOURS = {"substitutions": "#ffa000", "deletions": "#e53935", "insertions": "#1e88e5"}
EDIT_COLOURS = {"absent_to_present": "#fb8c00", "present_to_absent": "#e53935", "certainty_changed": "#8e24aa",
                "level_changed": "#1e88e5", "severity_changed": "#43a047"}


def burden_bars(params: dict) -> bytes | None:
    """Per group (the selection's group_by, else one group): WER split into S, D, I (each / N, stacked: the
    bar's height is the pooled WER) and the share of sentences kept / edited / added / deleted."""
    groups = burden_summary.summary(services.metrics_queryset(params), params.get("group_by"))
    if not groups:
        return None
    fig = Figure(figsize=SIZE, layout="constrained")
    wer_ax, sent_ax = fig.subplots(1, 2)
    labels = [g["label"] for g in groups]
    x = range(len(groups))
    bottom = [0.0] * len(groups)
    for name, colour in ERROR_COLOURS.items():
        values = [g["words"][name] / g["words"]["reference_words"] if g["words"]["reference_words"] else 0
                  for g in groups]
        wer_ax.bar(x, values, bottom=bottom, color=colour, label=name)
        bottom = [b + v for b, v in zip(bottom, values)]
    wer_ax.set_title("Word error rate of the drafts (S + D + I) / N")
    wer_ax.set_xticks(list(x), labels, rotation=30, ha="right", fontsize=8)
    wer_ax.legend(fontsize=8)
    bottom = [0.0] * len(groups)
    for kind, colour in SENTENCE_COLOURS.items():
        totals = [sum(g["sentences"].values()) or 1 for g in groups]
        values = [g["sentences"][kind] / t for g, t in zip(groups, totals)]
        sent_ax.bar(x, values, bottom=bottom, color=colour, label=kind)
        bottom = [b + v for b, v in zip(bottom, values)]
    sent_ax.set_title("Sentences (share)")
    sent_ax.set_xticks(list(x), labels, rotation=30, ha="right", fontsize=8)
    sent_ax.set_ylim(0, 1)
    sent_ax.legend(fontsize=8)
    return _png(fig)


def significant_bars(params: dict) -> bytes | None:
    """Significant edits per condition, stacked by kind."""
    counts: dict[str, dict[str, int]] = {}
    reports = 0
    for edits in services.metrics_queryset(params).values_list("significant_edits", flat=True):
        reports += 1
        for e in edits or []:
            counts.setdefault(e["condition"], dict.fromkeys(edit_burden.EDIT_KINDS, 0))[e["kind"]] += 1
    if not reports:
        return None
    fig, ax = _figure(f"Clinically significant edits of the drafts, per condition ({reports} reports)")
    if not counts:
        ax.text(0.5, 0.5, "none: no condition changed between draft and signed report", ha="center",
                va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return _png(fig)
    names = sorted(counts, key=lambda c: -sum(counts[c].values()))
    y = range(len(names))
    left = [0] * len(names)
    for kind, colour in EDIT_COLOURS.items():
        values = [counts[c][kind] for c in names]
        ax.barh(list(y), values, left=left, color=colour, label=kind.replace("_", " "))
        left = [a + b for a, b in zip(left, values)]
    ax.set_yticks(list(y), names)
    ax.invert_yaxis()
    ax.set_xlabel("edits")
    ax.legend(loc="lower right", fontsize=8)
    return _png(fig)


RENDERERS = {"radpeer": radpeer_histogram, "edits": edits_boxplot, "conditions": condition_bars,
             "errors": error_bars, "turnaround": turnaround_boxplot, "burden": burden_bars,
             "significant": significant_bars}
TITLES = {"radpeer": "RADPEER scores", "edits": "Edit distance by RADPEER score",
          "conditions": "Per-condition sensitivity / specificity", "errors": "False-positive / omitted findings",
          "turnaround": "Turnaround", "burden": "Word error rate and sentences",
          "significant": "Significant edits per condition"}


def render(chart: str, params: dict) -> tuple[bytes, bool]:
    """(PNG bytes, empty?) of a chart (one of ``CHARTS``, checked by the chart's query serializer)."""
    png = RENDERERS[chart](params)
    return (no_data(TITLES[chart]), True) if png is None else (png, False)
