"""The dashboard in a real browser (headless Debian Chromium driven by Playwright) over a real run store
that real `hil train` processes write to.

What each test would catch: a page that needs a reload to show new batches or epochs; a sweep figure
that is drawn once and never again; a stop button that kills a run without a checkpoint, or leaves it
unresumable; a server that accepts state changes without its token.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from hil.store import Store
from hil.sweep import load_sweep
from hil.sweep_run import register_sweep
from tests.conftest import REPO
from tests.dashboard.conftest import needs_browser, running_run, start_training, wait_for

pytestmark = needs_browser


def _on_page(page) -> int:
    return int(page.evaluate("Number(document.body.dataset.batches || 0)"))


def _stop(workspace, run_id: str, proc: subprocess.Popen) -> tuple[str, str]:
    """Stop a run the way the dashboard does (a stop request in the store); returns its output."""
    with Store(workspace) as store:
        store.request_stop(run_id, source="test")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err  # as after Ctrl-C
    return out, err


def test_curves_update_while_a_training_runs(workspace, server, page):
    # epochs of 100 batches, more than it will run: the test stops it once it has seen what it needs
    proc = start_training(workspace, "--set", "data.train_subset=400", "--set", "train.epochs=1000")
    run_id = running_run(workspace, proc)
    page.goto(f"{server.url}/run/{run_id}")
    page.evaluate("window.sameDocument = true")  # gone if the page reloads
    first = wait_for(lambda: _on_page(page), 30, "batches on the page")
    wait_for(lambda: _on_page(page) > first, 60, "batches arriving after the page loaded")
    test_points = "document.getElementById('p-acc').data[2].x.length"
    shown = page.evaluate(test_points)
    wait_for(lambda: page.evaluate(test_points) >= shown + 2, 120, "the test-accuracy curve growing by two epochs")
    assert "running" in page.inner_text("h1")
    _stop(workspace, run_id, proc)
    with Store(workspace) as store:
        stored = store.batches(run_id)
        epochs = store.epochs(run_id)
    wait_for(lambda: _on_page(page) == len(stored), 10, "every stored batch on the page")
    wait_for(lambda: "interrupted" in page.inner_text("h1"), 10, "the status turning to interrupted")
    assert page.evaluate(test_points) == len(epochs)
    assert page.evaluate("window.sameDocument") is True
    # each batch once, in order, as stored
    seen = page.evaluate("window.hilArrivals.map(a => [a.epoch, a.batch])")
    assert seen == [[b["epoch"], b["batch"]] for b in stored]


def test_stop_button_leaves_a_resumable_run(workspace, server, page):
    proc = start_training(workspace, "--set", "data.train_subset=400", "--set", "train.epochs=1000")
    run_id = running_run(workspace, proc)
    page.goto(f"{server.url}/run/{run_id}")
    wait_for(lambda: _on_page(page) and page.is_enabled("#stop"), 60, "an enabled stop button")
    dialogs = []

    def accept(dialog):
        dialogs.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    page.click("#stop")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err  # as after Ctrl-C
    assert f"hil train --resume {run_id}" in dialogs[0]
    assert "checkpoint saved" in out
    with Store(workspace) as store:
        assert store.run(run_id)["status"] == "interrupted"
        ckpt = store.load_checkpoint(run_id)
        at = (ckpt["epoch"], ckpt["batch"])
        assert (0, 0) < at < (1000, 0)
    wait_for(lambda: "interrupted" in page.inner_text("h1"), 10, "the page showing the run interrupted")
    assert not page.is_enabled("#stop")
    # resumable: `hil train --resume` goes on from the checkpoint, and the open page follows it
    again = subprocess.Popen([sys.executable, "-m", "hil", "train", "--resume", run_id, "--workspace",
                              str(workspace), "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    n_before = _on_page(page)

    def went_on():
        assert again.poll() is None, again.communicate()
        with Store(workspace) as store:
            return store.run(run_id)["status"] == "running" and store.load_checkpoint(run_id)["epoch"] > at[0]

    wait_for(went_on, 120, "the resumed run passing its next epoch", every=0.2)
    wait_for(lambda: _on_page(page) > n_before and page.is_enabled("#stop"), 10, "the page following the resumed run")
    with Store(workspace) as store:
        assert not store.stop_requested(run_id)  # cleared when the run resumed
    _stop(workspace, run_id, again)


def _trial_row(sweep, trial, acc: float) -> dict:
    return {"sweep_id": sweep.id, "trial_id": trial.id, "idx": trial.index, "point": trial.point,
            "config": trial.config, "status": "completed", "error": None, "wall_s": 1.0, "worker": "test",
            "result": {"final_test_acc": acc, "best_test_acc": acc, "wall_s": 1.0, "worker": "test", "epochs": []}}


def test_a_sweeps_figure_grows_as_trials_arrive(workspace, server, page):
    """Trials are written with the store call the sweep client makes (the Dask path is tests/sweeps')."""
    sweep = load_sweep(REPO / "tests" / "sweeps" / "tiny.yaml")
    with Store(workspace) as store:
        register_sweep(sweep, store)
        page.goto(f"{server.url}/run/{sweep.id}")
        wait_for(lambda: page.inner_text("#stat-pending") == "6", 20, "six pending trials")
        versions = []
        for k, trial in enumerate(sweep.trials[:3]):
            store.put_trial(_trial_row(sweep, trial, 0.8 - 0.2 * k))
            wait_for(lambda k=k: page.inner_text("#stat-done") == str(k + 1), 10, f"{k + 1} trials done")
            wait_for(lambda: page.evaluate("(i => i.complete && i.naturalWidth)(document.getElementById('figure'))"),
                     30, "the redrawn figure")
            versions.append(page.get_attribute("#figure", "data-version"))
        assert versions == ["1-0", "2-0", "3-0"]  # one redraw per new trial
        assert page.locator("#trials tbody tr").count() == 3
        assert "running" in page.inner_text("h1") and page.is_enabled("#stop")


def _request(url: str, method: str = "GET", headers: dict | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_off_loopback_every_request_needs_the_printed_token(workspace, browser):
    holder = Store(workspace)  # stays open: its lock keeps the run `running`, as a live training would
    run_id = holder.create_run("held", {"train": {"epochs": 1}})
    proc = subprocess.Popen([sys.executable, "-m", "hil", "dashboard", "--workspace", str(workspace), "--host",
                             "0.0.0.0", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={"COLUMNS": "300", **__import__("os").environ})
    try:
        lines = [proc.stdout.readline() for _ in range(2)]
        token = lines[1].split("token: ")[1].split()[0]
        port = int(lines[0].split("http://")[1].split("/")[0].rsplit(":", 1)[1])
        assert f"?token={token}" in lines[0]
        base = f"http://127.0.0.1:{port}"
        stop = f"{base}/api/run/{run_id}/stop"
        assert _request(f"{base}/")[0] == 403
        assert _request(f"{base}/api/runs")[0] == 403
        assert _request(stop, "POST")[0] == 403
        assert _request(stop, "POST", {"X-HIL-Token": "wrong"})[0] == 403
        with Store(workspace) as store:
            assert not store.stop_requested(run_id)  # refused means nothing recorded
        code, body = _request(f"{base}/api/runs?token={token}")
        assert code == 200 and json.loads(body)[0]["id"] == run_id
        # the printed URL works in a browser (the token becomes a same-site cookie for the page's requests)
        ctx = browser.new_context()
        pg = ctx.new_page()
        pg.goto(f"{base}/?token={token}")
        wait_for(lambda: pg.locator(f"tr[data-id='{run_id}']").count() == 1, 20, "the run listed")
        ctx.close()
        assert _request(stop, "POST", {"X-HIL-Token": token})[0] == 202
        with Store(workspace) as store:
            assert store.stop_requested(run_id)
    finally:
        proc.terminate()
        proc.wait(10)
        holder.close()


@pytest.mark.parametrize("headers", [{}, {"X-HIL-Token": "guess"}])
def test_on_loopback_a_state_change_still_needs_the_token(workspace, server, headers):
    """Reading is open on 127.0.0.1, but another web page in the same browser cannot stop a run."""
    with Store(workspace) as store:
        run_id = store.create_run("held", {"train": {"epochs": 1}})
        assert _request(f"{server.url}/api/run/{run_id}/stop", "POST", headers)[0] == 403
        assert not store.stop_requested(run_id)
        assert _request(f"{server.url}/api/run/{run_id}/stop", "POST", {"X-HIL-Token": server.app["token"]})[0] == 202
        assert store.stop_requested(run_id)
        # a page of another site that resolves its name to 127.0.0.1 (DNS rebinding) gets nothing, not the token
        code, body = _request(f"{server.url}/", headers={"Host": f"evil.example:{server.port}"})
        assert code == 403 and server.app["token"] not in body
