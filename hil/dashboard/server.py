"""The dashboard's web server (aiohttp): pages, a JSON API, server-sent events and the stop button.

Security model: the server binds 127.0.0.1 unless told otherwise.  It always makes a
random token; a state-changing request (the stop button's POST) must carry it in the
`X-HIL-Token` header or is refused with 403, so another web page open in the same
browser cannot stop a run.  Bound off-loopback, every request needs the token (the
start-up URL's `?token=` sets a same-site cookie), and the printed URL carries it.
On loopback, a request whose Host is not a loopback name is refused (DNS rebinding).

Live updates: one task polls SQLite's `data_version` every `poll_s`; when another
process has committed, every open event stream queries what its page has not seen.
"""

from __future__ import annotations

import asyncio
import base64
import html
import ipaddress
import json
import secrets
from importlib.resources import files
from pathlib import Path
from typing import Any

from aiohttp import web

from hil.dashboard.data import DashboardData
from hil.dashboard.figures import conductance_histograms, figure_name, sweep_figure_png
from hil.errors import UserError

STATIC = Path(str(files("hil.dashboard") / "static"))
TOKEN_HEADER = "X-HIL-Token"
COOKIE = "hil_token"
KEEPALIVE_S = 15.0


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def plotly_js() -> Path:
    """plotly.js as shipped inside the `plotly` wheel: served locally, never from a CDN."""
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


@web.middleware
async def _auth(request: web.Request, handler):
    app = request.app
    token = app["token"]
    given = request.headers.get(TOKEN_HEADER) or request.query.get("token") or request.cookies.get(COOKIE) or ""
    if app["loopback"] and not is_loopback((request.url.host or "").strip("[]")):
        # a page of another site whose name was made to resolve to 127.0.0.1 (DNS rebinding) must not read the token
        raise web.HTTPForbidden(text="403: on loopback this dashboard answers to 127.0.0.1 / localhost only\n")
    if not app["loopback"] and not secrets.compare_digest(given, token):
        raise web.HTTPForbidden(text="403: this dashboard needs its token (see the URL printed at start-up)\n")
    if request.method not in ("GET", "HEAD") and not secrets.compare_digest(
            request.headers.get(TOKEN_HEADER, ""), token):
        raise web.HTTPForbidden(text="403: a state-changing request needs the X-HIL-Token header\n")
    response = await handler(request)
    if not app["loopback"] and request.query.get("token") == token:
        response.set_cookie(COOKIE, token, httponly=True, samesite="Strict")
    return response


def create_app(workspace: str | Path, *, host: str = "127.0.0.1", token: str | None = None,
               poll_s: float = 0.2) -> web.Application:
    app = web.Application(middlewares=[_auth])
    app["workspace"], app["token"] = Path(workspace), token or secrets.token_urlsafe(18)
    app["loopback"], app["poll_s"] = is_loopback(host), poll_s
    app["figures"]: dict[str, tuple[Any, bytes | None]] = {}
    app.cleanup_ctx.append(_lifecycle)
    app.add_routes([
        web.get("/", _page("runs")),
        web.get("/run/{id}", _page("run")),
        web.get("/favicon.ico", lambda r: web.Response(status=204)),
        web.get("/static/plotly.min.js", lambda r: web.FileResponse(plotly_js())),
        web.static("/static", STATIC),
        web.get("/api/runs", _api_runs),
        web.get("/api/runs/events", _runs_events),
        web.get("/api/run/{id}", _api_run),
        web.get("/api/run/{id}/events", _run_events),
        web.get("/api/run/{id}/histograms", _api_histograms),
        web.get("/api/run/{id}/artifact/{name}", _api_artifact),
        web.get("/api/sweep/{id}", _api_sweep),
        web.get("/api/sweep/{id}/figure.png", _api_figure),
        web.post("/api/run/{id}/stop", _api_stop),
    ])
    return app


async def _lifecycle(app: web.Application):
    app["data"] = DashboardData(app["workspace"])
    app["changed"] = asyncio.Condition()
    app["version"] = 0
    task = asyncio.create_task(_poll(app))
    yield
    task.cancel()
    app["data"].close()


async def _poll(app: web.Application) -> None:
    """Wake every open event stream when the store changed (another process committed)."""
    seen = app["data"].version()
    while True:
        await asyncio.sleep(app["poll_s"])
        now = app["data"].version()
        if now != seen:
            seen = now
            await _notify(app)


async def _notify(app: web.Application) -> None:
    async with app["changed"]:
        app["version"] += 1
        app["changed"].notify_all()


def _page(kind: str):
    template = (STATIC / "page.html").read_text()

    async def handler(request: web.Request) -> web.Response:
        run_id = request.match_info.get("id", "")
        body = (template.replace("{{TOKEN}}", html.escape(request.app["token"]))
                .replace("{{PAGE}}", kind).replace("{{RUN}}", html.escape(run_id)))
        return web.Response(text=body, content_type="text/html")

    return handler


def _data(request: web.Request) -> DashboardData:
    return request.app["data"]


def _run_or_404(request: web.Request) -> dict[str, Any]:
    try:
        return _data(request).run(request.match_info["id"])
    except UserError as exc:
        raise web.HTTPNotFound(text=str(exc)) from None


async def _api_runs(request: web.Request) -> web.Response:
    return web.json_response(_data(request).runs())


def run_state(data: DashboardData, run: dict[str, Any]) -> dict[str, Any]:
    """Everything about a run that changes while it runs, except its batches."""
    rid = run["id"]
    return {"status": run["status"], "stoppable": run["stoppable"], "stop_requested": data.stop_requested(rid),
            "updated_s": run["updated_s"], "summary": run["summary"], "epochs": data.epochs(rid),
            "layer_signal": data.layer_signal(rid), "progress": data.progress(rid), "trials": data.trials_seen(rid)}


async def _api_run(request: web.Request) -> web.Response:
    data, run = _data(request), _run_or_404(request)
    arts = data.artifacts(run["id"])
    ckpt = request.app["workspace"] / "runs" / run["id"] / "checkpoint.pt"
    return web.json_response({
        "id": run["id"], "name": run["name"], "kind": run["kind"], "crossbar": run["crossbar_label"],
        "created_s": run["created_s"], "config": run["config"], "code_version": run["code_version"],
        "batches": data.batches_after(run["id"], -1, -1), **run_state(data, run),
        "images": [n for n, a in arts.items() if a["kind"] == "png-base64"],
        "texts": {n: a["body"] for n, a in arts.items() if a["kind"] in ("text", "yaml")},
        "station": arts.get("station", {}).get("body"), "has_checkpoint": ckpt.is_file(),
    })


async def _sse(request: web.Request, step) -> web.StreamResponse:
    """An event stream: `step()` returns the next payload (or None) each time the store changed."""
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await resp.prepare(request)
    app = request.app
    try:
        while True:
            seen = app["version"]  # before the query: a change during the write below wakes the next wait
            payload = step()
            if payload is not None:
                await resp.write(f"data: {json.dumps(payload)}\n\n".encode())
            if not await _changed_since(app, seen):
                await resp.write(b": keep-alive\n\n")
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    return resp


async def _changed_since(app: web.Application, seen: int) -> bool:
    """Wait until the store changed after version `seen` (True), or KEEPALIVE_S passed (False)."""
    async with app["changed"]:
        try:
            await asyncio.wait_for(app["changed"].wait_for(lambda: app["version"] != seen), KEEPALIVE_S)
        except asyncio.TimeoutError:
            return False
    return True


async def _runs_events(request: web.Request) -> web.StreamResponse:
    data, last = _data(request), [None]

    def step():
        runs = data.runs()
        if runs == last[0]:
            return None
        last[0] = runs
        return {"runs": runs}

    return await _sse(request, step)


async def _run_events(request: web.Request) -> web.StreamResponse:
    data, run = _data(request), _run_or_404(request)
    cursor = [int(request.query.get("epoch", -1)), int(request.query.get("batch", -1))]
    last: list[Any] = [None]

    def step():
        new = data.batches_after(run["id"], *cursor)
        if new:
            cursor[:] = [new[-1]["epoch"], new[-1]["batch"]]
        state = run_state(data, data.run(run["id"]))
        if not new and state == last[0]:
            return None
        last[0] = state
        return {"batches": new, **state}

    return await _sse(request, step)


async def _api_histograms(request: web.Request) -> web.Response:
    run = _run_or_404(request)
    ckpt = request.app["workspace"] / "runs" / run["id"] / "checkpoint.pt"
    if not ckpt.is_file():
        return web.json_response({})
    hist = await asyncio.get_running_loop().run_in_executor(None, conductance_histograms, ckpt)
    return web.json_response(hist)


async def _api_artifact(request: web.Request) -> web.Response:
    run = _run_or_404(request)
    art = _data(request).artifacts(run["id"]).get(request.match_info["name"])
    if art is None or art["kind"] != "png-base64":
        raise web.HTTPNotFound(text="no such image")
    return web.Response(body=base64.b64decode(art["body"]), content_type="image/png")


async def _api_sweep(request: web.Request) -> web.Response:
    run = _run_or_404(request)
    if run["kind"] != "sweep":
        raise web.HTTPNotFound(text=f"run {run['id']} is a {run['kind']} run, not a sweep")
    t = _data(request).trials(run["id"])
    return web.json_response({
        "id": run["id"], "name": run["name"], "status": run["status"], "stoppable": run["stoppable"],
        "stop_requested": _data(request).stop_requested(run["id"]), "protocol": t["protocol"],
        "figure": figure_name(t["protocol"]), "total": t["total"], "done": t["done"], "failed": t["failed"],
        "pending": t["pending"], "rows": t["rows"], "figure_version": f"{t['done']}-{t['failed']}",
    })


async def _api_figure(request: web.Request) -> web.Response:
    """The sweep's paper figure, redrawn only when its trial count changed."""
    run = _run_or_404(request)
    t = _data(request).trials(run["id"])
    key = (t["done"], t["failed"])
    cached = request.app["figures"].get(run["id"])
    if cached is None or cached[0] != key:
        title = f"{run['name']}: {t['done']}/{t['total']} trials"
        png = await asyncio.get_running_loop().run_in_executor(
            None, sweep_figure_png, t["protocol"], t["table"], t["config"], title)
        request.app["figures"][run["id"]] = cached = (key, png)
    if cached[1] is None:
        raise web.HTTPNotFound(text="no finished trial yet")
    return web.Response(body=cached[1], content_type="image/png", headers={"Cache-Control": "no-store"})


async def _api_stop(request: web.Request) -> web.Response:
    """Record a stop request; the run's own process turns it into its Ctrl-C path (hil.runner.StopWatcher)."""
    run = _run_or_404(request)
    if not run["stoppable"]:
        raise web.HTTPConflict(text=f"run {run['id']} is {run['status']}: nothing to stop")
    _data(request).store.request_stop(run["id"], source=f"dashboard {request.remote}")
    await _notify(request.app)
    return web.json_response({"id": run["id"], "stop_requested": True}, status=202)


async def serve(app: web.Application, host: str, port: int, on_ready) -> None:
    """Bind, call `on_ready(actual_port)`, and serve until cancelled."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise UserError(f"--host {host} --port {port}: cannot listen ({exc.strerror or exc})") from None
    sock = site._server.sockets[0]  # the port the system chose for --port 0
    on_ready(sock.getsockname()[1])
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
