"""Resumable training checkpoints and the exported encoder.

* ``checkpoint.pt``: everything needed to resume bit-for-bit (student, teacher,
  Gram teacher, loss centres, optimiser, step, config). Written to a temporary
  file in the same directory and moved into place with ``os.replace`` so a
  crash mid-write never leaves a truncated checkpoint.
* ``encoder.safetensors``: the teacher backbone only (the teacher is the
  better encoder in DINO), with its ``ViTConfig`` as JSON metadata, loadable
  into ``VisionTransformer`` without this package.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, safe_open, save_file

from ...vit import VisionTransformer, ViTConfig

FORMAT = "spinefm-ssl-v1"


def _atomic(path: Path, write) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def save_checkpoint(path: Path, arch, optimizer, step: int, extra: dict | None = None) -> Path:
    state = {
        "format": FORMAT,
        "step": step,
        "config": arch.cfg.to_dict(),
        "vit_config": arch.student["backbone"].config.to_dict(),
        "has_gram_teacher": arch.gram_teacher is not None,
        "model": arch.state_dict(),
        "optimizer": optimizer.state_dict(),
        "extra": extra or {},
    }
    return _atomic(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    state = torch.load(path, map_location=map_location, weights_only=False)
    if state.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} checkpoint")
    return state


def restore(state: dict, arch, optimizer=None) -> int:
    """Load a checkpoint into ``arch`` (and ``optimizer``); returns the step to continue from."""
    if state["has_gram_teacher"] and arch.gram_teacher is None:
        arch.start_gram_phase()
    arch.load_state_dict(state["model"])
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    return int(state["step"])


def export_encoder(path: Path, backbone: VisionTransformer, metadata: dict | None = None) -> Path:
    tensors = {k: v.detach().float().cpu().contiguous() for k, v in backbone.state_dict().items()}
    meta = {"format": "spinefm-vit", "vit_config": json.dumps(backbone.config.to_dict())}
    meta.update({k: str(v) for k, v in (metadata or {}).items()})
    return _atomic(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def load_encoder(path: Path, map_location: str = "cpu") -> VisionTransformer:
    """Rebuild a ``VisionTransformer`` from an exported ``encoder.safetensors``."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if "vit_config" not in meta:
        raise ValueError(f"{path}: no vit_config metadata")
    model = VisionTransformer(ViTConfig(**json.loads(meta["vit_config"])))
    model.load_state_dict(load_file(str(path), device=map_location))
    return model
