"""Projector shapes and prompt assembly (one function for training and serving)."""

import torch

from spinefm.report.data import Example, build_vqa, toy_studies
from spinefm.report.projector import AttentionPoolProjector
from spinefm.report.prompt import IMAGE_PLACEHOLDER, SYSTEM_PROMPT, build_messages, encode
from spinefm.report.tokenizer import train_tokenizer


def test_projector_shapes_and_masking():
    p = AttentionPoolProjector(in_dim=32, lm_dim=48, n_queries=6, n_heads=4, max_slices=10)
    studies = [{"t1": torch.randn(3, 32), "t2": torch.randn(5, 32)},
               {"t2": torch.randn(20, 32)},   # capped to max_slices
               None]                           # no slices: null key keeps it defined
    out = p(studies)
    assert out.shape == (3, 6, 48) and torch.isfinite(out).all()
    x, pad = p.pack(studies)
    assert x.shape == (3, 11, 32) and (~pad).sum(1).tolist() == [9, 11, 1]
    # padding does not change a study's tokens
    alone = p([studies[0]])
    assert torch.allclose(alone[0], out[0], atol=1e-5)
    try:
        p([{"t1": torch.randn(3, 31)}])
    except ValueError as e:
        assert "[n_slices, 32]" in str(e)
    else:
        raise AssertionError("wrong width accepted")


def test_prompt_contents(result):
    msgs = build_messages(result)
    assert msgs[0] == {"role": "system", "content": SYSTEM_PROMPT}
    sys = SYSTEM_PROMPT.lower()
    assert "spine mri only" in sys and "never invent sequences, planes" in sys and "prior comparisons" in sys
    user = msgs[1]["content"]
    assert user.startswith(f"Images: {IMAGE_PLACEHOLDER}")
    assert "Spinal canal stenosis: 0.86 present, L4-L5, key slice 8 T2 sagittal, box 10,20,40,50" in user
    assert "Disc herniation: 0.55 possible, L4-L5" in user
    findings = user.split("Conditions (")[1].split("Not detected")[0]
    assert "Other cyst" not in findings                    # far below threshold: not listed as a finding
    # ... and not turned into a normal statement either: the result does not say it can be ruled out
    assert "Not detected, but the model cannot rule them out (do not call them normal): Other cyst" in user
    assert "Ruled out" not in user
    result.conditions[4].rule_out = True  # the cyst, ruled out at the operating point
    assert "Ruled out at the model's held-out operating point: Other cyst." in build_messages(result)[1]["content"]
    assert "score 0.91" in user and "Disc herniation at L4-L5." in user  # top-1 similar case only
    assert "other" not in user.split("score 0.91")[1].split("Template:")[0].lower().split()
    assert "Template: TECHNIQUE" in user and user.rstrip().endswith("Write the report for this study.")
    direct = build_messages(result, agents=False)[1]["content"]   # LLaVA-direct baseline
    assert IMAGE_PLACEHOLDER in direct and "Conditions" not in direct
    text_only = build_messages(result, image=False)[1]["content"]  # openai backend
    assert IMAGE_PLACEHOLDER not in text_only and "Conditions" in text_only


def test_training_and_serving_share_assembly():
    studies = toy_studies(6, seed=3, in_dim=16)
    ex = build_vqa(studies, tasks=("report", "short", "long", "choice"))
    tok = train_tokenizer([m["content"] for e in ex for m in e.messages] + [e.answer for e in ex], 400)
    rep = [e for e in ex if e.task == "report"][0]
    study = next(s for s in studies if s.study_id == rep.study_id)
    assert rep.messages == build_messages(study.result)            # serving prompt == training prompt
    head, tail, ans = encode(rep.messages, tok, rep.answer)
    serve_head, serve_tail, none = encode(build_messages(study.result), tok)
    assert (head, tail) == (serve_head, serve_tail) and none == []
    assert tok.decode(ans, skip_special_tokens=True).strip() == rep.answer
    assert tok.convert_ids_to_tokens(head[:1]) == ["<|bos|>"]
    assert {e.task for e in ex} <= {"report", "short", "long", "choice"}
    assert all(isinstance(e, Example) and e.answer for e in ex)


def test_similar_case_standin_uses_predictions_not_truth():
    from spinefm.report.data import Study, attach_similar, simulate_result
    from spinefm.results import ConditionPrediction

    def study(sid, positives, report):
        truth = {"labels": {}, "findings": [{"condition": c, "level": "L4-L5", "label": 1} for c in positives],
                 "report": {"text": report}}
        return Study(sid, truth, simulate_result(truth, 0))

    pool = [study("a", ["canal"], "A"), study("b", ["fracture"], "B")]
    q = study("q", ["canal"], "Q")                       # truth says canal ...
    q.result.conditions = [ConditionPrediction("fracture", 0.9, True, "L1")]  # ... agent says fracture
    attach_similar([q], pool)
    assert q.result.similar_cases[0].case_id == "b"
