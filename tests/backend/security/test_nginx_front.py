"""docker/nginx/nginx.conf, run for real (Debian's nginx) in front of the live server: the deployment's proxy
must not re-open the gateway with encoded variants, nor serve files outside its folders (issue 17).

The config is the deployment's own file with only its addresses changed (the upstream ``web:8000`` -> the
live server, ``listen 80`` -> a free loopback port, ``/srv`` -> a temporary folder), wrapped in the
``events``/``http`` blocks the nginx image's main config provides.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytestmark = [pytest.mark.security, pytest.mark.services, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[3]
CONF = ROOT / "docker" / "nginx" / "nginx.conf"


@pytest.fixture
def nginx(live_server, tmp_path):
    from backend.devstack.services import free_port, port_open, wait_for

    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        pytest.fail("nginx is required for the deployment's proxy test: run scripts/setup.sh (test tools)")
    srv = tmp_path / "srv"
    for folder in ("static", "viewer", "viewer-ext"):
        (srv / folder).mkdir(parents=True)
    (srv / "static" / "site.css").write_text("body {}")
    (srv / "viewer" / "index.html").write_text("<!doctype html><title>viewer</title>")
    (tmp_path / "secret.txt").write_text("outside the served folders")
    live = urlsplit(live_server.url)
    port = free_port()
    site = (CONF.read_text().replace("server web:8000;", f"server {live.hostname}:{live.port};")
            .replace("listen 80;", f"listen 127.0.0.1:{port};").replace("/srv/", f"{srv}/")
            .replace("root /srv;", f"root {srv};"))
    assert f"{live.hostname}:{live.port}" in site and f"127.0.0.1:{port}" in site
    temp = tmp_path / "nginx-temp"
    temp.mkdir()
    conf = tmp_path / "nginx.conf"
    # Workers read the test's private temporary folder: they run as the test's own user.
    user = "user root;" if os.geteuid() == 0 else ""
    conf.write_text(f"""
{user}
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log warn;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {temp}/body; proxy_temp_path {temp}/proxy; fastcgi_temp_path {temp}/fastcgi;
  uwsgi_temp_path {temp}/uwsgi; scgi_temp_path {temp}/scgi;
  {site}
}}
""")
    process = subprocess.Popen([binary, "-c", str(conf), "-p", str(tmp_path), "-g", "daemon off;"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: process.poll() is None and port_open("127.0.0.1", port), "nginx", timeout=15)
    except Exception:
        process.kill()
        pytest.fail(f"nginx did not start: {process.stderr.read().decode()[-1500:]}")
    yield {"url": f"http://127.0.0.1:{port}", "srv": srv}
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def annotator_token(users):
    from rest_framework.authtoken.models import Token

    return Token.objects.create(user=users["annotator"]).key


def test_nginx_passes_dicomweb_through_and_refuses_every_traversal(nginx, annotator_token, orthanc, client_for,
                                                                   phantom_files, upload, raw_get, traversal_variants,
                                                                   orthanc_markers):
    study = upload(client_for("admin"), phantom_files(seed=1702)).json()["studies"][0]["study_instance_uid"]
    status, body = raw_get(nginx["url"], f"/dicom-web/studies/{study}/series", annotator_token)
    assert status == 200 and study.encode() in body  # the proxy really forwards the gateway
    for target in traversal_variants(study, "1.2.3", "0" * 8, "0" * 8):
        status, body = raw_get(nginx["url"], target, annotator_token)
        assert status in (400, 404), f"{target} answered {status} through nginx"
        leaked = [m for m in orthanc_markers if m in body]
        assert not leaked, f"{target} leaked {leaked} through nginx"


def test_nginx_static_folders_do_not_leak_outside(nginx, annotator_token, raw_get):
    assert raw_get(nginx["url"], "/static/site.css", annotator_token)[0] == 200
    for target in ("/static/../secret.txt", "/static..%2fsecret.txt", "/static/%2e%2e/secret.txt",
                   "/viewer/../secret.txt", "/viewer-ext/..%2f..%2fsecret.txt", "/static/..%5csecret.txt",
                   "/viewer/%2e%2e/%2e%2e/etc/passwd"):
        status, body = raw_get(nginx["url"], target, annotator_token)
        assert b"outside the served folders" not in body and b"root:x:0:0" not in body, target
