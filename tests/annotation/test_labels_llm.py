"""LLM labeler against a fake OpenAI-compatible server on 127.0.0.1 (http.server in a thread).

The server replays a script of replies so every failure mode is exercised:
non-JSON, missing keys, bad values, invented evidence, HTTP 500, timeouts.
"""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from spine_labels import LLMLabeler, extract_labels
from spine_labels.llm import build_messages, locate, parse_reply, SchemaError
from spinefm.conditions import CONDITION_KEYS

REPORT = ("FINDINGS: Mild canal stenosis at L4-L5. No fracture. Possible pars defect at L5.\n"
          "IMPRESSION: Mild canal stenosis at L4-L5.")


def good_labels(**override):
    labels = {k: {"value": 0, "evidence": [], "severity": None} for k in CONDITION_KEYS}
    labels["canal"] = {"value": 1, "evidence": ["Mild canal stenosis at L4-L5"], "severity": "mild"}
    labels["par"] = {"value": -1, "evidence": ["possible pars defect at L5."], "severity": None}
    labels["fracture"] = {"value": 0, "evidence": ["No fracture"], "severity": None}
    labels.update(override)
    return {"labels": labels}


def completion(content):
    return 200, json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]})


class FakeServer:
    def __init__(self):
        self.script = []
        self.requests = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                step = outer.script.pop(0) if outer.script else (500, "script exhausted")
                if step[0] == "sleep":
                    time.sleep(step[1])
                    step = completion(json.dumps(good_labels()))
                status, payload = step
                data = payload.encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = FakeServer()
    yield s
    s.close()


def labeler(server, **kw):
    kw.setdefault("max_retries", 2)
    kw.setdefault("timeout", 2.0)
    return LLMLabeler(server.url, "fake-70b", retry_backoff=0, **kw)


def test_valid_reply_is_used_with_provenance_and_offsets(server):
    server.script = [completion(json.dumps(good_labels()))]
    ls = labeler(server, api_key="sk-test").label(REPORT)
    req = server.requests[0]
    assert req["path"] == "/v1/chat/completions"
    assert req["body"]["model"] == "fake-70b" and req["body"]["messages"][0]["role"] == "system"
    assert req["auth"] == "Bearer sk-test"
    assert ls.as_dict()["canal"] == 1 and ls.as_dict()["par"] == -1 and ls.as_dict()["fracture"] == 0
    assert ls.source == "llm" and ls.labeler_version == "llm:fake-70b:p1"
    canal = ls["canal"]
    assert canal.source == "llm" and canal.labeler_version == "llm:fake-70b:p1"
    e = canal.evidence[0]
    assert REPORT[e.start:e.end] == "Mild canal stenosis at L4-L5" and e.level == ["L4-L5"] and e.severity == "mild"
    assert ls["par"].evidence[0].text == "Possible pars defect at L5."  # case-insensitive match, report's own casing
    assert ls.meta["attempts"] == 1 and ls.meta["errors"] == []


def test_code_fenced_json_is_accepted(server):
    server.script = [completion("```json\n" + json.dumps(good_labels()) + "\n```")]
    assert labeler(server).label(REPORT).source == "llm"


def test_malformed_then_valid_retries(server):
    bad_missing = good_labels()
    del bad_missing["labels"]["edema"]
    bad_value = good_labels(canal={"value": 2, "evidence": [], "severity": None})
    server.script = [completion("Sure! Here are the labels: canal=1"), completion(json.dumps(bad_missing)),
                     completion(json.dumps(bad_value))]
    ls = labeler(server, max_retries=3).label(REPORT)
    server.script = []
    assert ls.source == "llm-fallback-rules"  # 4th attempt hits "script exhausted" 500
    assert len(server.requests) == 4
    errs = " | ".join(ls.meta["errors"])
    assert "not JSON" in errs and "missing condition keys: edema" in errs and "canal: value 2" in errs
    # the retry tells the model what was wrong
    assert "invalid" in server.requests[1]["body"]["messages"][-1]["content"]


def test_recovers_after_bad_replies(server):
    server.script = [completion("not json"), (500, "boom"), completion(json.dumps(good_labels()))]
    ls = labeler(server, max_retries=2).label(REPORT)
    assert ls.source == "llm" and ls.meta["attempts"] == 3


@pytest.mark.parametrize("bad", [
    "{not json",
    json.dumps({"canal": 1}),
    json.dumps(good_labels(canal={"value": "1", "evidence": [], "severity": None})),
    json.dumps(good_labels(canal={"value": True, "evidence": [], "severity": None})),
    json.dumps(good_labels(canal={"value": 1, "evidence": [3], "severity": None})),
])
def test_all_malformed_falls_back_to_rules(server, bad):
    server.script = [completion(bad)] * 3
    ls = labeler(server, max_retries=2).label(REPORT)
    assert len(server.requests) == 3
    assert ls.source == "llm-fallback-rules" and ls.meta["fallback"] == "all"
    assert ls.as_dict() == extract_labels(REPORT).as_dict()
    assert all(lab.source == "llm-fallback-rules" and lab.labeler_version == "rules-1.0" for lab in ls)
    assert all("llm_failed" in lab.flags for lab in ls)


def test_http_500_and_timeout_then_fallback(server):
    server.script = [(500, "err"), ("sleep", 4.0), (503, "err")]
    ls = labeler(server, max_retries=2, timeout=1.5).label(REPORT)
    assert ls.source == "llm-fallback-rules"
    errs = ls.meta["errors"]
    assert errs[0].endswith("HTTP 500") and "timeout" in errs[1] and errs[2].endswith("HTTP 503")


def test_client_error_is_not_retried(server):
    server.script = [(401, '{"error": "bad key"}')]
    ls = labeler(server, max_retries=3).label(REPORT)
    assert len(server.requests) == 1 and ls.source == "llm-fallback-rules"


def test_invented_evidence_is_retried_then_downgraded_to_rules(server):
    invented = good_labels(fracture={"value": 1, "evidence": ["Acute burst fracture of L1"], "severity": "severe"},
                           hemangioma={"value": 0, "evidence": ["no hemangioma seen"], "severity": None})
    server.script = [completion(json.dumps(invented))] * 3
    ls = labeler(server).label(REPORT)
    assert len(server.requests) == 3
    assert "do not occur verbatim" in server.requests[1]["body"]["messages"][-1]["content"]
    assert ls.source == "llm"
    frac = ls["fracture"]  # unsupported positive: the rules' value (0), marked as fallback
    assert frac.value == 0 and frac.source == "llm-fallback-rules"
    assert "invented_evidence" in frac.flags and "llm_said:1" in frac.flags
    hem = ls["hemangioma"]  # absent with an invented quote: kept absent, quote dropped, flagged
    assert hem.value == 0 and hem.evidence == [] and "invented_evidence" in hem.flags
    assert ls["canal"].source == "llm" and ls.meta["fallback"] == ["fracture"]


def test_positive_without_evidence_is_not_trusted(server):
    server.script = [completion(json.dumps(good_labels(hemangioma={"value": 1, "evidence": [], "severity": None})))] * 3
    ls = labeler(server).label(REPORT)
    assert ls["hemangioma"].value == 0 and ls["hemangioma"].source == "llm-fallback-rules"


def test_disagreement_with_rules_is_flagged(server):
    server.script = [completion(json.dumps(good_labels(par={"value": 1, "evidence": ["pars defect at L5"], "severity": None})))]
    ls = labeler(server).label(REPORT)
    assert ls["par"].value == 1 and "rules_disagree:-1" in ls["par"].flags


def test_unreachable_endpoint_falls_back(server):
    url = server.url
    server.close()
    ls = LLMLabeler(url, "m", timeout=0.5, max_retries=1, retry_backoff=0).label(REPORT)
    assert ls.source == "llm-fallback-rules" and len(ls.meta["errors"]) == 2
    server.httpd = type("X", (), {"shutdown": lambda s: None, "server_close": lambda s: None})()


def test_extract_labels_llm_entry_point(server):
    server.script = [completion(json.dumps(good_labels()))]
    ls = extract_labels(REPORT, labeler="llm", base_url=server.url, model="fake-70b", max_retries=0)
    assert ls.as_dict()["canal"] == 1


def test_prompt_lists_every_condition():
    system = build_messages("x")[0]["content"]
    assert all(f'"{k}"' in system for k in CONDITION_KEYS)


def test_parse_reply_and_locate_units():
    with pytest.raises(SchemaError):
        parse_reply("", CONDITION_KEYS)
    assert parse_reply(json.dumps(good_labels()), CONDITION_KEYS)["canal"]["value"] == 1
    assert locate("mild  canal\nstenosis", "Mild canal stenosis at L4.") == (0, 19)
    assert locate("severe stenosis", "Mild canal stenosis at L4.") is None
