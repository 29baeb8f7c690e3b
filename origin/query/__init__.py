"""The origin's pure core: typed query → parameterised SQL, TTL class, response encoding.

Boundary: modules here may import the standard library, `outpost.urls`, `outpost.errors`,
`origin.schema` and SQLAlchemy's expression language (building a statement is not I/O). They never
open a connection, read a clock, or touch the network; `tests/core/test_boundaries.py` enforces it.
Every value from a URL reaches SQL as a bound parameter; identifiers only via the allow-list.
"""
