"""PNG gallery for docs/phantoms.md: every sequence, and every condition normal vs abnormal.

``python -m spine_phantom.gallery docs/img/phantoms`` (about a minute on one core).
For each condition a study is generated with only that condition switched on,
next to its normal twin (same patient, no findings); the key slice with the
largest box is shown on the two sequences where the finding shows best, with
the ground-truth box in red. So a radiologist can judge realism at a glance.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from spinefm.conditions import CONDITIONS

from .config import PhantomConfig
from .study import generate_study

GALLERY_SEED = 2024


def to_png_array(pixels: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    wc, ww = window
    return np.clip((pixels.astype(np.float32) - (wc - ww / 2)) / ww * 255, 0, 255).astype(np.uint8)


def _label(img: Image.Image, text: str) -> None:
    d = ImageDraw.Draw(img)
    d.rectangle([0, 0, 6 * len(text) + 6, 12], fill=0)
    d.text((3, 1), text, fill=255)


def sequence_sheet(regions: tuple[str, ...], index: int) -> Image.Image:
    cfg = PhantomConfig(regions=regions, normal=True, other_sequence_probability=1.0)
    tiles = []
    for other in ("DIXON", "OTHER"):
        # find an index whose optional series is the one we want to show
        for i in range(index, index + 40):
            st = generate_study(GALLERY_SEED, i, cfg)
            if any(s.sequence == other for s in st.series):
                break
        if not tiles:
            for s in st.series:
                if s.sequence in ("T1", "T2", "STIR") and s.plane == "sagittal":
                    tiles.append((f"sag {s.sequence}: {s.description}", s.pixels[len(s.pixels) // 2], s.window))
        for s in st.series:
            if s.sequence == other:
                tiles.append((f"sag {s.sequence}: {s.description}", s.pixels[len(s.pixels) // 2], s.window))
    ax = [s for s in st.series if s.plane == "axial"][0]
    mid = ax.pixels.shape[0] // 2
    tiles.append((f"axial T2 {ax.levels[mid]}: {ax.description}", ax.pixels[mid], ax.window))
    para = [s for s in st.series if s.sequence == "T1"][0]
    tiles.append(("sag T1 parasagittal (foramina)", para.pixels[len(para.pixels) // 2 + 3], para.window))
    h, w = tiles[0][1].shape
    sheet = Image.new("L", (w * 4, h * ((len(tiles) + 3) // 4)))
    for k, (name, px, win) in enumerate(tiles):
        im = Image.fromarray(to_png_array(px, win))
        _label(im, name)
        sheet.paste(im, ((k % 4) * w, (k // 4) * h))
    return sheet


def _region_for(cond) -> tuple[str, ...]:
    for r in ("lumbar", "cervical", "thoracic"):
        if r in cond.regions:
            return (r,)
    return ("lumbar",)


def condition_sheet(cond, index: int = 0) -> Image.Image | None:
    regions = _region_for(cond)
    if cond.key == "lesion_intramedullary":
        regions = ("cervical",)
    cfg = PhantomConfig(regions=regions, prevalence={c.key: (1.0 if c.key == cond.key else 0.0) for c in CONDITIONS},
                        uncertain_fraction=0.0, severity_weights=(0.0, 0.4, 0.6), include_other_sequence=False)
    for i in range(index, index + 10):
        st = generate_study(GALLERY_SEED, i, cfg)
        fs = [f for f in st.truth["findings"] if f["condition"] == cond.key]
        if fs:
            break
    else:
        return None
    f = fs[0]
    twin = generate_study(GALLERY_SEED, i, PhantomConfig(regions=regions, normal=True, include_other_sequence=False))
    by_uid = {s.series_instance_uid: s for s in st.series}
    twin_by_uid = {s.series_instance_uid: s for s in twin.series}
    # the two sequences to show: registry order first, then whatever shows it
    wanted = [s for s in cond.sequences if s in f["visible_on"]] + [s for s in f["visible_on"] if s not in cond.sequences]
    rows = []
    for seq in wanted[:2]:
        boxes = [b for b in f["boxes"] if by_uid[b["series_instance_uid"]].sequence == seq]
        plane = "axial" if cond.key == "subarticular" else "sagittal"
        sag = [b for b in boxes if by_uid[b["series_instance_uid"]].plane == plane] or boxes
        b = max(sag, key=lambda b: (b["box"][2] - b["box"][0]) * (b["box"][3] - b["box"][1]))
        s = by_uid[b["series_instance_uid"]]
        t = twin_by_uid[b["series_instance_uid"]]
        i0 = b["slice_index"]
        if s.plane == "axial" and t.levels != s.levels:
            t = None
        normal = to_png_array(t.pixels[i0], s.window) if t is not None else np.zeros_like(s.pixels[0], np.uint8)
        abn = Image.fromarray(to_png_array(s.pixels[i0], s.window)).convert("RGB")
        d = ImageDraw.Draw(abn)
        x0, y0, x1, y1 = b["box"]
        d.rectangle([x0 - 1, y0 - 1, x1, y1], outline=(255, 40, 40))
        nim = Image.fromarray(normal).convert("RGB")
        _label(nim, f"normal {s.plane} {seq}")
        _label(abn, f"{cond.key} {f['level']} {f['severity']} ({seq})")
        rows.append((nim, abn))
    w, h = rows[0][0].size
    sheet = Image.new("RGB", (2 * w, h * len(rows)))
    for r, (a, b) in enumerate(rows):
        sheet.paste(a, (0, r * h))
        sheet.paste(b, (w, r * h))
    return sheet


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0] if argv else "docs/img/phantoms")
    out.mkdir(parents=True, exist_ok=True)
    for regions, idx in ((("lumbar",), 0), (("cervical",), 0), (("thoracic",), 0)):
        sequence_sheet(regions, idx).save(out / f"sequences_{regions[0]}.png", optimize=True)
    for cond in CONDITIONS:
        sheet = condition_sheet(cond)
        if sheet is not None:  # a 96-colour palette halves the file size; greys and the red box survive
            sheet.convert("P", palette=Image.ADAPTIVE, colors=96).save(out / f"condition_{cond.key}.png", optimize=True)
        else:
            print(f"no drawing found for {cond.key}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
