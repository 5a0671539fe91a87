"""Medical Report Agent: drafts spine MRI reports from the other agents' outputs.

Entry point: :func:`make_drafter` picks a backend by config.

* ``template`` - deterministic report from the agent outputs; the default when
  no trained report agent is configured (no torch needed).
* ``llava``    - attention-pooling projector + Llama decoder (+ LoRA), loaded from
  ``<bundle>/report_agent/`` or ``config["agent_dir"]``.
* ``openai``   - any OpenAI-compatible chat endpoint (e.g. vLLM), text only.

Every drafter has ``.name`` and ``.version``; ``draft_record`` also returns settings.
Serving goes through :func:`load_drafter`: the site's or the bundle's configuration
(spinefm.report.config), checked, loaded once, with the template behind it
(backends/fallback.py) so a drafter that cannot load or fails on a study still leaves a draft,
marked as a fallback with its reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spinefm.report.backends.base import Draft, Drafter
from spinefm.report.backends.template import TemplateDrafter

AGENT_SUBDIR = "report_agent"
BACKENDS = ("template", "llava", "openai")

__all__ = ["make_drafter", "load_drafter", "Drafter", "Draft", "TemplateDrafter", "save_report_agent",
           "load_report_agent", "AGENT_SUBDIR", "BACKENDS"]


def _agent_dir(config: dict[str, Any], bundle_dir: Path | None) -> Path | None:
    if config.get("agent_dir"):
        return Path(config["agent_dir"])
    if bundle_dir is not None and (Path(bundle_dir) / AGENT_SUBDIR / "config.json").is_file():
        return Path(bundle_dir) / AGENT_SUBDIR
    return None


def make_drafter(config: dict[str, Any] | None = None, bundle_dir: Path | None = None) -> Drafter:
    """Build the drafter named by ``config["backend"]``.

    Without a backend in the config: ``llava`` if the bundle has a report agent,
    else ``template``. Keys besides ``backend`` go to the backend (see
    docs/report-agent.md), e.g. ``threshold``/``margin`` (template),
    ``base_url``/``model``/``api_key``/``timeout_s`` (openai),
    ``agent_dir``/``lm_path``/``device``/``dtype``/``max_new_tokens`` (llava).
    """
    config = dict(config or {})
    backend = config.pop("backend", None)
    agent_dir = _agent_dir(config, bundle_dir)
    if backend is None:
        backend = "llava" if agent_dir is not None else "template"
    if backend == "template":
        keys = ("threshold", "margin", "disclaimer")
        return TemplateDrafter(**{k: config[k] for k in keys if k in config})
    if backend == "openai":
        from spinefm.report.backends.openai import OpenAIDrafter
        return OpenAIDrafter.from_config(config)
    if backend == "llava":
        if agent_dir is None:
            raise FileNotFoundError(
                "backend 'llava' needs a trained report agent: none at "
                f"{Path(bundle_dir) / AGENT_SUBDIR if bundle_dir else '(no bundle_dir)'} and no "
                "config['agent_dir']; train one (python -m spinefm.train.report_agent) or use 'template'")
        from spinefm.report.backends.llava import LlavaDrafter
        return LlavaDrafter.from_dir(agent_dir, config)
    raise ValueError(f"unknown report backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def load_drafter(site: dict[str, Any] | None = None, bundle: dict[str, Any] | None = None,
                 bundle_dir: Path | None = None):
    """The drafter a worker serves with (a GuardedDrafter); never raises.

    ``site``: the site's settings (backend/settings.py SPINEAGENT_DRAFTER*), which win when they name a
    backend; ``bundle``: the manifest's ``report`` section. A configuration that does not check out or a
    drafter that does not load leaves the template writing the drafts, with the reason recorded.
    """
    from spinefm.report.backends.fallback import GuardedDrafter, one_line
    from spinefm.report.config import check, choose

    config, origin = choose(site, bundle)
    configured = config.get("backend") or ("llava" if _agent_dir(config, bundle_dir) is not None else "template")
    try:
        drafter = GuardedDrafter(make_drafter(check(config), bundle_dir), configured)
    except Exception as exc:  # reported once at start-up; every draft then records the fallback
        drafter = GuardedDrafter(None, configured, one_line(exc))
    drafter.origin = origin
    return drafter


def save_report_agent(agent, directory: Path) -> Path:
    """Write a ReportAgent to ``directory`` (config.json, *.safetensors, tokenizer.json)."""
    from spinefm.report.agent_io import save_report_agent as _save
    return _save(agent, directory)


def load_report_agent(directory: Path, **kwargs):
    """Load what :func:`save_report_agent` wrote; returns a ReportAgent."""
    from spinefm.report.agent_io import load_report_agent as _load
    return _load(directory, **kwargs)
