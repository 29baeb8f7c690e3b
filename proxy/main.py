"""Entry point for uvicorn workers: `uvicorn --factory proxy.main:app_from_environment`."""

import os

from outpost import logsafe
from outpost.config import load_settings
from outpost.runtime import tune_process
from proxy.app import ProxyApp, create_app
from proxy.settings import ProxySettings, with_run_control_token


def app_from_environment() -> ProxyApp:
    """The app of one worker process (uvicorn workers, granian), its collector tuned."""
    logsafe.install()
    settings = with_run_control_token(load_settings(ProxySettings, "proxy"))
    app = create_app(settings, quiet_gc=True)
    tune_process(os.environ)  # after the app is built: its objects are frozen too
    return app
