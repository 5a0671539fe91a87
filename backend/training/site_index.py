"""Build the site's similar-case bank from its own signed reports (``SPINEAGENT_SITE_INDEX=signed``).

Each signed report whose study has a stored case embedding from the model (or one with the same
encoders, ``embeddings.compatible_versions``) becomes one case: the embedding as ``analyze`` stored it
and the signed text with the study's identifiers removed. Case ids are ordinals ("site case 12"), never a
UID, accession or patient id, so nothing in the bank leads back to a patient. The bank's format belongs
to ``spinefm.site_index``; the worker picks it up at its next job (``analyzers.attach_site_index``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.conf import settings

from backend.audit.log import record
from backend.audit.models import AuditEvent
from backend.errors import Conflict
from backend.inference.models import ModelVersion
from backend.reports.models import Report, ReportVersion
from spinefm import site_index

from . import embeddings

REMOVED = "[removed]"
# Dates and UIDs are identifiers whatever study they belong to.
_GENERIC = [re.compile(p) for p in (
    r"\b\d+(?:\.\d+){3,}\b",                      # DICOM UIDs
    r"\b(?:19|20)\d{2}[-/.](?:0?[1-9]|1[0-2])[-/.](?:0?[1-9]|[12]\d|3[01])\b",  # 2026-12-07
    r"\b(?:0?[1-9]|[12]\d|3[01])[-/.](?:0?[1-9]|1[0-2])[-/.](?:19|20)\d{2}\b",  # 07.12.2026, 12/07/2026
    r"\b(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\b",              # 20261207
)]


@dataclass(frozen=True)
class Summary:
    path: str
    cases: int
    skipped: dict[str, int]
    description: str


def scrub(text: str, study) -> str:
    """``text`` without the study's own identifiers (patient name parts, patient id, accession,
    birth date) and without any date or UID."""
    words = [w for w in re.split(r"[\^\s,]+", study.patient_name or "") if len(w) >= 2]
    values = [v for v in (study.patient_id, study.accession_number, study.patient_birth_date) if v]
    for value in sorted(set(words + values), key=len, reverse=True):
        text = re.sub(rf"(?<![\w]){re.escape(value)}(?![\w])", REMOVED, text, flags=re.IGNORECASE)
    for pattern in _GENERIC:
        text = pattern.sub(REMOVED, text)
    return text


def signed_cases(base: ModelVersion) -> tuple[list[site_index.SiteCase], dict[str, int]]:
    """(cases, skipped counts by reason) for every signed report the base model can place in its space."""
    reports = (Report.objects.filter(status=Report.SIGNED, signed_number__isnull=False)
               .select_related("study").order_by("signed_at", "pk"))
    texts = {(v.report_id, v.number): v.text for v in ReportVersion.objects.filter(
        report__in=reports, source=ReportVersion.RADIOLOGIST)}
    latest = embeddings.latest(base, "id", report__in=reports)
    cases, skipped = [], {}
    for report in reports:
        text = (texts.get((report.pk, report.signed_number)) or "").strip()
        reason = ("signed text is empty" if not text else
                  "no stored case embedding from this model's encoders" if report.study_id not in latest else "")
        if reason:
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        cases.append(site_index.SiteCase(f"site case {len(cases) + 1}", latest[report.study_id],
                                         scrub(text, report.study)))
    return cases, skipped


def rebuild(base: ModelVersion | None = None, *, via: str, user=None) -> Summary:
    """Rebuild the bank for ``base`` (default: the active version). Conflict when the site does not
    allow it, the model has no embeddings, or no report qualifies; the previous bank then stays."""
    if settings.SPINEAGENT_SITE_INDEX != "signed":
        raise Conflict("the site index is off (SPINEAGENT_SITE_INDEX=off): similar cases come from the "
                       "bundle's own training cases")
    base = base or ModelVersion.objects.filter(state=ModelVersion.ACTIVE).first()
    key = embeddings.key_of(base) if base is not None else None
    if key is None:
        raise Conflict("no active model bundle to build a site index for")
    cases, skipped = signed_cases(base)
    if not cases:
        detail = "; ".join(f"{n} {why}" for why, n in skipped.items()) or "no signed reports yet"
        raise Conflict(f"no signed report can be indexed ({detail})")
    from backend.inference.analyzers import load_analyzer

    bundle = load_analyzer(base.path, base.manifest_sha256)
    description = f"site: {len(cases)} signed reports"
    try:
        index = site_index.build(bundle, cases)
    except site_index.SiteIndexError as exc:
        raise Conflict(str(exc)) from None
    path = site_index.write(settings.SPINEAGENT_SITE_INDEX_DIR, key, index, description)
    record(AuditEvent.ADMIN, "site-index", base.pk, user=user,
           detail={"model": f"{base.name} {base.version}", "cases": len(cases), "skipped": skipped, "via": via})
    return Summary(str(path), len(cases), skipped, description)
