"""The ASGI entry point granian's workers import: ``openspine.asgi:app_from_env`` (a factory).

Each worker builds its app from the environment that ``openspine serve`` set for it:
``OPENSPINE_DATA_DIR`` (a store made by ``openspine demo``) or the full ``OPENSPINE_*`` set.
"""

from __future__ import annotations

import gc
import os
from pathlib import Path

from starlette.applications import Starlette

from openspine.app import create_app
from openspine.settings import Settings

__all__ = ["app_from_env", "settings_from_env"]


def settings_from_env() -> Settings:
    data_dir = os.environ.get("OPENSPINE_DATA_DIR")
    if data_dir:
        return Settings.for_data_dir(
            Path(data_dir), base_url=os.environ.get("OPENSPINE_PUBLIC_BASE_URL")
        ).with_env_overrides(os.environ)
    return Settings.from_env(os.environ)


def app_from_env() -> Starlette:
    app = create_app(settings_from_env())
    # The modules and the app built here live as long as the worker. Frozen, they are no longer
    # scanned by every full collection: with them, each full collection paused a worker for
    # 50-80 ms, several times a second under load, which was the p99 of every scenario.
    gc.collect()
    gc.freeze()
    return app
