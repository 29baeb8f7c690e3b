"""Outpost: conditions-data delivery for trigger farms.

This package holds what the origin, the proxy and farm nodes share: the canonical URL codec
(`outpost.urls`), the error tree (`outpost.errors`) and the command line (`outpost.cli`).
"""

__version__ = "0.1.0"
