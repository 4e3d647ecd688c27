"""Screenshots of the dashboard's pages for the README and docs/dashboard.md.

    python docs/figures/dashboard_screenshots.py WORKSPACE [--out docs/figures]

WORKSPACE should hold a training run (the newest one is shown, live if it is running), a
sweep and a characterization, e.g. made with:

    hil characterize --config twin --workspace WS --set read.n_reads=16384
    hil sweep tests/sweeps/tiny.yaml --workspace WS --workers 1
    hil train quickstart --workspace WS --set data.train_subset=2000 --set data.test_subset=500 --set train.epochs=4
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from hil.store import Store  # noqa: E402
from tests.dashboard.conftest import CHROMIUM, CHROMIUM_ARGS, Server  # noqa: E402

READY = {  # when each page has drawn its data
    "runs": "document.querySelectorAll('#runs tbody tr').length > 0",
    "train": "Number(document.body.dataset.batches || 0) > 0",
    "sweep": "(i => i && i.complete && i.naturalWidth > 0)(document.getElementById('figure'))",
    "characterize": "[...document.images].length > 0 && [...document.images].every(i => i.complete)",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workspace", type=Path)
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "figures")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with Store(args.workspace) as store:
        runs = store.runs()
    newest = {kind: [r["id"] for r in runs if r["kind"] == kind][-1:] for kind in ("train", "sweep", "characterize")}
    pages = [("runs", "/")] + [(name, f"/run/{newest[kind][0]}") for name, kind in
                               (("train", "train"), ("sweep", "sweep"), ("characterize", "characterize"))
                               if newest[kind]]
    server = Server(args.workspace)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            for name, path in pages:
                page.goto(server.url + path)
                page.wait_for_function(READY[name], timeout=120_000)
                page.wait_for_timeout(3000)  # histograms and images fetched after the first data
                out = args.out / f"dashboard-{name}.png"
                page.screenshot(path=str(out), full_page=name != "runs")
                print(f"wrote {out}")
            browser.close()
    finally:
        server.close()


if __name__ == "__main__":
    main()
