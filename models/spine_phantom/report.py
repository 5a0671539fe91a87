"""Reference reports written the way radiologists write them.

Technique (only the series that exist), Comparison, Findings (alignment, marrow,
cord/conus, then level by level), numbered Impression. Phrasing is varied on
purpose and uses negations ("no", "without") and hedges ("possible", "cannot
exclude", "questionable") so that label extraction from the text has real work
to do. Uncertain findings (label -1) are exactly the ones the text hedges on.
"""

from __future__ import annotations

import numpy as np

from spinefm.conditions import LabelValue

from .anatomy import INDEX, NAMES

_SIDE = {"left": "left", "right": "right", "bilateral": "bilateral", "central": "central"}
# clinical priority for the impression (actionable first)
_PRIORITY = ["compression", "lesion_intramedullary", "lesion_extramedullary", "inflammation", "fracture",
             "edema", "canal", "herniation", "spondylolisthesis", "par", "neuroforaminal", "subarticular",
             "synovial", "lipomatosis", "disc_height", "cyst", "hemangioma"]


class _Say:
    """Tiny phrase picker bound to the study's RNG (deterministic variety)."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def __call__(self, *options: str) -> str:
        return options[int(self.rng.integers(len(options)))]


def _disc_levels(regions) -> list[str]:
    from .pathology import REGION_DISC_UPPER
    out = []
    for r in ("cervical", "thoracic", "lumbar"):
        if r in regions:
            for up in REGION_DISC_UPPER[r]:
                lvl = f"{up}-{NAMES[INDEX[up] + 1]}"
                if lvl not in out:
                    out.append(lvl)
    return out


def _sev(f, say: _Say) -> str:
    return {"mild": say("mild", "mild", "minimal"), "moderate": say("moderate", "moderate"),
            "severe": say("severe", "severe", "marked")}[f.severity]


def _hedge(text: str, say: _Say) -> str:
    form = say("possible {}", "questionable {}", "{}, cannot exclude", "suggestion of {}", "equivocal {}",
               "{} is not excluded", "subtle findings may represent {}", "{} cannot be excluded",
               "borderline {}", "question of {}")
    return form.format(text)


def phrase(f, say: _Say, short: bool = False) -> str:
    """One sentence fragment for a finding (no final period)."""
    unc = f.label == LabelValue.UNCERTAIN
    d = f.detail
    side = _SIDE.get(f.side, "")
    k = f.condition
    if k == "herniation":
        where = "central" if f.side == "central" else f"{side} paracentral"
        kind = d.get("type", "protrusion")
        if unc:
            return _hedge(f"a small {where} disc protrusion", say)
        mig = f" with {d['migration']} migration" if d.get("migration") else ""
        return f"{_sev(f, say)} {where} disc {kind}{mig}" + ("" if short else f" measuring {d.get('size_mm', 0):.0f} mm")
    if k == "canal":
        if unc:
            return _hedge("mild spinal canal stenosis", say)
        return f"{_sev(f, say)} {say('spinal canal stenosis', 'central canal stenosis', 'canal stenosis')}"
    if k == "compression":
        what = d.get("structure", "cord")
        if unc:
            return _hedge(f"mild {what} compression", say)
        if what == "cord":
            return say(f"{_sev(f, say)} compression of the cord", f"cord compression ({f.severity})",
                       f"{_sev(f, say)} mass effect on the cord with cord compression")
        return say(f"{_sev(f, say)} compression of the thecal sac", f"thecal sac compression ({f.severity})")
    if k == "neuroforaminal":
        if unc:
            return _hedge(f"mild {side} neural foraminal narrowing", say)
        return f"{_sev(f, say)} {side} {say('neural foraminal narrowing', 'foraminal stenosis', 'neuroforaminal stenosis')}"
    if k == "subarticular":
        if unc:
            return _hedge(f"mild {side} subarticular recess narrowing", say)
        return f"{_sev(f, say)} {side} {say('subarticular recess stenosis', 'lateral recess stenosis', 'subarticular stenosis')}"
    if k == "disc_height":
        if unc:
            return _hedge("mild loss of disc height", say)
        return say(f"{_sev(f, say)} loss of disc height with disc desiccation",
                   f"disc height loss of about {d.get('loss_pct', 30)}% with desiccation",
                   f"{_sev(f, say)} disc space narrowing")
    if k == "spondylolisthesis":
        lower = NAMES[INDEX[f.level.split('-')[0]] + 1]
        upper = f.level.split("-")[0]
        direction = d.get("direction", "anterolisthesis")
        if unc:
            return _hedge(f"trace {direction} of {upper} on {lower}", say)
        grade = f"grade {d.get('grade', 'I')} " if direction == "anterolisthesis" else ""
        return f"{grade}{direction} of {upper} on {lower} ({d.get('mm', 3):.0f} mm)"
    if k == "par":
        where = "bilateral" if f.side == "bilateral" else side
        if unc:
            return _hedge(f"a {where} {f.level} pars interarticularis defect", say)
        return say(f"{where} {f.level} pars interarticularis defects" if where == "bilateral" else
                   f"{where} {f.level} pars interarticularis defect",
                   f"{where} spondylolysis of {f.level}")
    if k == "synovial":
        if unc:
            return _hedge(f"a small {side} facet synovial cyst", say)
        return f"{side} facet synovial cyst measuring {d.get('size_mm', 5):.0f} mm projecting into the canal"
    if k == "fracture":
        acute = d.get("acute", True)
        if unc:
            return _hedge(f"a subtle superior endplate fracture of {f.level}", say)
        age = "acute" if acute else say("chronic", "old", "healed")
        sig = " with a STIR hyperintense fracture band" if acute else ""
        return f"{age} compression fracture of {f.level} with about {d.get('loss_pct', 20)}% loss of anterior height{sig}"
    if k == "edema":
        if unc:
            return _hedge(f"minimal marrow edema in {f.level}", say)
        where = "near the endplate" if d.get("pattern") == "endplate" else "throughout much of the body"
        return f"{say('bone marrow edema', 'marrow edema', 'STIR hyperintense marrow edema')} in the {f.level} vertebral body {where}"
    if k == "inflammation":
        if unc:
            return _hedge(f"early discitis at {f.level}", say)
        return say(f"fluid signal in the {f.level} disc with endplate irregularity and adjacent signal change, consistent with discitis",
                   f"findings compatible with discitis at {f.level}",
                   f"inflammatory change of the {f.level} disc and endplates (discitis)")
    if k == "hemangioma":
        if unc:
            return _hedge(f"a tiny hemangioma in {f.level}", say)
        return say(f"{d.get('size_mm', 8):.0f} mm T1 and T2 hyperintense lesion in {f.level}, consistent with a hemangioma",
                   f"typical vertebral hemangioma in {f.level} ({d.get('size_mm', 8):.0f} mm)",
                   f"{d.get('size_mm', 8):.0f} mm fat-containing lesion in {f.level}, most likely a hemangioma")
    if k == "lipomatosis":
        if unc:
            return _hedge(f"early epidural lipomatosis at {f.level}", say)
        return say(f"{_sev(f, say)} epidural lipomatosis at {f.level} narrowing the thecal sac",
                   f"excess dorsal epidural fat at {f.level} ({f.severity} epidural lipomatosis)")
    if k == "cyst":
        typ = d.get("type", "perineural")
        where = "in the sacral canal" if f.level == "S1" else f"in the {side} {f.level} neural foramen"
        if unc:
            return _hedge(f"a small {typ} cyst {where}", say)
        return f"{d.get('size_mm', 8):.0f} mm {typ} cyst {where}"
    if k == "lesion_intramedullary":
        if unc:
            return _hedge(f"faint intramedullary T2 signal at {f.level}", say)
        return say(f"{d.get('length_mm', 15):.0f} mm T2 hyperintense intramedullary lesion of the cord at {f.level}",
                   f"intramedullary cord lesion at {f.level} ({d.get('length_mm', 15):.0f} mm craniocaudal)")
    if k == "lesion_extramedullary":
        if unc:
            return _hedge(f"a small intradural extramedullary nodule at {f.level}", say)
        return say(f"{d.get('size_mm', 8):.0f} mm {d.get('position', 'dorsal')} intradural extramedullary mass at {f.level}, "
                   "favoring a nerve sheath tumor or meningioma",
                   f"intradural extramedullary lesion at {f.level} measuring {d.get('size_mm', 8):.0f} mm")
    return f"{k} at {f.level}"


# Pertinent negatives a radiologist adds for absent conditions: condition words in a negated context.
_NEGATIVES = {
    "inflammation": ("No findings to suggest discitis.", "No evidence of discitis or osteomyelitis.",
                     "Negative for discitis."),
    "lipomatosis": ("No epidural lipomatosis.", "Epidural fat is not increased."),
    "cyst": ("No perineural (Tarlov) cyst.", "No cystic lesion along the nerve roots."),
    "lesion_extramedullary": ("No intradural mass.", "There is no evidence of an intradural extramedullary lesion."),
    "par": ("The pars interarticularis is intact bilaterally.", "No spondylolysis."),
    "synovial": ("No facet synovial cyst.", "Facet joints without synovial cyst."),
    "hemangioma": ("No vertebral hemangioma.",),
    "compression": ("No cord compression.", "The thecal sac is not compressed.", "No mass effect on the cord."),
    "spondylolisthesis": ("No spondylolisthesis.", "No anterolisthesis or retrolisthesis."),
    "fracture": ("No acute fracture.", "No compression fracture."),
}


def _negatives(present: set[str], say: _Say, regions) -> list[str]:
    """One to three pertinent negatives about conditions that are absent."""
    keys = [k for k in _NEGATIVES if k not in present]
    if "lumbar" not in regions:
        keys = [k for k in keys if k != "par"]
    if not keys:
        return []
    n = min(len(keys), 1 + int(say.rng.integers(3)))
    picks = say.rng.choice(len(keys), size=n, replace=False)
    return [say(*_NEGATIVES[keys[int(i)]]) for i in sorted(picks)]


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _level_of(f) -> str:
    """Disc level a finding is reported under in the level-by-level section."""
    if "-" in f.level:
        return f.level
    up = f.level
    return f"{up}-{NAMES[INDEX[up] + 1]}" if INDEX[up] + 1 < len(NAMES) else up


_LEVEL_CONDITIONS = {"herniation", "canal", "compression", "neuroforaminal", "subarticular", "disc_height",
                     "synovial", "par", "lipomatosis", "cyst", "lesion_extramedullary", "inflammation"}


def write_report(study_regions, series, findings, conus_level: str, rng: np.random.Generator,
                 disc_levels: list[str] | None = None) -> dict:
    """``disc_levels``: the discs in the field of view (varied acquisitions); None lists the regions' discs."""
    say = _Say(rng)
    regions = list(study_regions)
    region_txt = " and ".join(regions)
    sag = []
    for s in series:
        if s.plane != "sagittal":
            continue
        sag.append({"T1": "T1-weighted", "T2": "T2-weighted", "STIR": "STIR", "DIXON": "T2-weighted Dixon (water)",
                    "OTHER": "fat-suppressed T1-weighted post-contrast"}[s.sequence])
    contrast = any(s.sequence == "OTHER" for s in series)
    axial = [s for s in series if s.plane == "axial"]
    listing = ", ".join(sag[:-1]) + " and " + sag[-1] if len(sag) > 1 else (sag[0] if sag else "")
    technique = (f"MRI of the {region_txt} spine {'without and with' if contrast else 'without'} intravenous contrast "
                 f"(synthetic phantom). Sagittal {listing} images.")
    if axial:
        lv = sorted(set(axial[0].levels), key=lambda v: INDEX[v.split("-")[0]])
        technique += f" Axial T2-weighted images from {lv[0]} to {lv[-1]}."
    comparison = say("None.", "None available.", "No prior studies.")

    by_cond = {}
    for f in findings:
        by_cond.setdefault(f.condition, []).append(f)
    lines = []
    # alignment
    listh = by_cond.get("spondylolisthesis", [])
    if listh:
        lines.append("Alignment: " + "; ".join(_cap(phrase(f, say)) for f in listh) + ".")
    else:
        curve = {"cervical": "lordosis", "thoracic": "kyphosis", "lumbar": "lordosis"}[regions[-1]]
        lines.append("Alignment: " + say(f"Normal {curve}. No listhesis.", f"Maintained {curve} without spondylolisthesis.",
                                         "Alignment is normal.", f"Preserved {curve}; no subluxation."))
    # vertebral bodies / marrow
    marrow = [f for k in ("fracture", "edema", "hemangioma") for f in by_cond.get(k, [])]
    text = " ".join(_cap(phrase(f, say)) + "." for f in marrow)
    neg = []
    if "fracture" not in by_cond:
        neg.append(say("No fracture.", "Vertebral body heights are maintained.", "No compression deformity."))
    if "edema" not in by_cond:
        neg.append(say("No marrow edema.", "No STIR hyperintense marrow signal.", "Marrow signal is otherwise unremarkable."))
    if "hemangioma" not in by_cond:
        neg.append(say("No focal marrow lesion.", "No suspicious osseous lesion.", ""))
    lines.append("Vertebrae and marrow: " + " ".join(x for x in [text] + neg if x).strip())
    # cord
    cord = by_cond.get("lesion_intramedullary", [])
    has_cord = "cervical" in regions or "thoracic" in regions
    if cord:
        lines.append("Cord: " + " ".join(_cap(phrase(f, say)) + "." for f in cord))
    elif has_cord:
        lines.append("Cord: " + say("Normal caliber and signal of the spinal cord.", "The cord is normal in signal and caliber.",
                                    "No intramedullary signal abnormality."))
    if "lumbar" in regions or "thoracic" in regions:
        lines.append(say(f"The conus terminates at {conus_level}.", f"Conus medullaris ends at {conus_level} and is normal.",
                         f"Conus tip at {conus_level}."))
    # level by level
    per_level: dict[str, list] = {}
    for f in findings:
        if f.condition in _LEVEL_CONDITIONS:
            per_level.setdefault(_level_of(f), []).append(f)
    level_lines = []
    shown = _disc_levels(regions) if disc_levels is None else [lv for lv in _disc_levels(regions) if lv in disc_levels]
    for lvl in shown:
        fs = sorted(per_level.pop(lvl, []), key=lambda f: _PRIORITY.index(f.condition))
        if fs:
            body = "; ".join(phrase(f, say) for f in fs)
            conds = {f.condition for f in fs}
            tail = []
            if not conds & {"canal", "compression", "lipomatosis"}:
                tail.append(say("no canal stenosis", "the canal is patent", "canal is adequate"))
            if not conds & {"neuroforaminal"}:
                tail.append(say("foramina are patent", "no foraminal narrowing", "neural foramina are adequate"))
            level_lines.append(f"{lvl}: {_cap(body)}" + ("; " + ", ".join(tail) if tail else "") + ".")
        else:
            level_lines.append(f"{lvl}: " + say(
                "No disc herniation, canal stenosis or foraminal narrowing.",
                "Unremarkable.",
                "No significant disc bulge. Canal and foramina are patent.",
                "Normal disc height and signal without stenosis.",
                "Negative.",
                "No disc protrusion; no spinal canal or neural foraminal stenosis."))
    for lvl, fs in per_level.items():  # e.g. sacral cysts below the last disc
        level_lines.append(f"{lvl}: " + "; ".join(_cap(phrase(f, say)) for f in fs) + ".")
    lines.append("Levels:\n" + "\n".join(level_lines))
    extra = _negatives({f.condition for f in findings}, say, regions)
    if extra:
        lines.append("Other: " + " ".join(extra))
    lines.append("Paraspinal soft tissues: " + say("Unremarkable.", "Normal.", "No paraspinal abnormality.",
                                                   "There is no paraspinal collection."))
    findings_txt = "\n".join(lines)

    # impression
    imp = []
    for f in sorted(findings, key=lambda f: (_PRIORITY.index(f.condition), f.label == LabelValue.UNCERTAIN)):
        txt = phrase(f, say, short=True)
        if "-" in f.level and f.level not in txt and f.condition not in ("spondylolisthesis",):
            txt += f" at {f.level}"
        imp.append(_cap(txt) + ".")
    if not imp:
        imp.append(say(f"No significant abnormality of the {region_txt} spine.",
                       "Normal examination.", f"Unremarkable MRI of the {region_txt} spine."))
        imp.append(say("No canal stenosis or cord compression.", "No fracture or marrow edema.",
                       "No disc herniation."))
    if any(f.condition in ("compression", "lesion_intramedullary", "lesion_extramedullary", "inflammation")
           and f.label != LabelValue.UNCERTAIN for f in findings):
        imp.append(say("Clinical correlation recommended.", "Recommend clinical correlation and follow-up as appropriate."))
    impression = "\n".join(f"{i}. {t}" for i, t in enumerate(imp, 1))
    text = (f"TECHNIQUE: {technique}\nCOMPARISON: {comparison}\n\nFINDINGS:\n{findings_txt}\n\n"
            f"IMPRESSION:\n{impression}\n")
    return {"text": text, "technique": technique, "comparison": comparison,
            "findings": findings_txt, "impression": impression}
