"""The deployment's nginx (docker/nginx/nginx.conf) run on loopback, for the tests and benchmarks that must go
through the real front: its own file with only its addresses changed (the upstreams ``web:8000`` and
``orthanc:8042``, ``listen 80``, ``/srv``, the gateway account's header file written by the image's own
start-up script), wrapped in the ``events``/``http`` blocks the nginx image's main config provides."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

from .services import ServiceError, free_port, port_open, wait_for

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "docker" / "nginx" / "nginx.conf"
AUTH_SCRIPT = ROOT / "docker" / "nginx" / "orthanc-gateway-auth.sh"


def nginx_binary() -> str | None:
    found = shutil.which("nginx") or "/usr/sbin/nginx"
    return found if Path(found).exists() else None


class NginxFront:
    """nginx with the deployment's site config in front of a web server and an Orthanc on loopback."""

    def __init__(self, work_dir: Path, web_url: str, orthanc_port: int, gateway_user: str, gateway_password: str,
                 workers: int | str = "auto"):
        self.work_dir, self.web_url, self.orthanc_port = Path(work_dir), web_url, orthanc_port
        self.gateway = (gateway_user, gateway_password)
        self.workers = workers
        self.srv = self.work_dir / "srv"
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def site(self) -> str:
        web = urlsplit(self.web_url)
        auth_conf = self.work_dir / "orthanc-gateway-auth.conf"
        env = dict(os.environ, ORTHANC_GATEWAY_USERNAME=self.gateway[0], ORTHANC_GATEWAY_PASSWORD=self.gateway[1])
        subprocess.run(["sh", "-c", AUTH_SCRIPT.read_text().replace("/etc/nginx/spineagent", str(self.work_dir))],
                       env=env, check=True)
        site = (CONF.read_text().replace("server web:8000;", f"server {web.hostname}:{web.port};")
                .replace("server orthanc:8042;", f"server 127.0.0.1:{self.orthanc_port};")
                .replace("listen 80;", f"listen 127.0.0.1:{self.port};").replace("/srv/", f"{self.srv}/")
                .replace("root /srv;", f"root {self.srv};")
                .replace("/etc/nginx/spineagent/orthanc-gateway-auth.conf", str(auth_conf)))
        missing = [m for m in (f"{web.hostname}:{web.port}", f"127.0.0.1:{self.orthanc_port}", str(auth_conf))
                   if m not in site]
        if missing:
            raise ServiceError(f"docker/nginx/nginx.conf changed: could not point it at {missing}")
        return site

    def start(self) -> "NginxFront":
        binary = nginx_binary()
        if binary is None:
            raise ServiceError("nginx is not installed (scripts/setup.sh installs it with the test tools)")
        for folder in ("static", "viewer", "viewer-ext"):
            (self.srv / folder).mkdir(parents=True, exist_ok=True)
        temp = self.work_dir / "nginx-temp"
        temp.mkdir(parents=True, exist_ok=True)
        user = "user root;" if os.geteuid() == 0 else ""  # workers read our private folder as our own user
        conf = self.work_dir / "nginx.conf"
        conf.write_text(f"""
{user}
worker_processes {self.workers};
pid {self.work_dir}/nginx.pid;
error_log {self.work_dir}/error.log warn;
events {{ worker_connections 512; }}
http {{
  access_log off;
  client_body_temp_path {temp}/body; proxy_temp_path {temp}/proxy; fastcgi_temp_path {temp}/fastcgi;
  uwsgi_temp_path {temp}/uwsgi; scgi_temp_path {temp}/scgi;
  {self.site()}
}}
""")
        self.process = subprocess.Popen([binary, "-c", str(conf), "-p", str(self.work_dir), "-g", "daemon off;"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_for(lambda: self.process.poll() is None and port_open("127.0.0.1", self.port), "nginx", timeout=15)
        except ServiceError:
            self.process.kill()
            raise ServiceError(f"nginx did not start: {self.process.stderr.read().decode()[-1500:]}") from None
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
