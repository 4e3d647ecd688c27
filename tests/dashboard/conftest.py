"""Fixtures for the dashboard tests: a real server (in a thread of this process), a real headless Chromium,
and real `hil train` processes writing to the store the page watches."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hil.store import Store
from tests.conftest import REPO

CHROMIUM = os.environ.get("HIL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
QUICK = str(REPO / "protocols" / "configs" / "quickstart.yaml")
# quickstart shrunk to a few seconds: 1568-16-10 on 200 images, batch 4
TINY = ["--set", "data.train_subset=200", "--set", "data.test_subset=40", "--set", "network.hidden=[16]",
        "--set", "train.batch_size=4", "--set", "eval.batch_size=40", "--quiet"]


def _have_playwright() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True


needs_browser = pytest.mark.skipif(
    not (Path(CHROMIUM).is_file() or shutil.which("chromium")) or not _have_playwright(),
    reason=f"needs Debian's chromium at {CHROMIUM} (apt-get install chromium) and playwright (the test extra)",
)


def wait_for(predicate, timeout: float = 60.0, what: str = "condition", every: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Server:
    """`hil.dashboard` served from a thread of the test process (the import cost is paid once)."""

    def __init__(self, workspace: Path, host: str = "127.0.0.1") -> None:
        from hil.dashboard.server import create_app, serve

        self.app = create_app(workspace, host=host)
        self.port: int | None = None
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def on_ready(port: int) -> None:
            self.port = port
            ready.set()

        self.task = self.loop.create_task(serve(self.app, host, 0, on_ready))
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert ready.wait(30), "dashboard did not start"
        self.url = f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        try:
            self.loop.run_until_complete(self.task)
        except asyncio.CancelledError:
            pass

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.task.cancel)
        self.thread.join(10)


@pytest.fixture
def workspace(tmp_path):
    Store(tmp_path / "ws").close()
    return tmp_path / "ws"


@pytest.fixture
def server(workspace):
    s = Server(workspace)
    yield s
    s.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium"),
                              args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    ctx.close()
    assert not errors, errors


def start_training(workspace: Path, *sets: str) -> subprocess.Popen:
    """`hil train` (quickstart, shrunk) in its own process, as a user starts it."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "hil", "train", QUICK, *TINY, *sets, "--workspace", str(workspace)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def running_run(workspace: Path, proc: subprocess.Popen, timeout: float = 120) -> str:
    """The id of the run `proc` created, once its first batches are in the store."""
    def first():
        assert proc.poll() is None, proc.communicate()
        with Store(workspace) as store:
            runs = store.runs(kind="train")
            return runs and store.batches(runs[0]["id"]) and runs[0]["id"]

    return wait_for(first, timeout, "the run's first stored batches", every=0.1)
