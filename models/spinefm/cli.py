"""``spinefm`` command line: one subcommand per training stage, evaluation and bundling.

    spinefm dataset build ...   a dataset directory from DICOM folders, DICOMweb, phantoms or the RSNA 2024 / SPIDER
                                layouts (+ reports, labels, boxes)
    spinefm pretrain ...        self-supervised encoder pretraining (spinefm.train.ssl)
    spinefm align ...           tri-modal CLIP alignment
    spinefm synth ...           synthesizer layer weights
    spinefm heads ...           diagnosis + segmentation heads
    spinefm levels ...          level head (also adds one to a finished bundle)
    spinefm locator ...         spine locator: discs and their levels on the images (adds it to a bundle)
    spinefm evaluate ...        metrics JSON + Markdown for a bundle (and baselines)
    spinefm compare ...         a candidate and reference bundles on the same held-out cases of a dataset
    spinefm build-bundle ...    final bundle: weights + retrieval index + manifest
    spinefm convert-encoder ... a published DINOv2/DINOv3 checkpoint (transformers, timm) as our encoder
    spinefm train-default ...   the whole documented pipeline for the default bundle

Multi-GPU: ``torchrun --nproc_per_node=8 -m spinefm.cli align ...``.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys

STAGES = {
    "dataset": ("spinefm.dataset.build", "build a dataset directory (DICOM folder, DICOMweb, phantoms, RSNA 2024, SPIDER) or show one"),
    "pretrain": ("spinefm.train.ssl.train", "self-supervised encoder pretraining (DINO/iBOT/KoLeo)"),
    "align": ("spinefm.train.align", "tri-modal CLIP alignment of T1, T2 and reports"),
    "synth": ("spinefm.train.synth", "train the synthesizer (layer-wise T1/T2 fusion)"),
    "heads": ("spinefm.train.heads", "train diagnosis and segmentation heads"),
    "levels": ("spinefm.train.levels", "train the level head (finding -> spinal level) on a stage or bundle"),
    "locator": ("spinefm.train.locator", "train the spine locator (disc levels counted on the images) into a bundle"),
    "calibrate": ("spinefm.train.calibrate", "operating points (present / possible / not assessed) from held-out cases"),
    "evaluate": ("spinefm.train.evaluate", "evaluate a bundle on held-out phantoms (+ baselines)"),
    "compare": ("spinefm.train.compare", "score a candidate and reference bundles on the same held-out dataset cases"),
    "build-bundle": ("spinefm.train.build", "assemble a bundle with retrieval index and metrics"),
    "train-default": ("spinefm.train.default", "train the default phantom bundle end to end"),
    "convert-encoder": ("spinefm.convert.cli", "convert a DINOv2/DINOv3 checkpoint (transformers, timm) to our encoder"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="spinefm", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    chosen = argv[0] if argv and argv[0] in STAGES else None
    for name, (module, help_text) in STAGES.items():
        p = sub.add_parser(name, help=help_text)
        if name == chosen:  # import only the stage that runs: each pulls in its own heavy modules
            mod = importlib.import_module(module)
            mod.add_arguments(p)
            p.set_defaults(_run=mod.run)
    args = parser.parse_args(argv)
    args.command_line = "spinefm " + shlex.join(argv)  # recorded in bundle manifests
    from .bundle import BundleError
    from .convert import CheckpointError
    from .dataset import DatasetError
    from .text import TextModelError

    try:
        result = args._run(args)
    except (BundleError, CheckpointError, DatasetError, TextModelError) as exc:  # bad input: its message, not a traceback
        parser.exit(2, f"spinefm {args.command}: {exc}\n")
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
