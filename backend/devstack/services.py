"""PostgreSQL, Redis and Orthanc on loopback: check, start when absent, stop what we started."""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

PLUGIN_DIR = Path("/usr/share/orthanc/plugins")
ORTHANC_PLUGIN = Path(__file__).resolve().parent.parent / "studies" / "orthanc" / "orthanc_plugin.py"


class ServiceError(RuntimeError):
    pass


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


_handed_out: set[int] = set()


def free_port() -> int:
    """A port free now and not handed out before by this process: the kernel may offer a just-released
    port again, so two calls in a row (Orthanc's HTTP and DICOM ports) could otherwise collide."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def wait_for(check, what: str, timeout: float = 30.0, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise ServiceError(f"{what} did not come up within {timeout:.0f} s")


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=False, capture_output=True, text=True, **kw)


# -- PostgreSQL -------------------------------------------------------------------------------
def ensure_postgres(host: str = "127.0.0.1", port: int = 5432) -> None:
    """Start the Debian cluster if nothing listens (pg_ctlcluster, no systemd)."""
    if port_open(host, port):
        return
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if not versions:
        raise ServiceError("PostgreSQL is not installed (run scripts/setup.sh)")
    _run(["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"])
    wait_for(lambda: port_open(host, port), "PostgreSQL")


def psql_as_superuser(sql: str) -> str:
    """Run SQL as the postgres superuser over the local socket (peer or trust auth)."""
    cmd = ["psql", "-v", "ON_ERROR_STOP=1", "-tAc", sql]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--"] + cmd
    else:
        cmd += ["-U", "postgres"]
    result = _run(cmd)
    if result.returncode != 0:
        raise ServiceError(f"psql failed: {result.stderr.strip()}")
    return result.stdout.strip()


def ensure_database(name: str, user: str, password: str) -> None:
    """Create the login role (may create test databases) and its database, once."""
    if psql_as_superuser(f"SELECT 1 FROM pg_roles WHERE rolname = '{user}'") != "1":
        psql_as_superuser(f"CREATE ROLE {user} LOGIN CREATEDB PASSWORD '{password}'")
    if psql_as_superuser(f"SELECT 1 FROM pg_database WHERE datname = '{name}'") != "1":
        psql_as_superuser(f"CREATE DATABASE {name} OWNER {user}")


# -- Redis ------------------------------------------------------------------------------------
def ensure_redis(host: str = "127.0.0.1", port: int = 6379) -> None:
    if port_open(host, port):
        return
    if not shutil.which("redis-server"):
        raise ServiceError("redis-server is not installed (run scripts/setup.sh)")
    _run(["redis-server", "--daemonize", "yes", "--bind", host, "--port", str(port),
          "--save", "", "--appendonly", "no"])
    wait_for(lambda: port_open(host, port), "Redis")


# -- Orthanc ----------------------------------------------------------------------------------
@dataclass
class OrthancSettings:
    data_dir: Path
    http_port: int = 8042
    dicom_port: int = 4242
    username: str = "spineagent"
    password: str = "spineagent-dev-orthanc"
    # The DICOMweb gateway's own account, confined to GET under /dicom-web/ by our plugin's request filter.
    gateway_username: str = "spineagent-gateway"
    gateway_password: str = "spineagent-dev-gateway"
    aet: str = "SPINEAGENT"
    # Who may C-STORE: "AET@host:port,..." (nobody when empty); see orthanc_plugin.py.
    dicom_modalities: str = ""
    webhook_url: str = "http://127.0.0.1:8000/api/orthanc/stable-study"
    webhook_secret: str = "spineagent-dev-webhook-secret"
    stable_age: int = 3
    announce: bool = True  # load our Python plugin that announces stable studies to the backend
    postgres_index: dict | None = None  # {"Host":..., "Port":..., "Database":..., "Username":..., "Password":...}
    extra: dict = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"


def orthanc_config(s: OrthancSettings) -> dict:
    plugins = [str(PLUGIN_DIR / "libOrthancDicomWeb.so"), str(PLUGIN_DIR / "libOrthancPython.so")]
    config = {
        "Name": "SpineAgent",
        "StorageDirectory": str(s.data_dir / "storage"),
        "IndexDirectory": str(s.data_dir / "index"),
        "HttpPort": s.http_port,
        "DicomPort": s.dicom_port,
        "DicomAet": s.aet,
        # C-STORE only from the modalities our plugin registers, to our AE title, from their own host.
        "DicomAlwaysAllowStore": False,
        "DicomAlwaysAllowEcho": False,
        "DicomCheckCalledAet": True,
        "DicomCheckModalityHost": True,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {s.username: s.password, s.gateway_username: s.gateway_password},
        "HttpCompressionEnabled": False,
        "KeepAlive": True,
        "KeepAliveTimeout": 60,  # our gateway pools connections; Orthanc's default closes them after 1 s
        "TcpNoDelay": True,
        "HttpThreadsCount": 50,
        "StableAge": s.stable_age,
        "OverwriteInstances": False,
        "Plugins": plugins,
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True, "Ssl": False,
                     "StudiesMetadata": "Full", "SeriesMetadata": "Full"},
        "PythonScript": str(ORTHANC_PLUGIN),
    }
    if s.postgres_index:
        plugins.append(str(PLUGIN_DIR / "libOrthancPostgreSQLIndex.so"))
        config["PostgreSQL"] = {"EnableIndex": True, "EnableStorage": False, **s.postgres_index}
    config.update(s.extra)
    return config


class OrthancProcess:
    """Orthanc as our own child process with our own config (the Debian service is not used)."""

    def __init__(self, settings: OrthancSettings):
        self.settings = settings
        self.process: subprocess.Popen | None = None

    def alive(self) -> bool:
        try:
            r = requests.get(self.settings.url + "/system", auth=(self.settings.username, self.settings.password),
                             timeout=1)
            return r.status_code == 200
        except requests.RequestException:
            return False

    def start(self, timeout: float = 60) -> "OrthancProcess":
        if not shutil.which("Orthanc"):
            raise ServiceError("Orthanc is not installed (run scripts/setup.sh)")
        missing = [p for p in orthanc_config(self.settings)["Plugins"] if not os.path.exists(p)]
        if missing:
            raise ServiceError(f"Orthanc plugins missing: {', '.join(missing)} (run scripts/setup.sh)")
        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        config_path = s.data_dir / "orthanc.json"
        config_path.write_text(json.dumps(orthanc_config(s), indent=2))
        env = dict(os.environ, SPINEAGENT_WEBHOOK_URL=s.webhook_url if s.announce else "",
                   SPINEAGENT_WEBHOOK_SECRET=s.webhook_secret, SPINEAGENT_GATEWAY_USER=s.gateway_username,
                   SPINEAGENT_DICOM_MODALITIES=s.dicom_modalities)
        log = open(s.data_dir / "orthanc.log", "ab")
        self.process = subprocess.Popen(["Orthanc", str(config_path)], stdout=log, stderr=subprocess.STDOUT,
                                        env=env, start_new_session=True)
        try:
            wait_for(lambda: self.process.poll() is None and self.alive(), "Orthanc", timeout=timeout)
        except ServiceError:
            self.stop()
            tail = (s.data_dir / "orthanc.log").read_text(errors="replace")[-2000:]
            raise ServiceError(f"Orthanc did not start; log tail:\n{tail}") from None
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def orthanc_plugins_available() -> bool:
    return bool(shutil.which("Orthanc")) and all(
        glob.glob(str(PLUGIN_DIR / name)) for name in ("libOrthancDicomWeb.so", "libOrthancPython.so"))
