"""The web layer: a page per face, the ``t2f serve`` web app, ``/healthz``, and ``/metrics`` apart (aiohttp).

- ``links``: signed, expiring links to a face's page, and the secret that signs them;
- ``assets``: Google's ``<model-viewer>`` fetched once from the npm registry (integrity-checked) and
  served from this server, never from a CDN at view time;
- ``pages``: a face's files on disk, keyed by job id (save, remove, prune), and the backend wrapper that
  saves them off the event loop;
- ``html``: the pages' markup; ``server``: the aiohttp application;
- ``studio``: the prompt page of ``t2f serve`` (submit, live progress, result) and its runner;
- ``access``: the host names served, the pages that may ask for work, who each visitor is (``visitors``);
- ``connections``: time limits and a cap on connections, and the server's start/stop; ``api``: JSON
  bodies and one-sentence refusals; ``metrics_listener``: ``/metrics`` on a listener of its own.

It sits above ``t2f.serve`` and below the app (``t2f.commands``) and ``bot.py``; the cogs never import
it (they reach it through the bot).
"""
