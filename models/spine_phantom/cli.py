"""``spine-phantom generate --studies 200 --seed 1 --out DIR``: write a synthetic data set.

Writes one folder per study (DICOM series + truth.json) and ``index.json``
listing every study with its split, regions, labels and paths.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from . import __version__
from .config import PhantomConfig
from .ids import EVAL_SEED, EVAL_STUDIES
from .study import generate_study, write_study


def _parse(argv):
    ap = argparse.ArgumentParser(prog="spine-phantom", description="Synthetic spine MRI phantoms (SYNTHETIC data).")
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate", help="generate studies as DICOM + truth.json")
    g.add_argument("--studies", type=int, default=200)
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--start", type=int, default=0, help="first study index")
    g.add_argument("--out", required=True)
    g.add_argument("--regions", default=None, help="comma list, e.g. lumbar or cervical,thoracic")
    g.add_argument("--size", type=int, default=256, help="rows = columns")
    g.add_argument("--uncertain-fraction", type=float, default=None)
    g.add_argument("--prevalence", type=float, default=None, help="one prevalence for every condition")
    g.add_argument("--no-other", action="store_true", help="never add a Dixon / post-contrast series")
    g.add_argument("--acquisition", choices=["fixed", "varied"], default="fixed",
                   help="varied: random coverage, FOV, spacing, rotation, intensity and transitional vertebrae")
    g.add_argument("--no-region-tags", action="store_true",
                   help="leave BodyPartExamined blank and StudyDescription without the region, as many exports do")
    g.add_argument("--config", default=None,
                   help='PhantomConfig fields as JSON, applied last (e.g. \'{"include_axial": false}\')')
    g.add_argument("--tables", action="store_true",
                   help="also write reports.csv, labels.csv and findings.csv (truth as a site's tables, for "
                        "spinefm dataset build)")
    g.add_argument("--no-truth", action="store_true", help="no truth.json per study (the images and tables only)")
    g.add_argument("--quiet", action="store_true")
    sub.add_parser("eval-split", help="print the fixed evaluation split definition")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    if args.cmd == "eval-split":
        print(json.dumps({"seed": EVAL_SEED, "studies": EVAL_STUDIES, "split": "test",
                          "command": f"spine-phantom generate --seed {EVAL_SEED} --studies {EVAL_STUDIES} --out DIR"}))
        return 0
    from spinefm.conditions import CONDITION_KEYS

    cfg = PhantomConfig(image_size=(args.size, args.size), include_other_sequence=not args.no_other,
                        acquisition=args.acquisition, region_tags=not args.no_region_tags)
    if args.regions:
        cfg.regions = tuple(r.strip() for r in args.regions.split(",") if r.strip())
    if args.uncertain_fraction is not None:
        cfg.uncertain_fraction = args.uncertain_fraction
    if args.prevalence is not None:
        cfg.prevalence = {k: args.prevalence for k in CONDITION_KEYS}
    if args.config:
        for k, v in json.loads(args.config).items():
            if not hasattr(cfg, k):
                raise SystemExit(f"--config: PhantomConfig has no field {k!r}")
            setattr(cfg, k, tuple(v) if isinstance(v, list) else v)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tables = None
    if args.tables:
        from .export import TableWriter

        tables = TableWriter(out)
    entries = []
    t0 = time.perf_counter()
    for index in range(args.start, args.start + args.studies):
        study = generate_study(args.seed, index, cfg)
        folder = write_study(study, out)
        if args.no_truth:
            (folder / "truth.json").unlink()
        if tables is not None:
            tables.add(study)
        entries.append({
            "index": index, "study_dir": study.study_dir, "split": study.split,
            "patient_id": study.patient_id, "study_instance_uid": study.study_instance_uid,
            "regions": list(study.regions), "vendor": study.vendor,
            "truth": None if args.no_truth else str((folder / "truth.json").relative_to(out)),
            "series": [{"series_instance_uid": s.series_instance_uid, "sequence": s.sequence, "plane": s.plane,
                        "dir": f"{study.study_dir}/{s.number:02d}_{s.sequence}_{s.plane}",
                        "n": int(s.pixels.shape[0])} for s in study.series],
            "labels": study.truth["labels"],
        })
        if not args.quiet:
            print(f"[{index - args.start + 1}/{args.studies}] {study.study_dir} {'+'.join(study.regions)} "
                  f"{study.split} findings={len(study.findings)}", file=sys.stderr)
    if tables is not None:
        tables.close()
    index_doc = {"synthetic": True, "generator": f"spine_phantom {__version__}", "seed": args.seed,
                 "studies": entries,
                 "eval_split": {"seed": EVAL_SEED, "studies": EVAL_STUDIES}}
    (out / "index.json").write_text(json.dumps(index_doc, indent=1) + "\n")
    if not args.quiet:
        print(f"wrote {len(entries)} studies to {out} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
