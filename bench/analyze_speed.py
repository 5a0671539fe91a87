"""Time ``analyze`` (the model side of arrival-to-draft) on varied phantom studies, with a reference in the same run.

Reference: the same bundle with its spine locator switched off (studies keep their DICOM region
tags, so they are still analysed), i.e. the cost the image check and level counting add. The
ratio is the number to compare across machines; the seconds are this machine's.

    PYTHONPATH=.:models python bench/analyze_speed.py --bundle models/bundles/spineagent-phantom-nano --studies 8 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default="models/bundles/spineagent-phantom-nano")
    ap.add_argument("--studies", type=int, default=8)
    ap.add_argument("--seed", type=int, default=77, help="phantom seed (never trained on)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    import torch

    import spine_phantom
    from spinefm.bundle import load_bundle
    from spinefm.study import StudyInput

    torch.set_num_threads(args.threads)
    bundle = load_bundle(args.bundle)
    cfg = spine_phantom.PhantomConfig(acquisition="varied")
    studies = []
    for i in range(args.studies):
        ph = spine_phantom.generate_study(args.seed, i, cfg)
        studies.append(StudyInput.from_datasets([ds for s in ph.series for ds in s.datasets()]))
    bundle.analyze(studies[0])  # warm-up (drafter, first-call allocations)
    fitted = float(bundle.model.locator.fitted)

    def run() -> list[float]:
        out = []
        for st in studies:
            t = time.perf_counter()
            bundle.analyze(st)
            out.append(time.perf_counter() - t)
        return out

    full = run()
    bundle.model.locator.fitted.fill_(0.0)
    try:
        ref = run()
    finally:
        bundle.model.locator.fitted.fill_(fitted)
    print(f"bundle {bundle.name} {bundle.version}, {args.studies} varied phantom studies (seed {args.seed}), "
          f"{args.threads} thread(s)")
    print(f"analyze with the spine locator:    median {statistics.median(full):.3f} s, max {max(full):.3f} s")
    print(f"reference, locator switched off:  median {statistics.median(ref):.3f} s, max {max(ref):.3f} s")
    print(f"ratio (with / without locator):    {statistics.median(full) / statistics.median(ref):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
