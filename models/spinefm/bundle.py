"""Model bundles: a directory with manifest.json and safetensors weights, hash-checked on load.

Layout::

    manifest.json          name, version, conditions, configs, metrics, synthetic_training,
                           encoder_init, training command, files: {name: sha256}
    encoders.safetensors   T1 and T2 ViTs
    clip.safetensors       poolers, projections, text projection, temperature
    synthesizer.safetensors  layer logits (+ gating net) and the synthesizer's series branch
    diagnosis.safetensors  one linear probe per condition (+ thresholds)
    segmentation.safetensors  key-slice + box heads per stream and condition
    level.safetensors      level head (finding -> spinal level); optional: bundles written
                           before it existed load without it and predict no levels
    locator.safetensors    spine locator (discs and their levels on the images, spinefm.vertebrae);
                           optional: bundles without it place levels with the level head only
    index.safetensors / index.json  retrieval bank: case/report embeddings, ids, reports

The text encoder is not in the bundle (it is a pinned package, named in the
manifest); it is only needed for report-to-image queries and for training.
Every listed file is verified against its sha256 before anything is loaded;
any problem raises :class:`BundleError` naming the file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from .model import SpineFM, SpineFMConfig

log = logging.getLogger(__name__)
FORMAT = "spinefm-bundle/1"
MANIFEST = "manifest.json"
PART_FILES = {part: f"{part}.safetensors" for part in ("encoders", "clip", "synthesizer", "diagnosis", "segmentation")}
# Parts whose weights (with the configs) determine the case embedding; see embedding_key().
EMBEDDING_PARTS = ("encoders", "clip", "synthesizer")
# Parts added after the format was fixed: loaded (and hash-checked) when the manifest lists them.
OPTIONAL_PART_FILES = {"level": "level.safetensors", "locator": "locator.safetensors"}
INDEX_WEIGHTS, INDEX_META = "index.safetensors", "index.json"
REQUIRED_KEYS = ("format", "name", "version", "conditions", "configs", "synthetic_training", "files")


class BundleError(RuntimeError):
    """A bundle is missing, corrupt or does not match its manifest; the message names the file."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _same_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict | None) -> bool:
    """Whether ``path`` already holds exactly these tensors (bitwise) and metadata."""
    from safetensors import safe_open

    if not path.is_file():
        return False
    try:
        with safe_open(str(path), framework="pt") as f:
            if set(f.keys()) != set(tensors) or (f.metadata() or {}) != (metadata or {}):
                return False
            for k, v in tensors.items():
                old = f.get_tensor(k)
                if old.dtype != v.dtype or old.shape != v.shape or not torch.equal(
                        old.contiguous().view(-1).view(torch.uint8), v.contiguous().view(-1).view(torch.uint8)):
                    return False
    except Exception:
        return False
    return True


def write_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict | None = None) -> None:
    """save_file, but an existing file with the same tensors and metadata is kept as it is.

    safetensors writes the metadata map in an arbitrary order, so re-serialising
    unchanged weights would change the bytes (and the manifest hash); keeping
    the file lets a stage that changes one part (e.g. ``spinefm levels``)
    rewrite a bundle with only that part's file changed.
    """
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    if not _same_tensors(path, tensors, metadata):
        save_file(tensors, str(path), metadata=metadata)


def save_bundle(model: SpineFM, out: str | Path, name: str = "spinefm", version: str = "0.0.0",
                synthetic_training: bool = True, metrics: dict | None = None, index=None,
                extra: dict[str, Any] | None = None, keep: tuple[str, ...] = ()) -> Path:
    """Write model (and optional retrieval index) as a bundle directory; returns its path.

    Files already in ``out`` with identical tensors are left untouched (see write_tensors);
    ``keep`` names files already in ``out`` (e.g. the retrieval index of the bundle a
    stage started from) to list in the manifest as they are.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for part, state in model.state_dicts().items():
        fname = PART_FILES.get(part) or OPTIONAL_PART_FILES[part]
        write_tensors(out / fname, state, metadata={"part": part, "format": FORMAT})
        files[fname] = sha256_file(out / fname)
    if index is not None:
        write_tensors(out / INDEX_WEIGHTS, {"image": index.image, "text": index.text})
        meta = json.dumps({"case_ids": index.case_ids, "reports": index.reports})
        if not (out / INDEX_META).is_file() or (out / INDEX_META).read_text() != meta:
            (out / INDEX_META).write_text(meta)
        files[INDEX_WEIGHTS] = sha256_file(out / INDEX_WEIGHTS)
        files[INDEX_META] = sha256_file(out / INDEX_META)
    for fname in keep:
        if not (out / fname).is_file():
            raise BundleError(f"{out / fname}: asked to keep it, but it is not there")
        files[fname] = sha256_file(out / fname)
    manifest = {
        "format": FORMAT, "name": name, "version": version,
        "conditions": list(model.cfg.conditions), "configs": model.cfg.to_dict(),
        "metrics": metrics or {}, "synthetic_training": bool(synthetic_training),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "files": files,
    }
    manifest.update(extra or {})
    write_manifest(out, manifest)
    for f in out.iterdir():  # safetensors writes 0600; bundles are read by other service users
        if f.is_file():
            f.chmod(0o644)
    return out


# Manifest keys save_bundle writes itself; the rest (training record, encoder_init, ...) is carried over.
OWN_KEYS = {"format", "name", "version", "conditions", "configs", "metrics", "synthetic_training", "created", "files"}


def resave_bundle(model: SpineFM, init: str | Path, out: str | Path, manifest: dict, *, name: str | None = None,
                  version: str | None = None, metrics: dict | None = None, extra: dict[str, Any] | None = None) -> Path:
    """Write a model changed by a post-training stage (levels, calibrate) as a bundle.

    Starts from the input's files so unchanged parts keep their bytes and hashes; the retrieval
    index and the manifest's other fields are carried over, ``extra`` added to them.
    """
    out = Path(out)
    if out.resolve() != Path(init).resolve():
        shutil.copytree(init, out, dirs_exist_ok=True, ignore=shutil.ignore_patterns("checkpoint.pt", "*.tmp*"))
    carried = {k: v for k, v in manifest.items() if k not in OWN_KEYS}
    carried.update(extra or {})
    return save_bundle(model, out, name=name or manifest["name"], version=version or manifest["version"],
                       synthetic_training=bool(manifest["synthetic_training"]),
                       metrics=manifest.get("metrics") if metrics is None else metrics, extra=carried,
                       keep=tuple(f for f in (INDEX_WEIGHTS, INDEX_META) if f in manifest["files"]))


def write_manifest(path: str | Path, manifest: dict) -> None:
    """The one writer of a bundle's manifest.json (save_bundle, retraining)."""
    (Path(path) / MANIFEST).write_text(json.dumps(manifest, indent=2))


def manifest_sha256(path: str | Path) -> str:
    """sha256 of the manifest's bytes: a bundle version's fingerprint (the registry, lineage records)."""
    try:
        return hashlib.sha256((Path(path) / MANIFEST).read_bytes()).hexdigest()
    except OSError as exc:
        raise BundleError(f"{Path(path) / MANIFEST}: cannot read ({exc})") from None


def embedding_key(manifest: dict) -> str:
    """Fingerprint of what produces a bundle's case embeddings: configs + encoder/CLIP/synthesizer weights.

    Two bundles with the same key embed a study identically (a retrained bundle keeps its base's
    key), so an embedding stored by one serves the other.
    """
    files = manifest.get("files", {})
    parts = {p: files.get(PART_FILES[p], "") for p in EMBEDDING_PARTS}
    canon = json.dumps({"configs": manifest.get("configs", {}), "parts": parts}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()


def read_manifest(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_dir():
        raise BundleError(f"bundle {path} is not a directory")
    mpath = path / MANIFEST
    if not mpath.is_file():
        raise BundleError(f"{mpath}: manifest.json is missing")
    try:
        manifest = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{mpath}: manifest.json is not valid JSON ({exc})") from None
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        raise BundleError(f"{mpath}: manifest.json lacks {', '.join(missing)}")
    if manifest["format"] != FORMAT:
        raise BundleError(f"{mpath}: unsupported bundle format {manifest['format']!r} (expected {FORMAT})")
    return manifest


def verify_files(path: str | Path, manifest: dict) -> None:
    """Every file named in the manifest exists and has the recorded sha256."""
    path = Path(path)
    for fname in PART_FILES.values():
        if fname not in manifest["files"]:
            raise BundleError(f"{path / fname}: not listed in manifest.json")
    for fname, expected in manifest["files"].items():
        fpath = path / fname
        if Path(fname).name != fname:
            raise BundleError(f"{fpath}: file names in a bundle must be plain names")
        if not fpath.is_file():
            raise BundleError(f"{fpath}: listed in manifest.json but missing")
        actual = sha256_file(fpath)
        if actual != expected:
            raise BundleError(f"{fpath}: sha256 mismatch (manifest {expected[:12]}..., file {actual[:12]}...); "
                              "the file is corrupt or belongs to another bundle")


def _load_state(fpath: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(fpath))
    except Exception as exc:
        raise BundleError(f"{fpath}: cannot read safetensors ({exc})") from None


def load_model_dir(path: str | Path, verify: bool = True) -> tuple[SpineFM, dict]:
    """Manifest + weights -> (SpineFM in eval mode, manifest)."""
    path = Path(path)
    manifest = read_manifest(path)
    if verify:
        verify_files(path, manifest)
    try:
        cfg = SpineFMConfig.from_dict(manifest["configs"])
        model = SpineFM(cfg)
    except Exception as exc:
        raise BundleError(f"{path / MANIFEST}: configs do not describe a model ({exc})") from None
    if list(cfg.conditions) != list(manifest["conditions"]):
        raise BundleError(f"{path / MANIFEST}: 'conditions' disagrees with configs.conditions")
    parts = model.parts()
    optional = {p: f for p, f in OPTIONAL_PART_FILES.items() if f in manifest["files"]}
    for part, fname in {**PART_FILES, **optional}.items():
        state = _load_state(path / fname)
        try:
            parts[part].load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise BundleError(f"{path / fname}: weights do not match the manifest's configs ({first})") from None
    return model.eval(), manifest


def load_index(path: str | Path, manifest: dict):
    from .retrieval import EmbeddingIndex

    path = Path(path)
    if INDEX_WEIGHTS not in manifest["files"]:
        return None
    state = _load_state(path / INDEX_WEIGHTS)
    try:
        meta = json.loads((path / INDEX_META).read_text())
        return EmbeddingIndex(state["image"], state["text"], meta["case_ids"], meta["reports"])
    except (KeyError, ValueError, OSError) as exc:
        raise BundleError(f"{path / INDEX_META}: retrieval index is inconsistent ({exc})") from None


class Bundle:
    """A loaded bundle: ``analyze(study)`` is the one entry point the backend calls."""

    def __init__(self, path: Path, model: SpineFM, manifest: dict, index=None):
        self.path, self.model, self.manifest, self.index = Path(path), model, manifest, index
        self._own_index = index
        # where similar cases come from: the bundle's training cases, or a site's bank (spinefm.site_index)
        self.index_source = "bundle" if index is not None else ""
        self.name, self.version = manifest["name"], manifest["version"]
        self.synthetic_training = bool(manifest["synthetic_training"])
        self._drafter = None
        self._site_drafter: dict | None = None
        self._text_encoder = None

    @property
    def conditions(self) -> list[str]:
        return list(self.manifest["conditions"])

    def configure_drafter(self, site: dict | None) -> None:
        """The site's drafter settings (backend/settings.py SPINEAGENT_DRAFTER*); they win over the
        manifest's ``report`` section when they name a backend. Takes effect at the next drafter()."""
        self._site_drafter, self._drafter = site, None

    def drafter(self):
        """spinefm.report's drafter (spinefm.report.load_drafter), loaded once: the configured one with the
        template behind it."""
        if self._drafter is None:
            from .report import load_drafter

            self._drafter = load_drafter(self._site_drafter, self.manifest.get("report"), self.path)
            (log.info if self._drafter.primary is not None else log.error)("%s: %s", self.name, self._drafter.status)
        return self._drafter

    def text_encoder(self):
        if self._text_encoder is None:
            from .text import TextEncoder

            self._text_encoder = TextEncoder(self.model.cfg.text)
        return self._text_encoder

    def analyze(self, study, **kwargs):
        from .analyze import analyze

        return analyze(self, study, **kwargs)

    def use_site_index(self, index, source: str) -> None:
        """Serve similar cases from a site's bank (``spinefm.site_index``); ``None`` goes back to the
        bundle's own training cases. ``source`` says which bank, for the result and the panel."""
        if index is None:
            self.index, self.index_source = self._own_index, "bundle" if self._own_index is not None else ""
        else:
            self.index, self.index_source = index, source

    def search_reports(self, text: str, k: int = 5):
        """Report-to-image retrieval over the stored cases (loads the text encoder)."""
        if self.index is None:
            return []
        with torch.no_grad():
            q = self.model.encode_text(self.text_encoder()([text]))[0]
        return self.index.report_to_image(q, k)


def load_bundle(path: str | Path, verify: bool = True) -> Bundle:
    """Load and hash-check a bundle directory. Raises BundleError naming the offending file."""
    model, manifest = load_model_dir(path, verify=verify)
    return Bundle(Path(path), model, manifest, load_index(path, manifest))
