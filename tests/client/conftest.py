"""Fixtures of the client tests: a fake network (`fakenet`), a clock that moves when told."""

from __future__ import annotations

import random

import pytest
from client.fakenet import NODE, ORIGIN, SITE, Clock, Network, serve


@pytest.fixture
def network() -> Network:
    return Network({NODE: serve, SITE: serve, ORIGIN: serve})


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def rng() -> random.Random:
    return random.Random(7)
