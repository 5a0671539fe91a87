"""Public data sets in their released layouts as dataset sources: RSNA 2024 Lumbar Spine Degenerative
Classification (``--rsna DIR``) and SPIDER (``--spider DIR``).

Each loader yields :class:`spinefm.dataset.sources.StudySource` items whose ``load()`` returns the
study's pydicom datasets and a truth dict (labels, findings, where the labels came from,
warnings), so a public study goes through inference's path like any DICOM study. The mapping
from each set's gradings onto our conditions and levels is data in the loader modules
(``rsna.CONDITIONS`` / ``PRESENT_GRADES``, ``spider.GRADINGS`` / ``IVD_LEVELS``) and a table in
docs/training.md ("Public data sets"); :func:`mapping_rows` is that table, and a test keeps
the two equal. A condition a set does not grade is left unlabelled, never absent.
"""

from __future__ import annotations

from . import rsna, spider


def mapping_rows() -> list[tuple[str, str, str, str]]:
    """(set, its grading, our condition or 'not mapped', rule) for every graded item of both sets."""
    rows = []
    for rc, (ours, side) in rsna.CONDITIONS.items():
        grades = " or ".join(g.capitalize() for g in rsna.PRESENT_GRADES)
        rows.append(("RSNA 2024", rc, ours + (f" ({side})" if side else ""),
                     f"{grades} at any level (either side) -> present, a finding at that level; every level "
                     "(both sides) graded and Normal/Mild -> absent; otherwise unlabelled"))
    for col, _, ours, rule in spider.GRADINGS:
        rows.append(("SPIDER", col, ours or "not mapped", rule))
    return rows


def gather_public(args) -> tuple[list, list[dict], list[dict]]:
    """(studies, notes, source records) of every --rsna and --spider folder of a build."""
    studies, notes, records = [], [], []
    for folder in getattr(args, "rsna", None) or []:
        found, n, rec = rsna.rsna_studies(folder, getattr(args, "rsna_prefix", "train"))
        studies += found
        notes += n
        records.append(rec)
    for folder in getattr(args, "spider", None) or []:
        seqs = tuple(s for s in (getattr(args, "spider_sequences", "") or ",".join(spider.SEQUENCES)).split(",") if s)
        unknown = [s for s in seqs if s not in spider.SEQUENCES]
        if unknown:
            raise SystemExit(f"--spider-sequences: {', '.join(unknown)} not among {', '.join(spider.SEQUENCES)}")
        found, n, rec = spider.spider_studies(folder, seqs)
        studies += found
        notes += n
        records.append(rec)
    return studies, notes, records
