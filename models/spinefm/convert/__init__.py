"""Published ViT checkpoints -> our ``VisionTransformer`` (spinefm.vit), from a local file or directory.

Sources (``fmt="auto"`` tells them apart by their config and keys):

* ``transformers``: a ``save_pretrained`` directory of ``DINOv3ViTModel``, ``Dinov2Model`` or
  ``Dinov2WithRegistersModel`` (config.json + model.safetensors / pytorch_model.bin / shards);
* ``timm``: a state dict of timm's ``Eva`` DINOv3 models (``vit_*_patch16_dinov3*``, RoPE) or of its
  ``VisionTransformer`` (DINOv2 and register variants, learnt positions), as a file or a directory
  with timm's config.json (which names the architecture, hence the head count);
* ``spinefm``: an ``encoder.safetensors`` we wrote (spinefm pretrain / convert-encoder).

The mapping is strict: every weight of the checkpoint is used (classifier heads aside), every
weight of the encoder is filled, every shape agrees; otherwise :class:`CheckpointError` names the
first offending key in one line. Biases the source has not got (DINOv3's key bias) and layer
scales it has not got are filled with the values that make the function identical (0 and 1).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..vit import VisionTransformer, ViTConfig

FORMATS = ("auto", "transformers", "timm", "spinefm")


class CheckpointError(ValueError):
    """A checkpoint cannot become our encoder; the message names the file and the first offending key."""


class Source:
    """A state dict whose keys are consumed by a mapping; what is left over is an unexpected key."""

    def __init__(self, state: dict[str, torch.Tensor], origin: str):
        self.state, self.origin, self.used = state, origin, set()
        self.names: dict[str, str] = {}  # our key -> the checkpoint key(s) it came from, for errors

    def has(self, key: str) -> bool:
        return key in self.state

    def take(self, key: str) -> torch.Tensor:
        if key not in self.state:
            raise CheckpointError(f"{self.origin}: missing key {key!r} (the checkpoint does not match its "
                                  "architecture, or it is not a complete encoder)")
        self.used.add(key)
        return self.state[key]

    def take_or(self, key: str, fill: torch.Tensor) -> torch.Tensor:
        return self.take(key) if key in self.state else fill

    def skip(self, key: str) -> None:
        self.used.add(key)

    def leftover(self) -> list[str]:
        return [k for k in self.state if k not in self.used]


def first_key_error(origin: str, exc: Exception) -> CheckpointError:
    return CheckpointError(f"{origin}: {str(exc).splitlines()[0]}")


def read_config(directory: Path) -> dict | None:
    path = directory / "config.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from None


def _load_file(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors and (safetensors) metadata of one weights file; one clear line if it cannot be read."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
        except Exception as exc:
            raise CheckpointError(f"{path}: not a readable safetensors file ({str(exc).splitlines()[0]})") from None
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({str(exc).splitlines()[0][:200]})") from None
    for wrapper in ("model_ema", "model", "state_dict", "teacher", "module"):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
            break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: does not hold a state dict of tensors")
    return obj, {}


WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_model.safetensors")


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict | None, dict, Path]:
    """(state dict, config.json or None, safetensors metadata, weights path) of a file or directory."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file or directory")
    if path.is_file():
        state, meta = _load_file(path)
        return state, None, meta, path
    config = read_config(path)
    index = path / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{index}: not a safetensors index ({exc})") from None
        state = {}
        for shard in shards:
            if not (path / shard).is_file():
                raise CheckpointError(f"{path / shard}: listed in {index.name} but missing")
            state.update(_load_file(path / shard)[0])
        return state, config, {}, index
    for name in WEIGHT_FILES:
        if (path / name).is_file():
            state, meta = _load_file(path / name)
            return state, config, meta, path / name
    raise CheckpointError(f"{path}: no weights here (expected one of {', '.join(WEIGHT_FILES)} "
                          "or model.safetensors.index.json)")


def strip_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop one wrapper prefix shared by every key (``module.``, ``backbone.``, ``dinov2.``, ...)."""
    for prefix in ("module.", "backbone.", "dinov2.", "dinov3.", "visual.trunk.", "trunk."):
        if state and all(k.startswith(prefix) for k in state):
            return {k[len(prefix):]: v for k, v in state.items()}
    return state


def detect_format(config: dict | None, meta: dict, state: dict[str, torch.Tensor]) -> str:
    if meta.get("format") == "spinefm-vit":
        return "spinefm"
    if config and config.get("model_type") in ("dinov3_vit", "dinov2", "dinov2_with_registers"):
        return "transformers"
    if config and config.get("model_type"):
        raise CheckpointError(f"transformers model_type {config['model_type']!r} is not a ViT we can convert "
                              "(DINOv3ViTModel, Dinov2Model, Dinov2WithRegistersModel)")
    if "cls_token" in state and any(k.startswith("blocks.") for k in state):
        return "timm"
    first = next(iter(state), "(no keys)")
    raise CheckpointError(f"cannot tell the checkpoint's layout (first key {first!r}); expected a transformers "
                          "DINOv2/DINOv3 directory, a timm ViT/Eva state dict or a spinefm encoder.safetensors")


def build_encoder(cfg: ViTConfig, ours: dict[str, torch.Tensor], src: Source) -> VisionTransformer:
    """Our encoder from a mapped state dict: leftover, missing and mis-shaped keys end in one line."""
    leftover = src.leftover()
    if leftover:
        raise CheckpointError(f"{src.origin}: unexpected key {leftover[0]!r} ({len(leftover)} unused; a part of "
                              "the architecture the converter does not support, or another model's weights)")
    try:
        model = VisionTransformer(cfg)
    except (ValueError, RuntimeError) as exc:
        raise first_key_error(src.origin, exc) from None
    expected = model.state_dict()
    for key, tensor in expected.items():
        if key not in ours:
            raise CheckpointError(f"{src.origin}: nothing in the checkpoint for our {key!r}")
        if tuple(ours[key].shape) != tuple(tensor.shape):
            raise CheckpointError(f"{src.origin}: wrong shape for {src.names.get(key, key)!r}: "
                                  f"{tuple(ours[key].shape)} where the config implies {tuple(tensor.shape)}")
    model.load_state_dict({k: v.to(torch.float32) for k, v in ours.items()}, strict=True)
    return model.eval()


def load_spinefm(state: dict[str, torch.Tensor], meta: dict, origin: str) -> tuple[VisionTransformer, dict]:
    try:
        cfg = ViTConfig(**json.loads(meta["vit_config"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{origin}: vit_config metadata is not a ViTConfig ({exc})") from None
    src = Source(state, origin)
    ours = {k: src.take(k) for k in VisionTransformer(cfg).state_dict()}
    for k in ours:
        src.names[k] = k
    kept = {k: v for k, v in meta.items() if k not in ("vit_config", "format")}
    if "converted_from" in kept:  # written by spinefm convert-encoder: keep where the weights came from
        try:
            kept["converted_from"] = json.loads(kept["converted_from"])
            kept.setdefault("architecture", kept["converted_from"].get("architecture"))
        except (ValueError, AttributeError):
            pass
    return build_encoder(cfg, ours, src), {**kept, "format": "spinefm", "source": origin}


def convert_checkpoint(path: str | Path, fmt: str = "auto", **overrides) -> tuple[VisionTransformer, dict]:
    """(our encoder in eval mode, provenance) from a checkpoint file or directory.

    ``overrides`` fill what a bare timm state dict cannot say: ``num_heads``, ``norm_eps``,
    ``rope_theta``.
    """
    if fmt not in FORMATS:
        raise CheckpointError(f"unknown checkpoint format {fmt!r}; choose one of {', '.join(FORMATS)}")
    state, config, meta, weights = read_checkpoint(path)
    origin = str(weights)
    state = strip_prefix(state)
    kind = detect_format(config, meta, state) if fmt == "auto" else fmt
    if kind == "spinefm":
        return load_spinefm(state, meta, origin)
    if kind == "transformers":
        from .transformers_layout import convert_transformers

        if config is None:
            raise CheckpointError(f"{path}: a transformers checkpoint needs its config.json beside the weights")
        model, info = convert_transformers(state, config, origin)
    else:
        from .timm_layout import convert_timm

        model, info = convert_timm(state, config, origin, **overrides)
    return model, {"format": kind, "source": str(Path(path).resolve()), **info}
