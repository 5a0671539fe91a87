"""OpenAI-compatible backend (vLLM, llama.cpp server, hosted APIs): text only.

POSTs ``{base_url}/chat/completions`` with the same system prompt and agent
tokens as the llava backend (no image placeholder). Errors name the endpoint and
the cause (connection, timeout, HTTP status with the server's message, malformed
reply). Temperature 0 by default so drafts are reproducible where the server allows.
"""

from __future__ import annotations

import os
from typing import Any

import requests

from spinefm.report.backends.base import Drafter, printable
from spinefm.report.prompt import PROMPT_VERSION, build_messages
from spinefm.results import AnalysisResult


class DrafterError(RuntimeError):
    """The drafting backend failed; the message says where and why."""


class OpenAIDrafter(Drafter):
    name = "openai"

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout_s: float = 60.0,
                 max_tokens: int = 800, temperature: float = 0.0, threshold: float = 0.5,
                 margin: float = 0.1, retries: int = 1):
        if not base_url or not model:
            raise ValueError("openai backend needs config['base_url'] (e.g. http://vllm:8000/v1) "
                             "and config['model']")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.timeout_s, self.max_tokens, self.temperature = float(timeout_s), int(max_tokens), float(temperature)
        self.threshold, self.margin, self.retries = threshold, margin, int(retries)
        self.version = f"{model}@{self.base_url}+prompt{PROMPT_VERSION}"

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "OpenAIDrafter":
        key = config.get("api_key") or os.environ.get(config.get("api_key_env", "OPENAI_API_KEY"))
        keys = ("timeout_s", "max_tokens", "temperature", "threshold", "margin", "retries")
        return cls(config.get("base_url", ""), config.get("model", ""), key,
                   **{k: config[k] for k in keys if k in config})

    def settings(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "model": self.model, "temperature": self.temperature,
                "max_tokens": self.max_tokens, "prompt_version": PROMPT_VERSION}

    def draft(self, result: AnalysisResult, slice_embeddings: dict | None = None) -> str:
        messages = build_messages(result, image=False, threshold=self.threshold, margin=self.margin)
        url = f"{self.base_url}/chat/completions"
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        body = {"model": self.model, "messages": messages, "max_tokens": self.max_tokens,
                "temperature": self.temperature}
        last: Exception | None = None
        for _ in range(self.retries + 1):
            try:
                r = requests.post(url, json=body, headers=headers, timeout=self.timeout_s)
            except requests.Timeout as e:
                last = DrafterError(f"openai backend: no answer from {url} within {self.timeout_s:g} s")
                continue
            except requests.ConnectionError as e:
                last = DrafterError(f"openai backend: cannot connect to {url}: {e}")
                continue
            if r.status_code >= 500:
                last = DrafterError(f"openai backend: {url} returned HTTP {r.status_code}: {r.text[:300]}")
                continue
            if r.status_code >= 400:
                raise DrafterError(f"openai backend: {url} returned HTTP {r.status_code}: {r.text[:300]}")
            try:
                text = r.json()["choices"][0]["message"]["content"]
            except (ValueError, KeyError, IndexError, TypeError):
                raise DrafterError(f"openai backend: malformed reply from {url}: {r.text[:300]}") from None
            if not isinstance(text, str) or not printable(text).strip():
                raise DrafterError(f"openai backend: empty draft from {url} (model {self.model})")
            return printable(text).strip()
        raise last  # type: ignore[misc]
