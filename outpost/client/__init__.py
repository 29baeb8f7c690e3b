"""The farm-node client: resolve a global tag for a run and fetch every payload it names.

    with Client.from_env() as client:           # OUTPOST_PROXIES, OUTPOST_SERVERS
        conditions = client.fetch_run("OUTPOST_HLT_2026_V1", 500)
        conditions.payload_of("EcalPedestalsRcd")   # verified bytes
        record = client.run_record(500)             # what run control attested
        client.fetch_run("OUTPOST_HLT_2026_V1", 500, expect=record)  # or ConditionsMismatch
        for new in client.follow(tags=["EcalLaser*"]):  # new objects as they are written
            use(new.tag, new.since, new.data)

Every GET goes to the canonical URL (`outpost.urls`) under each endpoint's base URL: proxies in
order, then servers; `a|b` entries are load-balanced groups. Connect errors, timeouts, 5xx and
unusable answers (payload bytes that do not match their SHA-256, a malformed resolve answer) fail
over to the next endpoint, and the failed endpoint cools down; when every endpoint failed the walk
is repeated after a jittered back-off, `settings.rounds` times in all. A 4xx is never retried.
`AsyncClient` is the same client for asyncio.

Errors (`outpost.client.errors`):

    ClientError
    ├── ConfigError              no endpoint, a malformed endpoint list, a bad setting
    ├── RequestRejected          a 4xx; `status`, `body` = {"error", "detail", "accepted"}
    │   ├── BadRequest           400 (also raised locally for a query no origin accepts)
    │   └── NotFound             404: unknown global tag or payload
    ├── AllEndpointsFailed       every endpoint failed; `attempts` says where and why
    │   └── IntegrityError       ... and one of them served bytes with the wrong hash
    └── ConditionsMismatch       not the run record's conditions (`fetch_run(expect=)`)

Modules: `endpoints` (parsing, order, cool-down, back-off), `walk` (one request's attempts,
verdicts by status), `answers` (queries and typed results), `feed` (following the change feed)
and `errors` are pure; `sync` and `aio`
are the httpx drivers, `base` what they share.
"""

from outpost.client.aio import AsyncClient
from outpost.client.answers import Record, Resolution, RunConditions, RunRecord
from outpost.client.endpoints import Endpoint, Group
from outpost.client.errors import (
    AllEndpointsFailed,
    Attempt,
    BadRequest,
    ClientError,
    ConditionsMismatch,
    ConfigError,
    IntegrityError,
    NotFound,
    RequestRejected,
)
from outpost.client.feed import NewIov, NewObject
from outpost.client.settings import ClientSettings
from outpost.client.sync import Client
from outpost.client.walk import ClientStats

__all__ = [
    "AllEndpointsFailed",
    "AsyncClient",
    "Attempt",
    "BadRequest",
    "Client",
    "ClientError",
    "ClientSettings",
    "ClientStats",
    "ConditionsMismatch",
    "ConfigError",
    "Endpoint",
    "Group",
    "IntegrityError",
    "NewIov",
    "NewObject",
    "NotFound",
    "Record",
    "RequestRejected",
    "Resolution",
    "RunConditions",
    "RunRecord",
]
