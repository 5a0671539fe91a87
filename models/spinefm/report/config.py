"""Which drafter writes the drafts: the site's choice, else the bundle's, checked before anything loads.

A site names its drafter in the environment (``SPINEAGENT_DRAFTER`` and its companions, declared in
backend/settings.py, which passes them here as a dict); a bundle may name one in its manifest
(``"report": {...}``). The site's choice wins when it names a backend, because the site holds the
weights and the endpoints; otherwise the bundle's; otherwise the default of :func:`make_drafter`
(``llava`` when the bundle ships a report agent, else ``template``).
:func:`check` refuses what cannot work in one line (:class:`DrafterConfigError`), so a bad setting is
reported when the worker starts, not as a failure in every job.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

BACKENDS = ("template", "llava", "openai")


class DrafterConfigError(ValueError):
    """The drafter configuration cannot work; the message says which setting and why."""


def choose(site: dict[str, Any] | None, bundle: dict[str, Any] | None) -> tuple[dict[str, Any], str]:
    """(config, where it came from: "site", "bundle" or "default")."""
    site = {k: v for k, v in (site or {}).items() if v not in (None, "")}
    if site.get("backend"):
        return site, "site"
    if bundle:
        return dict(bundle), "bundle"
    return {}, "default"


def _positive(config: dict, key: str) -> None:
    if key not in config:
        return
    try:
        value = float(config[key])
    except (TypeError, ValueError):
        raise DrafterConfigError(f"{key} must be a number of seconds, got {config[key]!r}") from None
    if not value > 0:
        raise DrafterConfigError(f"{key} must be positive, got {config[key]!r}")
    config[key] = value


def _directory(config: dict, key: str, what: str) -> None:
    if config.get(key) and not Path(config[key]).is_dir():
        raise DrafterConfigError(f"{key} {config[key]!r} is not a directory ({what})")


def check(config: dict[str, Any]) -> dict[str, Any]:
    """The config with numbers parsed; DrafterConfigError when it cannot work."""
    config = dict(config)
    backend = config.get("backend")
    if backend is not None and backend not in BACKENDS:
        raise DrafterConfigError(f"unknown drafter {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "openai":
        url = urlparse(str(config.get("base_url") or ""))
        if url.scheme not in ("http", "https") or not url.netloc:
            raise DrafterConfigError(f"openai drafter needs base_url, an http(s) URL such as http://vllm:8000/v1; "
                                     f"got {config.get('base_url')!r}")
        if not str(config.get("model") or "").strip():
            raise DrafterConfigError("openai drafter needs model, the name the server serves")
        _positive(config, "timeout_s")
    if backend == "llava":
        _directory(config, "lm_path", "a local transformers causal-LM directory, e.g. Llama-3.1-8B-Instruct")
        _directory(config, "agent_dir", "our report agent: projector.safetensors, adapter/, config.json")
        if config.get("agent_dir") and not (Path(config["agent_dir"]) / "config.json").is_file():
            raise DrafterConfigError(f"agent_dir {config['agent_dir']!r} has no config.json (not a report agent)")
    if config.get("dtype") and config["dtype"] not in ("float32", "bfloat16", "float16"):
        raise DrafterConfigError(f"dtype must be float32, bfloat16 or float16, got {config['dtype']!r}")
    for key in ("max_new_tokens", "batch_size"):
        if key in config:
            try:
                config[key] = int(config[key])
            except (TypeError, ValueError):
                raise DrafterConfigError(f"{key} must be an integer, got {config[key]!r}") from None
    return config
