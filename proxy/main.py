"""Entry point for uvicorn workers: `uvicorn --factory proxy.main:app_from_environment`."""

from outpost.config import load_settings
from proxy.app import ProxyApp, create_app
from proxy.settings import ProxySettings, with_run_control_token


def app_from_environment() -> ProxyApp:
    return create_app(with_run_control_token(load_settings(ProxySettings, "proxy")))
