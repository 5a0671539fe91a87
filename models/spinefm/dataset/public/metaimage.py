"""MetaImage (.mha / .mhd) volumes without SimpleITK: the header, raw or zlib-compressed voxels.

SPIDER ships its images and masks as ``.mha`` (header and voxels in one file). The format is
ITK's MetaIO: ``Key = Value`` lines ending with ``ElementDataFile`` (``LOCAL`` = the voxels
follow the header; a file name = a separate ``.raw``/``.zraw``). Voxels are stored x fastest,
so the array here is ``[z, y, x]`` (as SimpleITK's GetArrayFromImage). ``TransformMatrix``
holds the direction of each index axis, three numbers per axis (ITK's MetaImageIO reads
triple ``i`` as the direction of axis ``i``); physical coordinates are LPS, as DICOM's.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

TYPES = {"MET_UCHAR": np.uint8, "MET_CHAR": np.int8, "MET_USHORT": np.uint16, "MET_SHORT": np.int16,
         "MET_UINT": np.uint32, "MET_INT": np.int32, "MET_ULONG": np.uint64, "MET_LONG": np.int64,
         "MET_ULONG_LONG": np.uint64, "MET_LONG_LONG": np.int64, "MET_FLOAT": np.float32, "MET_DOUBLE": np.float64}
NAMES = {np.dtype(v): k for k, v in reversed(list(TYPES.items()))}


class MetaImageError(ValueError):
    """A file that is not a MetaImage volume this reader understands (the message says what)."""


@dataclass
class Volume:
    array: np.ndarray                    # [z, y, x]
    spacing: tuple[float, float, float]  # per index axis (x, y, z), mm
    origin: tuple[float, float, float]   # LPS position of voxel (0, 0, 0), mm
    direction: np.ndarray                # 3x3: row i = direction of index axis i (x, y, z) in LPS
    header: dict = field(default_factory=dict)


def _floats(value: str, n: int, what: str, path) -> list[float]:
    try:
        out = [float(v) for v in value.split()]
    except ValueError:
        raise MetaImageError(f"{path}: {what} {value!r} is not numeric") from None
    if len(out) != n:
        raise MetaImageError(f"{path}: {what} has {len(out)} values, expected {n}")
    return out


def _true(value: str) -> bool:
    return value.strip().lower() in ("true", "1", "yes")


def read_header(data: bytes, path="") -> tuple[dict, int]:
    """(header fields, offset of the voxels) of a MetaImage file's bytes."""
    header, pos = {}, 0
    while True:
        end = data.find(b"\n", pos)
        if end < 0:
            raise MetaImageError(f"{path}: no ElementDataFile line (not a MetaImage header)")
        line = data[pos:end].decode("latin-1").strip()
        pos = end + 1
        if not line:
            continue
        if "=" not in line:
            raise MetaImageError(f"{path}: header line {line[:60]!r} is not 'Key = Value'")
        key, value = (s.strip() for s in line.split("=", 1))
        header[key] = value
        if key == "ElementDataFile":
            return header, pos
        if pos > 1 << 16:
            raise MetaImageError(f"{path}: header longer than 64 KiB (not a MetaImage file)")


def read(path: str | Path) -> Volume:
    """A 3-D scalar MetaImage volume (LOCAL or a separate data file; raw or zlib-compressed)."""
    path = Path(path)
    data = path.read_bytes()
    h, offset = read_header(data, path)
    if h.get("ObjectType", "Image") != "Image":
        raise MetaImageError(f"{path}: ObjectType {h['ObjectType']!r} is not Image")
    ndims = int(h.get("NDims", "0") or 0)
    if ndims != 3:
        raise MetaImageError(f"{path}: NDims {ndims}; a volume of sagittal slices has 3")
    if int(h.get("ElementNumberOfChannels", "1")) != 1:
        raise MetaImageError(f"{path}: {h['ElementNumberOfChannels']} channels; expected a scalar image")
    dims = [int(v) for v in _floats(h.get("DimSize", ""), 3, "DimSize", path)]
    etype = h.get("ElementType", "")
    if etype not in TYPES:
        raise MetaImageError(f"{path}: ElementType {etype!r} is not one of {', '.join(TYPES)}")
    spacing = _floats(h.get("ElementSpacing") or h.get("ElementSize") or "1 1 1", 3, "ElementSpacing", path)
    origin = _floats(h.get("Offset") or h.get("Origin") or h.get("Position") or "0 0 0", 3, "Offset", path)
    matrix = _floats(h.get("TransformMatrix") or h.get("Rotation") or h.get("Orientation") or "1 0 0 0 1 0 0 0 1",
                     9, "TransformMatrix", path)
    big = _true(h.get("ElementByteOrderMSB", h.get("BinaryDataByteOrderMSB", "False")))
    source = h["ElementDataFile"]
    if source.upper() == "LOCAL":
        raw = data[offset:]
    else:
        other = path.parent / source
        if not other.is_file():
            raise MetaImageError(f"{path}: its data file {source!r} is missing")
        raw = other.read_bytes()
    dtype = np.dtype(TYPES[etype]).newbyteorder(">" if big else "<")
    need = dims[0] * dims[1] * dims[2] * dtype.itemsize
    if _true(h.get("CompressedData", "False")):
        size = int(h.get("CompressedDataSize", "0") or 0)
        try:
            raw = zlib.decompress(raw[:size] if size else raw)
        except zlib.error as exc:
            raise MetaImageError(f"{path}: compressed voxels do not inflate ({exc})") from None
    if len(raw) < need:
        raise MetaImageError(f"{path}: {len(raw)} bytes of voxels, DimSize {dims} x {dtype.itemsize} needs {need} "
                             "(truncated file?)")
    array = np.frombuffer(raw[:need], dtype=dtype).reshape(dims[2], dims[1], dims[0]).astype(dtype.newbyteorder("="))
    direction = np.array(matrix, dtype=float).reshape(3, 3)
    return Volume(array, tuple(spacing), tuple(origin), direction, h)


def write(path: str | Path, array: np.ndarray, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0),
          direction=None, compress: bool = True, extra: dict | None = None) -> Path:
    """Write ``array[z, y, x]`` as one .mha file (as ITK writes it); used by fixtures and tools."""
    array = np.ascontiguousarray(array)
    if array.ndim != 3:
        raise ValueError("write() takes a 3-D array [z, y, x]")
    if array.dtype not in NAMES:
        raise ValueError(f"dtype {array.dtype} has no MetaImage ElementType")
    direction = np.eye(3) if direction is None else np.asarray(direction, dtype=float).reshape(3, 3)
    body = array.astype(array.dtype.newbyteorder("<")).tobytes()
    lines = {"ObjectType": "Image", "NDims": "3", "BinaryData": "True", "BinaryDataByteOrderMSB": "False",
             "CompressedData": "True" if compress else "False"}
    if compress:
        body = zlib.compress(body)
        lines["CompressedDataSize"] = str(len(body))
    lines.update({"TransformMatrix": " ".join(f"{v:g}" for v in direction.ravel()),
                  "Offset": " ".join(f"{v:g}" for v in origin), "CenterOfRotation": "0 0 0",
                  "AnatomicalOrientation": "RAI", "ElementSpacing": " ".join(f"{v:g}" for v in spacing),
                  "DimSize": " ".join(str(v) for v in array.shape[::-1])})
    lines.update(extra or {})
    lines.update({"ElementType": NAMES[array.dtype], "ElementDataFile": "LOCAL"})
    head = "".join(f"{k} = {v}\n" for k, v in lines.items()).encode("latin-1")
    path = Path(path)
    path.write_bytes(head + body)
    return path
