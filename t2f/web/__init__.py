"""The web layer: a page per face, the ``t2f serve`` web app, ``/healthz`` and ``/metrics`` (aiohttp).

- ``links``: signed, expiring links to a face's page, and the secret that signs them;
- ``assets``: Google's ``<model-viewer>`` fetched once from the npm registry (integrity-checked) and
  served from this server, never from a CDN at view time;
- ``pages``: a face's files on disk, keyed by job id (save, remove, prune), and the backend wrapper that
  saves them off the event loop;
- ``html``: the pages' markup; ``server``: the aiohttp application and its start/stop;
- ``studio``: the prompt page of ``t2f serve`` (submit, live progress, result) and its runner.

It sits above ``t2f.serve`` and below the app (``t2f.commands``) and ``bot.py``; the cogs never import
it (they reach it through the bot).
"""
