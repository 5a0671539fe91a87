"""VQA-style training data from reports (the release's four task types).

Per study we need the agents' outputs (an AnalysisResult), slice embeddings and
the reference report with its findings. From each study :func:`build_vqa` makes:

* ``report``  - full report generation (the serving task),
* ``long``    - "Describe the findings at L4-L5." -> sentences for that level,
* ``short``   - "Is there disc herniation? yes/no" -> "Yes, at L4-L5." / "No.",
* ``choice``  - "At which level is the ...? A) .. B) .. C) .. D) none" -> letter.

All prompts go through :func:`spinefm.report.prompt.build_messages`, the serving path.

Sources of studies: :func:`phantom_studies` (``spine_phantom`` ground truth),
or :func:`toy_studies` (a self-contained generator for tests when the phantom
package is absent). When the diagnosis/segmentation agents have not been run,
:func:`simulate_result` turns ground truth into noisy agent outputs and
:func:`standin_embeddings` makes label-bearing stand-in slice embeddings; both
are stand-ins and are named as such wherever results are reported.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import torch

from spinefm.conditions import CONDITION_KEYS, CONDITIONS, DISC_LEVELS, VERTEBRAE, get_condition
from spinefm.report.findings import level_order
from spinefm.report.prompt import build_messages
from spinefm.results import AnalysisResult, ConditionPrediction, SeriesUsed, SimilarCase

TASKS = ("report", "long", "short", "choice")


@dataclass
class Study:
    study_id: str
    truth: dict[str, Any]                       # {"labels", "findings", "report": {"text", ...}}
    result: AnalysisResult | None = None        # the agents' outputs
    embeddings: dict[str, torch.Tensor] | None = None
    split: str = "train"

    @property
    def report(self) -> str:
        rep = self.truth["report"]
        return rep["text"] if isinstance(rep, dict) else str(rep)

    def positives(self) -> list[dict[str, Any]]:
        return [f for f in self.truth.get("findings", []) if f.get("label", 1) == 1]


@dataclass
class Example:
    study_id: str
    task: str
    messages: list[dict[str, str]]
    answer: str
    embeddings: dict[str, torch.Tensor] | None = field(default=None, repr=False)


# -- ground truth -> agent outputs (stand-ins) ----------------------------------------
def simulate_result(truth: dict[str, Any], seed: int, noise: float = 0.12,
                    series: list[SeriesUsed] | None = None) -> AnalysisResult:
    """Noisy diagnosis-agent outputs from ground truth (a stand-in for running the agents)."""
    rng = random.Random(seed)
    labels = truth.get("labels", {})
    level_of = {f["condition"]: f.get("level") for f in truth.get("findings", []) if f.get("label", 1) == 1}
    preds = []
    for key in CONDITION_KEYS:
        lab = labels.get(key, 1 if key in level_of else 0)
        if lab == 1:
            p = min(0.99, max(0.01, rng.gauss(0.8, 0.15 + noise)))
        elif lab == -1:
            p = min(0.99, max(0.01, rng.gauss(0.5, 0.1)))
        else:
            p = min(0.99, max(0.01, abs(rng.gauss(0.0, 0.12 + noise))))
        preds.append(ConditionPrediction(key, round(p, 3), p >= 0.5, level_of.get(key)))
    if series is None:
        series = [SeriesUsed("1.2.826.0.1.1", "T1", "sagittal", "t1", 15),
                  SeriesUsed("1.2.826.0.1.2", "T2", "sagittal", "t2", 15)]
    return AnalysisResult("stand-in", "simulated", True, conditions=preds, series=series)


def _label_vector(truth: dict[str, Any]) -> torch.Tensor:
    v = torch.zeros(len(CONDITION_KEYS) + len(VERTEBRAE))
    for f in truth.get("findings", []):
        if f.get("label", 1) != 1:
            continue
        v[CONDITION_KEYS.index(f["condition"])] = 1.0
        lvl = (f.get("level") or "").split("-")[0]
        if lvl in VERTEBRAE:
            v[len(CONDITION_KEYS) + VERTEBRAE.index(lvl)] += 0.5
    return v


def standin_embeddings(truth: dict[str, Any], in_dim: int, seed: int, n_slices: int = 8,
                       noise: float = 0.5) -> dict[str, torch.Tensor]:
    """Slice embeddings carrying the labels through a fixed random projection plus noise.

    Only for when no trained encoder bundle is available; never reported as image evidence.
    """
    proj = torch.Generator().manual_seed(1234)
    W = torch.randn(_label_vector(truth).numel(), in_dim, generator=proj)
    g = torch.Generator().manual_seed(seed)
    base = _label_vector(truth) @ W
    return {k: base + noise * torch.randn(n_slices, in_dim, generator=g) for k in ("t1", "t2")}


def attach_similar(studies: list[Study], pool: list[Study] | None = None) -> None:
    """Top-1 similar case = the pool study (other than itself) whose reported positives best
    overlap the query's *predicted* positives (Jaccard). A stand-in for the retrieval agent
    when its embeddings are not available; it never looks at the query's ground truth.
    """
    pool = pool if pool is not None else studies
    sets = {s.study_id: {f["condition"] for f in s.positives()} for s in pool}
    for s in studies:
        if s.result is None or s.result.similar_cases:
            continue
        mine = {c.condition for c in s.result.conditions if c.present}
        best, score = None, -1.0
        for o in pool:
            if o.study_id == s.study_id:
                continue
            theirs = sets[o.study_id]
            j = len(mine & theirs) / max(1, len(mine | theirs)) if (mine or theirs) else 1.0
            if j > score:
                best, score = o, j
        if best is not None:
            s.result.similar_cases = [SimilarCase(best.study_id, round(score, 3), best.report)]


# -- sources -----------------------------------------------------------------------------
_LUMBAR = [l for l in DISC_LEVELS if l.startswith("L")] + ["L5-S1"]
_CERVICAL = [l for l in DISC_LEVELS if l.startswith("C")]


def toy_truth(seed: int) -> dict[str, Any]:
    """A small phantom-like ground truth (same dict shape as spine_phantom's ``.truth``)."""
    rng = random.Random(seed)
    cervical = rng.random() < 0.3
    discs = _CERVICAL if cervical else _LUMBAR
    verts = sorted({l.split("-")[0] for l in discs})
    findings = []
    for c in CONDITIONS:
        region = "cervical" if cervical else "lumbar"
        if region not in c.regions or rng.random() > 0.18:
            continue
        level = rng.choice(discs if c.level_kind == "disc" else verts)
        findings.append({"condition": c.key, "level": level, "label": 1})
    labels = {k: 0 for k in CONDITION_KEYS}
    for f in findings:
        labels[f["condition"]] = 1
    region = "cervical" if cervical else "lumbar"
    return {"labels": labels, "findings": findings, "region": region,
            "report": toy_report(findings, region, rng)}


def toy_report(findings: list[dict[str, Any]], region: str, rng: random.Random) -> dict[str, str]:
    """Reference-style report in a radiologist's voice (not the template backend's wording)."""
    by_level: dict[str, list[str]] = {}
    for f in sorted(findings, key=lambda f: level_order(f["level"])):
        by_level.setdefault(f["level"], []).append(get_condition(f["condition"]).display_name.lower())
    lines = [f"TECHNIQUE: Sagittal T1 and T2 weighted MRI of the {region} spine.",
             "COMPARISON: None.", "", "FINDINGS:"]
    if not findings:
        lines.append("Alignment is normal. Vertebral body heights and marrow signal are preserved.")
        lines.append("No disc herniation, canal stenosis or foraminal narrowing.")
        imp = ["1. Normal MRI of the " + region + " spine."]
    else:
        for lvl, names in by_level.items():
            verb = rng.choice(["There is", "Demonstrates", "Shows"])
            lines.append(f"{lvl}: {verb} {' and '.join(names)}.")
        imp = [f"{i}. {n[0].upper() + n[1:]} at {lvl}." for i, (lvl, n) in
               enumerate(((l, n) for l, ns in by_level.items() for n in ns), 1)]
    text = "\n".join(lines + ["", "IMPRESSION:"] + imp)
    return {"text": text, "findings": "\n".join(lines[4:]), "impression": "\n".join(imp)}


def toy_studies(n: int, seed: int = 0, in_dim: int = 64, split_every: int = 5) -> list[Study]:
    """Self-contained corpus for tests; every ``split_every``-th study is held out."""
    out = []
    for i in range(n):
        truth = toy_truth(seed * 100003 + i)
        s = Study(f"toy-{seed}-{i}", truth, simulate_result(truth, seed * 7919 + i),
                  standin_embeddings(truth, in_dim, seed * 31 + i),
                  "test" if i % split_every == split_every - 1 else "train")
        out.append(s)
    attach_similar(out, [s for s in out if s.split == "train"])
    return out


FAST_PHANTOMS = {"image_size": (64, 64), "include_axial": False, "include_other_sequence": False}


def phantom_truth(seed: int, index: int, fast: bool = True, cache_dir: Path | None = None) -> dict[str, Any]:
    """Ground truth of one ``spine_phantom`` study, cached as JSON (pixels are not needed here).

    ``fast`` renders small sagittal-only images to save CPU. Truth is measured from what
    was drawn and imaged, so labels (and report wording) can differ from the full generator.
    """
    path = Path(cache_dir) / f"{seed}-{index}-{'fast' if fast else 'full'}.json" if cache_dir else None
    if path is not None and path.is_file():
        return json.loads(path.read_text())
    import spine_phantom
    cfg = spine_phantom.PhantomConfig(**FAST_PHANTOMS) if fast else None
    truth = spine_phantom.generate_study(seed, index, cfg).truth
    truth = {k: truth[k] for k in ("labels", "findings", "report", "regions", "split", "series") if k in truth}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(truth, default=str))
    return truth


def phantom_studies(seed: int, indices: Iterable[int], in_dim: int, fast: bool = True,
                    cache_dir: Path | None = None, split: str | None = None,
                    embed=None, analyze=None) -> list[Study]:
    """Studies from ``spine_phantom`` (split from ``split_of``; ``split`` keeps only one).

    ``embed(seed, index) -> {t1,t2}`` and ``analyze(seed, index) -> AnalysisResult`` come
    from a trained model bundle when available; otherwise stand-ins (:func:`simulate_result`,
    :func:`standin_embeddings`).
    """
    import spine_phantom
    out = []
    for i in indices:
        sp = spine_phantom.split_of(seed, i)
        if split is not None and sp != split:
            continue
        truth = phantom_truth(seed, i, fast, cache_dir)
        result = analyze(seed, i) if analyze else simulate_result(truth, seed * 7919 + i)
        emb = embed(seed, i) if embed else standin_embeddings(truth, in_dim, seed * 31 + i)
        out.append(Study(f"phantom-{seed}-{i}", truth, result, emb, sp))
    return out


def dataset_studies(path, in_dim: int, splits=("train",)) -> list[Study]:
    """Studies of a ``spinefm dataset build`` directory: its reports, labels and findings as truth, with
    stand-in agent outputs and embeddings (:func:`simulate_result`, :func:`standin_embeddings`)."""
    import zlib

    from spinefm.dataset import Dataset

    out = []
    for rec in Dataset(path).cases(set(splits)):
        if not rec.report:
            continue
        truth = {"labels": rec.labels, "findings": rec.findings, "report": {"text": rec.report}}
        seed = zlib.crc32(rec.case_id.encode())
        out.append(Study(rec.case_id, truth, simulate_result(truth, seed), standin_embeddings(truth, in_dim, seed),
                         rec.split))
    return out


# -- VQA builder --------------------------------------------------------------------------
def _level_answer(study: Study, level: str) -> str:
    names = [get_condition(f["condition"]).display_name.lower() for f in study.positives()
             if f.get("level") == level]
    if not names:
        return f"No abnormality is reported at {level}."
    return f"At {level} there is {' and '.join(names)}."


def build_vqa(studies: list[Study], tasks: Iterable[str] = TASKS, seed: int = 0,
              agents: bool = True, per_task: int = 1, threshold: float = 0.5,
              margin: float = 0.1, similar_chars: int = 1200) -> list[Example]:
    rng = random.Random(seed)
    kw = {"agents": agents, "threshold": threshold, "margin": margin, "similar_chars": similar_chars}
    out: list[Example] = []
    for s in studies:
        pos = s.positives()
        levels = sorted({f["level"] for f in pos if f.get("level")} or {"L4-L5"}, key=level_order)
        for task in tasks:
            for _ in range(per_task if task != "report" else 1):
                if task == "report":
                    q, a = None, s.report
                elif task == "long":
                    lvl = rng.choice(levels)
                    q, a = f"Describe the findings at {lvl}.", _level_answer(s, lvl)
                elif task == "short":
                    c = rng.choice([get_condition(f["condition"]) for f in pos] if pos and rng.random() < 0.5
                                   else list(CONDITIONS))
                    hit = [f for f in pos if f["condition"] == c.key]
                    q = f"Is there {c.display_name.lower()} in this study? Answer yes or no."
                    a = f"Yes, at {hit[0]['level']}." if hit else "No."
                elif task == "choice":
                    if not pos:
                        continue
                    f = rng.choice(pos)
                    c = get_condition(f["condition"])
                    pool = DISC_LEVELS if c.level_kind == "disc" else VERTEBRAE
                    opts = [f["level"]] + rng.sample([l for l in pool if l != f["level"]], 2)
                    rng.shuffle(opts)
                    letters = "ABC"
                    q = (f"At which level is the {c.display_name.lower()}? "
                         + " ".join(f"{L}) {o}" for L, o in zip(letters, opts)) + " D) none. Answer with the letter.")
                    a = f"{letters[opts.index(f['level'])]}) {f['level']}"
                else:
                    raise ValueError(f"unknown task {task!r}; known {TASKS}")
                msgs = build_messages(s.result, q, **kw) if q else build_messages(s.result, **kw)
                out.append(Example(s.study_id, task, msgs, a, s.embeddings))
    return out


def corpus_texts(studies: list[Study], agents: bool = True) -> list[str]:
    """Texts to train the tiny tokenizer on: prompts and answers as the model will see them."""
    texts = []
    for e in build_vqa(studies, agents=agents):
        texts.extend(m["content"] for m in e.messages)
        texts.append(e.answer)
    return texts


def bundle_analysis(bundle, seed: int, index: int) -> tuple[dict[str, Any], AnalysisResult, dict[str, torch.Tensor]]:
    """Real agent outputs and slice embeddings from a SpineFM bundle on one full phantom study.

    Returns (truth, AnalysisResult without draft, {"t1": [n, D], "t2": [n, D]}). Uses the
    bundle's own ``analyze`` plus its series embedding step (spinefm.analyze internals).
    """
    import spine_phantom

    from spinefm.analyze import choose_series, embed_series, record_from_study_input
    from spinefm.study import StudyInput

    ph = spine_phantom.generate_study(seed, index)
    study = StudyInput.from_datasets([ds for s in ph.series for ds in s.datasets()])
    result = bundle.analyze(study, draft=False)
    record = record_from_study_input(study, bundle.model.cfg.preprocess)
    with torch.no_grad():
        embedded = embed_series(bundle.model, choose_series(record))
    emb: dict[str, torch.Tensor] = {}
    for e in embedded.values():
        if e["series"].stream in ("t1", "t2"):
            emb.setdefault(e["series"].stream, e["cls"].float())
    return ph.truth, result, emb
