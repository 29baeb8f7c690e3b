"""Entry point for uvicorn workers: `uvicorn --factory origin.main:app_from_environment`."""

from starlette.applications import Starlette

from origin.app import create_app
from origin.settings import OriginSettings
from outpost import logsafe
from outpost.config import load_settings


def app_from_environment() -> Starlette:
    logsafe.install()
    return create_app(load_settings(OriginSettings, "origin"))
