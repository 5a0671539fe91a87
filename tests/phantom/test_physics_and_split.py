"""Tissue contrast follows MR physics; splits and the CLI behave as documented."""

import json

from spine_phantom import EVAL_SEED, EVAL_STUDIES, split_of
from spine_phantom.cli import main
from spine_phantom.physics import Protocol, tissue_signals
from spine_phantom.tissues import T

T1 = Protocol("T1", "se", 550, 12)
T2 = Protocol("T2", "se", 4000, 100)
STIR = Protocol("STIR", "stir", 4000, 60, ti=180)
DIXON = Protocol("DIXON", "dixon_water", 4000, 90)
POST = Protocol("OTHER", "t1_post_fs", 550, 12, contrast=True)


def test_contrasts():
    t1, t2, stir, dix, post = (tissue_signals(p) for p in (T1, T2, STIR, DIXON, POST))
    # fat bright on T1, dark on STIR and Dixon water
    assert t1[T.FAT] > t1[T.MUSCLE] and t1[T.FAT] > t1[T.CSF]
    assert stir[T.FAT] < 0.2 * stir[T.CSF] and dix[T.FAT] < 0.2 * dix[T.CSF]
    # fluid bright on T2 and STIR, dark on T1
    assert t2[T.CSF] >= 0.9 * max(t2) and stir[T.CSF] > stir[T.MARROW] and t1[T.CSF] < t1[T.MARROW]
    # edema: dark on T1, bright on STIR compared with normal marrow
    assert t1[T.EDEMA] < t1[T.MARROW] and stir[T.EDEMA] > 2 * stir[T.MARROW]
    # desiccated disc darker than a healthy nucleus on T2
    assert t2[T.NUCLEUS_DRY] < 0.5 * t2[T.NUCLEUS]
    # hemangioma bright on T1 and T2; enhancing tumour bright after gadolinium
    assert t1[T.HEMANGIOMA] > t1[T.MUSCLE] and t2[T.HEMANGIOMA] > t2[T.MARROW]
    assert post[T.TUMOR] > 1.5 * t1[T.TUMOR] * (1 - 0) * 0.9
    assert post[T.FAT] < 0.3 * t1[T.FAT]


def test_split():
    assert all(split_of(EVAL_SEED, i) == "test" for i in range(EVAL_STUDIES))
    splits = [split_of(1, i) for i in range(400)]
    assert 0.7 < splits.count("train") / 400 < 0.9 and splits.count("val") > 10 and splits.count("test") > 10
    assert splits == [split_of(1, i) for i in range(400)]


def test_cli_writes_index(tmp_path):
    rc = main(["generate", "--studies", "2", "--seed", "5", "--out", str(tmp_path), "--size", "96", "--quiet"])
    assert rc == 0
    index = json.loads((tmp_path / "index.json").read_text())
    assert index["synthetic"] is True and len(index["studies"]) == 2
    for e in index["studies"]:
        assert (tmp_path / e["truth"]).is_file()
        assert e["split"] in ("train", "val", "test")
        for s in e["series"]:
            assert len(list((tmp_path / s["dir"]).glob("*.dcm"))) == s["n"]
