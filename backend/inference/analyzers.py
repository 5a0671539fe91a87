"""Load the model behind a ModelVersion, once per worker process, with the site's report drafter.

A version's ``path`` is a SpineFM bundle directory (``spinefm.bundle.load_bundle``
verifies its hashes). ``builtin:no-findings`` is a deliberately empty analyzer
for pipeline checks: it returns no findings and says so in its name.
The drafter named by the SPINEAGENT_DRAFTER* settings goes to the bundle
(``Bundle.configure_drafter``); :func:`preload_active_model` loads both when a
worker process starts, so a drafter that cannot load is reported then.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from django.conf import settings

from spinefm.results import AnalysisResult
from spinefm.study import StudyInput

NO_FINDINGS = "builtin:no-findings"

log = logging.getLogger(__name__)
_cache: dict[tuple[str, str], object] = {}
_lock = threading.Lock()


def drafter_settings() -> dict | None:
    """The site's drafter as spinefm.report.load_drafter takes it; None when SPINEAGENT_DRAFTER is unset."""
    if not settings.SPINEAGENT_DRAFTER:
        return None
    keys = {"base_url": "BASE_URL", "model": "MODEL", "api_key": "API_KEY", "timeout_s": "TIMEOUT_S",
            "lm_path": "LM_PATH", "agent_dir": "AGENT_DIR", "device": "DEVICE", "dtype": "DTYPE"}
    config = {"backend": settings.SPINEAGENT_DRAFTER}
    config.update({k: getattr(settings, f"SPINEAGENT_DRAFTER_{v}") for k, v in keys.items()
                   if getattr(settings, f"SPINEAGENT_DRAFTER_{v}")})
    if config["backend"] != "openai":  # endpoint settings mean nothing to the other drafters
        for k in ("base_url", "model", "api_key", "timeout_s"):
            config.pop(k, None)
    return config


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
                torch.set_num_threads(settings.SPINEAGENT_TORCH_THREADS)
                bundle = load_bundle(Path(path))
                bundle.configure_drafter(drafter_settings())
                bundle.drafter()  # under the lock: a job and the start-up preload never load it twice
                _cache[key] = bundle
        return _cache[key]


_site_banks: dict[str, tuple[int, object, str]] = {}


def attach_site_index(analyzer) -> None:
    """Serve similar cases from the site's own bank (backend/training/site_index.py) when the site allows it
    and one exists for this bundle's encoders; re-read after each rebuild. A bank that cannot be read is
    logged and the bundle's own cases are served: similar cases never fail a job."""
    if not hasattr(analyzer, "use_site_index"):
        return
    if settings.SPINEAGENT_SITE_INDEX != "signed":
        analyzer.use_site_index(None, "")
        return
    from spinefm import site_index
    from spinefm.bundle import embedding_key

    root, key = settings.SPINEAGENT_SITE_INDEX_DIR, embedding_key(analyzer.manifest)
    try:
        stamp = (site_index.directory_for(root, key) / site_index.META).stat().st_mtime_ns
    except OSError:
        analyzer.use_site_index(None, "")
        return
    with _lock:
        cached = _site_banks.get(key)
        if cached is None or cached[0] != stamp:
            try:
                meta, index = site_index.read_meta(root, key), site_index.read(root, key)
            except site_index.SiteIndexError as exc:
                log.error("site index not used: %s", exc)
                analyzer.use_site_index(None, "")
                return
            cached = _site_banks[key] = (stamp, index, f"{meta['description']} (built {meta['built_at']})")
    analyzer.use_site_index(cached[1], cached[2])


def preload_active_model() -> str:
    """Load the active model version and its drafter now (worker start-up); returns what the log said.

    Never raises: a worker that cannot load its model still starts, and its jobs say why they fail; a
    drafter that cannot load leaves the template writing drafts, each recording the fallback.
    """
    from .models import ModelVersion

    try:
        version = ModelVersion.objects.filter(state=ModelVersion.ACTIVE).first()
        if version is None:
            message = "no active model version yet; the model loads with the first job"
            log.info("worker start-up: %s", message)
            return message
        analyzer = load_analyzer(version.path, version.manifest_sha256)
        drafter = analyzer.drafter() if hasattr(analyzer, "drafter") else None
        if drafter is None:
            message = f"model {version.name} {version.version} loaded; no report drafter"
            log.info("worker start-up: %s", message)
            return message
        message = f"model {version.name} {version.version} loaded; {drafter.status}"
        (log.info if drafter.primary is not None else log.error)("worker start-up: %s", message)
        return message
    except Exception as exc:
        message = f"could not load the active model: {type(exc).__name__}: {exc}"
        log.exception("worker start-up: %s", message)
        return message
