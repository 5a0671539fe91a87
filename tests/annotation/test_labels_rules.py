"""Rule labeler on hand-written sentences in real radiology phrasing: exact labels expected.

Each case lists the conditions expected non-zero; every other condition must be 0.
"""

import pytest

from spine_labels import RULES_VERSION, SOURCE_RULES, RuleLabeler, extract_labels
from spinefm.conditions import CONDITION_KEYS

CASES = [
    # normal reports
    ("No significant canal stenosis.", {}),
    ("Unremarkable MRI of the lumbar spine.", {}),
    ("The spinal canal and neural foramina are patent. Normal alignment. Normal cord signal.", {}),
    ("No disc herniation, canal stenosis, or foraminal narrowing at any level.", {}),
    ("Mild degenerative disc disease without significant stenosis at any level.", {}),
    ("There is no evidence of fracture or marrow edema.", {}),
    # the quirks: stenosis alone is canal; site words redirect it
    ("Mild canal stenosis at L4-L5.", {"canal": 1}),
    ("Mild bilateral foraminal stenosis at L5-S1.", {"neuroforaminal": 1}),
    ("Moderate right lateral recess stenosis.", {"subarticular": 1}),
    ("Severe stenosis at L4-5.", {"canal": 1}),
    ("Moderate canal and mild left foraminal stenosis at L4-5 and L5-S1.", {"canal": 1, "neuroforaminal": 1}),
    ("The left neural foramen is moderately narrowed.", {"neuroforaminal": 1}),
    ("Narrowing of the left subarticular recess.", {"subarticular": 1}),
    ("Mild disc space narrowing at L5-S1.", {"disc_height": 1}),
    ("No more than mild canal stenosis at L3-L4.", {"canal": 1}),
    # disc bulge is not herniation
    ("Mild disc bulge without canal stenosis.", {}),
    ("Broad-based disc bulge at L3-L4.", {}),
    ("Disc bulge with a superimposed small central protrusion.", {"herniation": 1}),
    ("Left paracentral disc extrusion at L5-S1 contacting the traversing S1 nerve root.", {"herniation": 1}),
    ("Disc bulge without herniation resulting in mild canal stenosis.", {"canal": 1}),
    # negation scope and termination
    ("No fracture, but there is marrow edema in L1.", {"edema": 1}),
    ("No canal stenosis, mild bilateral foraminal narrowing.", {"neuroforaminal": 1}),
    ("Previously seen marrow edema has resolved.", {}),
    ("Spondylolisthesis is not seen.", {}),
    ("The canal is not narrowed.", {}),
    ("No acute fracture. Chronic mild compression deformity of L1.", {"fracture": 1}),
    ("Negative for cord compression.", {}),
    # uncertainty
    ("Possible small pars defect at L5.", {"par": -1}),
    ("Fracture cannot be excluded at T12.", {"fracture": -1}),
    ("Small T1 hyperintense lesion in L2, likely hemangioma.", {"hemangioma": -1}),
    ("Modic type 1 endplate changes at L4-L5 versus early discitis.", {"edema": -1, "inflammation": -1}),
    ("Findings suspicious for discitis at L2-L3.", {"inflammation": -1}),
    ("Questionable small perineural cyst at S2.", {"cyst": -1}),
    ("Possible small protrusion without canal stenosis.", {"herniation": -1}),
    ("Suggestion of a subtle superior endplate fracture of L2.", {"fracture": -1}),
    ("A subtle endplate fracture of L2, cannot exclude.", {"fracture": -1}),
    ("Small left paracentral protrusion, cannot exclude at L4-L5.", {"herniation": -1}),
    ("Fracture, possible.", {"fracture": -1}),
    ("Findings are not suspicious for fracture.", {}),
    ("No abnormal enhancement to suggest discitis.", {}),
    ("Protrusion which does not compress the cord.", {"herniation": 1}),
    # other conditions
    ("Grade 1 anterolisthesis of L4 on L5 with bilateral pars defects.", {"spondylolisthesis": 1, "par": 1}),
    ("Bilateral L5 spondylolysis with grade 1 spondylolisthesis of L5 on S1.", {"spondylolisthesis": 1, "par": 1}),
    ("Mild thecal sac compression at C5-C6 without abnormal cord signal.", {"compression": 1}),
    ("Small Tarlov cysts at S2. Simple renal cyst.", {"cyst": 1}),
    ("Left L4-L5 facet synovial cyst.", {"synovial": 1}),
    ("Prevertebral soft tissue edema.", {}),
    ("Epidural lipomatosis narrows the thecal sac at L5-S1.", {"lipomatosis": 1, "canal": 1}),
    ("Normal epidural fat.", {}),
    ("Small syrinx from C5 to C7.", {"lesion_intramedullary": 1}),
    ("Intradural extramedullary mass at T8, consistent with meningioma.", {"lesion_extramedullary": 1}),
    ("Typical hemangioma in the T10 vertebral body.", {"hemangioma": 1}),
    ("Mild disc desiccation with loss of disc height at L4-L5 and L5-S1.", {"disc_height": 1}),
    ("Fracture of the left L5 pars interarticularis.", {"par": 1}),
    # clinical history is the question, not a finding
    ("HISTORY: Rule out fracture.\nFINDINGS: Vertebral body heights are maintained.", {}),
]


@pytest.mark.parametrize("text,expected", CASES, ids=[c[0][:50] for c in CASES])
def test_rule_labels_exact(text, expected):
    got = extract_labels(text).as_dict()
    want = {k: expected.get(k, 0) for k in CONDITION_KEYS}
    assert got == want


def _ev(text, cond):
    return extract_labels(text)[cond].evidence


def test_evidence_offsets_point_into_text():
    text = "FINDINGS:\nL4-L5: Disc bulge. Mild canal stenosis. Moderate right foraminal stenosis.\n"
    ls = extract_labels(text)
    for lab in ls:
        for e in lab.evidence:
            assert text[e.start:e.end] == e.text
            assert text[e.sentence_start:e.sentence_start + len(e.sentence)] == e.sentence
    assert ls["canal"].evidence[0].level == ["L4-L5"]  # inherited from the "L4-L5:" header
    assert ls["neuroforaminal"].severity == "moderate"


@pytest.mark.parametrize("text,levels", [
    ("Mild canal stenosis at L4-5 and L5-S1.", ["L4-L5", "L5-S1"]),
    ("Mild canal stenosis at L4/L5.", ["L4-L5"]),
    ("Mild canal stenosis at L4-L5.", ["L4-L5"]),
    ("Mild canal stenosis at T12-L1.", ["T12-L1"]),
    ("Multilevel mild canal stenosis.", ["multilevel"]),
    ("Mild canal stenosis at C5-6, C6-7, and C7-T1.", ["C5-C6", "C6-C7", "C7-T1"]),
])
def test_levels(text, levels):
    assert _ev(text, "canal")[0].level == levels


def test_levels_per_mention_and_severity():
    ev = _ev("Mild canal stenosis at L3-L4 and severe canal stenosis at L4-L5.", "canal")
    assert [(e.level, e.severity) for e in ev] == [(["L3-L4"], "mild"), (["L4-L5"], "severe")]


def test_single_vertebra_and_sequence_names_are_not_levels():
    ev = _ev("T2 hyperintense marrow edema in the L3 vertebral body on STIR.", "edema")
    assert ev[0].level == ["L3"]


def test_severity_and_negated_mentions_kept_as_evidence():
    lab = extract_labels("Mild central canal stenosis at L3-4; no stenosis at L4-5.")["canal"]
    assert lab.value == 1 and lab.severity == "mild"
    assert [(e.value, e.level) for e in lab.evidence] == [(1, ["L3-L4"]), (0, ["L4-L5"])]
    assert lab.evidence[1].cue == "no"
    assert lab.levels == ["L3-L4"]


def test_no_mention_gives_absent_without_evidence_and_provenance():
    ls = RuleLabeler().label("Normal study.")
    assert all(lab.value == 0 and lab.evidence == [] for lab in ls)
    assert ls.source == SOURCE_RULES and ls.labeler_version == RULES_VERSION
    assert all(lab.source == "rules" and lab.labeler_version == "rules-1.0" for lab in ls)


def test_aggregation_positive_wins_then_uncertain():
    assert extract_labels("No fracture at L2. Possible fracture at L3. Fracture at L4.")["fracture"].value == 1
    assert extract_labels("No fracture at L2. Possible fracture at L3.")["fracture"].value == -1


def test_labelset_json_round_trip():
    from spine_labels import LabelSet
    ls = extract_labels("Mild canal stenosis at L4-L5. Possible pars defect.")
    back = LabelSet.from_json(ls.to_json())
    assert back.to_dict() == ls.to_dict()
    assert back.as_dict() == ls.as_dict()


def test_unknown_labeler():
    with pytest.raises(ValueError):
        extract_labels("x", labeler="magic")


FULL_REPORT = """CLINICAL HISTORY: Low back pain. Evaluate for disc herniation.
TECHNIQUE: Sagittal T1, T2, STIR; axial T1 and T2-weighted images.
FINDINGS:
Grade 1 anterolisthesis of L4 on L5. Vertebral body heights are maintained.
T12-L1 through L2-L3: No disc herniation, canal stenosis or foraminal narrowing.
L3-L4: Mild disc bulge. No significant canal stenosis. Mild bilateral foraminal narrowing.
L4-L5: Disc bulge with a left paracentral protrusion results in moderate central canal stenosis and severe left
subarticular recess narrowing, with impingement of the traversing left L5 nerve root.
L5-S1: Disc desiccation with moderate loss of disc height. No stenosis.
IMPRESSION:
1. Moderate canal stenosis at L4-L5.
2. Findings are not suspicious for fracture.
"""


def test_full_report_labels_levels_and_severity():
    ls = extract_labels(FULL_REPORT)
    want = {k: 0 for k in CONDITION_KEYS}
    want.update(canal=1, neuroforaminal=1, subarticular=1, herniation=1, disc_height=1, spondylolisthesis=1)
    assert ls.as_dict() == want
    assert ls["canal"].levels == ["L4-L5"] and ls["canal"].severity == "moderate"
    assert ls["subarticular"].levels == ["L4-L5"]  # not L5 from "the traversing left L5 nerve root"
    assert ls["subarticular"].severity == "severe"
    assert ls["herniation"].evidence[0].value == 0
    assert ls["herniation"].evidence[0].level == ["T12-L1", "L1-L2", "L2-L3"]  # a header range
    assert ls["neuroforaminal"].levels == ["L3-L4"] and ls["neuroforaminal"].severity == "mild"
    assert ls["disc_height"].levels == ["L5-S1"]
    assert ls["fracture"].evidence[0].cue == "not suspicious for"


def test_vertebra_level_ranges_list_vertebrae():
    lab = extract_labels("Prominent epidural fat from T4 to T8, compatible with epidural lipomatosis.")["lipomatosis"]
    assert lab.value == 1 and lab.levels == ["T4", "T5", "T6", "T7", "T8"]
    assert extract_labels("Mild canal stenosis from L2 to L4.")["canal"].levels == ["L2-L3", "L3-L4"]


def test_cord_edema_is_not_marrow_edema():
    ls = extract_labels("T2 hyperintense signal within the cord at C5-C6, which may represent myelomalacia or edema.")
    assert ls["edema"].value == 0 and ls["lesion_intramedullary"].value == 1
