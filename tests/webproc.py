"""REAL web processes (gunicorn) for tests, against the test database.

Like tests/workerproc.py for workers: the process gets the test database's
``DATABASE_URL`` and the test's settings, so what one web process writes
(sessions, the shared cache) another one reads::

    with run_web() as web_a, run_web() as web_b:
        requests.get(web_a.url + "/accounts/login/")
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.workerproc import REPO_ROOT, worker_environment


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class WebProcess:
    process: subprocess.Popen
    url: str
    log_path: Path

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


@contextlib.contextmanager
def run_web(*, env: dict[str, str] | None = None, ready_timeout: float = 90.0) -> Iterator[WebProcess]:
    """One gunicorn process with one worker on a free port; stopped at the end of the block."""
    port = free_port()
    log_file = tempfile.NamedTemporaryFile(prefix="mf-web-", suffix=".log", delete=False)  # noqa: SIM115
    command = [sys.executable, "-m", "gunicorn", "marrowfind.wsgi:application", "--bind", f"127.0.0.1:{port}",
               "--workers", "1", "--timeout", "120", "--access-logfile", "-"]
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env=worker_environment({"STATIC_STORAGE": "plain", **(env or {})}),
        stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
    )
    log_file.close()
    web = WebProcess(process=process, url=f"http://127.0.0.1:{port}", log_path=Path(log_file.name))
    failed = False
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {process.returncode}:\n{web.log()[-5000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"gunicorn did not listen on {port} within {ready_timeout:.0f} s")
            time.sleep(0.2)
        yield web
    except BaseException:
        failed = True
        raise
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        if failed:
            sys.stderr.write(f"\n----- log of gunicorn on {web.url} -----\n{web.log()[-10000:]}\n-----\n")
        with contextlib.suppress(OSError):
            web.log_path.unlink()
