"""Load the model behind a ModelVersion, once per worker process.

A version's ``path`` is a SpineFM bundle directory (``spinefm.bundle.load_bundle``
verifies its hashes). ``builtin:no-findings`` is a deliberately empty analyzer
for pipeline checks: it returns no findings and says so in its name.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from spinefm.results import AnalysisResult
from spinefm.study import StudyInput

NO_FINDINGS = "builtin:no-findings"

_cache: dict[tuple[str, str], object] = {}
_lock = threading.Lock()


class NoFindingsAnalyzer:
    """Placeholder model: analyses nothing, finds nothing. Never promote it for clinical use."""

    name, version = "no-findings-placeholder", "0"

    def analyze(self, study: StudyInput) -> AnalysisResult:
        return AnalysisResult(model_name=self.name, model_version=self.version, synthetic_training=False,
                              draft_text="", draft_backend="none")


def load_analyzer(path: str, fingerprint: str = ""):
    """Analyzer for a ModelVersion path, cached by (path, manifest hash)."""
    key = (path, fingerprint)
    with _lock:
        if key not in _cache:
            if path == NO_FINDINGS:
                _cache[key] = NoFindingsAnalyzer()
            else:
                import torch

                from spinefm.bundle import load_bundle

                # One intra-op thread by default: on small CPU workers torch's default oversubscribes
                # (measured 0.4 s vs 3.5 s per study on 2 cores); GPU workers raise it if they like.
                torch.set_num_threads(int(os.environ.get("SPINEAGENT_TORCH_THREADS", "1")))
                _cache[key] = load_bundle(Path(path))
        return _cache[key]
