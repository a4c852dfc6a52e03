"""The service: the forecast store and placement over HTTP (carbon-aware-sdk shaped and CarbonSync's own
routes), the running controllers' state as Prometheus metrics, and a live dashboard, in one process
(``carbonsync serve run_dir=DIR``). It sits above ``control``, beside ``federated``.

- :mod:`.app`: the FastAPI app (:func:`create_app`) and :func:`serve` on uvicorn;
- :mod:`.sources`: the forecast store's last committed snapshot and the decision logs being followed;
- :mod:`.metrics`: the Prometheus collector; :mod:`.problems`: RFC 7807 errors; :mod:`.config`: the ``serve`` node;
- ``static/``: the dashboard's bundled assets (no CDN).
"""

from carbonsync.serve.app import create_app, serve
from carbonsync.serve.config import ServeConfig

__all__ = ["ServeConfig", "create_app", "serve"]
