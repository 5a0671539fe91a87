"""Do two evaluations (spinefm evaluate / train-default metrics.json) agree within their bootstrap CIs?

    python scripts/compare_metrics.py A/metrics.json B/metrics.json [--variant spinefm]

Per view and condition: each run's AUROC must lie inside the other's 95% bootstrap CI; prints the
mean AUROC of both, the largest difference and every disagreement; exit 1 when any disagrees.
Used for the dataset-path vs in-memory phantom equivalence (docs/training.md).
"""

from __future__ import annotations

import argparse
import json
import sys


def compare(a: dict, b: dict, variant: str = "spinefm") -> tuple[list[str], list[str]]:
    lines, bad = [], []
    da, db = a["variants"][variant]["diagnosis"], b["variants"][variant]["diagnosis"]
    for view in da:
        diffs = []
        for cond, ma in da[view]["per_condition"].items():
            mb = db[view]["per_condition"].get(cond)
            if mb is None or ma["auroc"]["value"] is None or mb["auroc"]["value"] is None:
                continue
            x, y = ma["auroc"], mb["auroc"]
            diffs.append(abs(x["value"] - y["value"]))
            inside = x["ci95"][0] <= y["value"] <= x["ci95"][1] and y["ci95"][0] <= x["value"] <= y["ci95"][1]
            if not inside:
                bad.append(f"{view} {cond}: {x['value']:.3f} {x['ci95']} vs {y['value']:.3f} {y['ci95']}")
        lines.append(f"{view}: mean AUROC {da[view]['mean_auroc']:.4f} vs {db[view]['mean_auroc']:.4f}; "
                     f"largest per-condition difference {max(diffs, default=0):.4f} over {len(diffs)} conditions")
    return lines, bad


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--variant", default="spinefm")
    args = p.parse_args(argv)
    lines, bad = compare(json.load(open(args.a)), json.load(open(args.b)), args.variant)
    print("\n".join(lines))
    print(f"{len(bad)} condition(s) outside the other run's CI" + (":\n  " + "\n  ".join(bad) if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
