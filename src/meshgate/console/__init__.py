"""The web console: the seed's console steps (and their neighbours) in a browser.

Rules of this package:
- Served by the control plane on a loopback TCP listener of its own (``server.py``),
  started on the first ``meshgate console``; every request needs the console's session
  cookie, which only a one-time login link (minted over the token-guarded API) sets
  (``auth.py``). Anything else is a 401.
- The console is a client of the control plane's HTTP API, as the CLI is (``backend.py``):
  every write goes through ``/v1/apply`` or ``/v1/delete``, so validation, admission,
  revisions and all-or-nothing apply hold exactly as for ``meshgate apply``.
- YAML typed in the browser is decoded and validated here first with the same functions
  ``meshgate apply`` uses (``yamledit.py``), so each problem is shown at its line and
  nothing is sent while any error remains.
- Pages are rendered on the server (Jinja2 templates, autoescaped); charts and the graph
  are SVG drawn on the server (``charts.py``, ``graph.py``); the only script is the live
  tail's small poller in ``static/``, our own. No build step.
"""
