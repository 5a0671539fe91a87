"""openai backend against a local OpenAI-compatible server (http.server in a thread)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from spinefm.report import make_drafter
from spinefm.report.backends.openai import DrafterError


class Handler(BaseHTTPRequestHandler):
    seen: list = []
    mode = {"value": "ok"}

    def log_message(self, *a):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Handler.seen.append((self.path, self.headers.get("Authorization"), body))
        mode = Handler.mode["value"]
        if mode == "error":
            self.send_response(400)
            self.end_headers()
            self.wfile.write(b'{"error": "model not found"}')
            return
        if mode == "slow":
            import time
            time.sleep(1.0)
        reply = {"choices": [{"message": {"role": "assistant", "content": "FINDINGS: echo " + body["model"]}}]}
        if mode == "bad":
            reply = {"nope": 1}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    Handler.seen.clear()
    Handler.mode["value"] = "ok"
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()
    srv.server_close()


def test_openai_roundtrip(server, result):
    d = make_drafter({"backend": "openai", "base_url": server + "/", "model": "llama-8b", "api_key": "k"})
    assert d.name == "openai" and "llama-8b" in d.version
    assert d.draft(result) == "FINDINGS: echo llama-8b"
    path, auth, body = Handler.seen[0]
    assert path == "/v1/chat/completions" and auth == "Bearer k"
    assert body["temperature"] == 0.0 and [m["role"] for m in body["messages"]] == ["system", "user"]
    user = body["messages"][1]["content"]
    assert "<image>" not in user and "Spinal canal stenosis: 0.86 present, L4-L5" in user


def test_openai_errors(server, result):
    d = make_drafter({"backend": "openai", "base_url": server, "model": "m", "retries": 0})
    Handler.mode["value"] = "error"
    with pytest.raises(DrafterError, match="HTTP 400.*model not found"):
        d.draft(result)
    Handler.mode["value"] = "bad"
    with pytest.raises(DrafterError, match="malformed reply"):
        d.draft(result)
    Handler.mode["value"] = "slow"
    slow = make_drafter({"backend": "openai", "base_url": server, "model": "m", "timeout_s": 0.2, "retries": 0})
    with pytest.raises(DrafterError, match="within 0.2 s"):
        slow.draft(result)
    dead = make_drafter({"backend": "openai", "base_url": "http://127.0.0.1:9", "model": "m", "retries": 0})
    with pytest.raises(DrafterError, match="cannot connect"):
        dead.draft(result)
    with pytest.raises(ValueError, match="base_url"):
        make_drafter({"backend": "openai"})
