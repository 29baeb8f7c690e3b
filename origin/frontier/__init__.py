"""The Frontier protocol: frontier_client (CMS, ATLAS) reads conditions from the origin unchanged.

`GET /{servlet}/Frontier/type=frontier_request:1:DEFAULT&encoding=BLOBzip5&p1=…` carries SQL
(zlib, then base64 in Frontier's URL alphabet) and is answered in the Frontier XML envelope with
the typed binary row stream, as the Frontier servlet (3.4x) writes it.

Pure core, no I/O: `params` (URL → commands), `codec` (p1), `guard` (the SQL allow-list),
`rows` (the typed row stream and its decoder), `envelope` (the XML answer), `caching` (headers and
validators). Adapters: `run` (executes on the read-only engine) and `endpoint` (the ASGI route).
"""
