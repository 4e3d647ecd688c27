"""`hil dashboard`: a local web app over a workspace's run store (watch runs live, stop them, see sweeps).

`data` reads the store, `figures` draws what the server draws, `server` is the aiohttp
app; the pages' script and style are in `static/`, plotly.js comes from the `plotly` wheel.
"""
