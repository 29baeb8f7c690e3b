"""The proxy's pure core: cache-control directives, freshness, keys, the policy's verdicts,
epochs, Cache-Status, header hygiene and the in-flight table.

Boundary: modules here import only the standard library, `outpost.urls`, `outpost.errors` and
each other. No sockets, no clocks (every function about time takes `now` in microseconds), no
storage. `tests/core/test_boundaries.py` enforces it.
"""
