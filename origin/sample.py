"""A deterministic, realistic sample conditions database (`outpost db sample`).

Same seed, same bytes: the clock is a counter, the payloads come from a seeded generator, and
everything goes through the ordinary write path. What it holds:

- 25 records of a trigger menu's worth of subsystems, mixing the three time types;
- per tag 3..12 IOVs spread over runs 1..1000, some reusing an earlier payload, and corrections
  (an existing `since` re-inserted later with a new payload) on about a third of the tags;
- payloads from 1 KiB to 4 MiB (log-uniform, plus a few large alignment and menu objects);
- an open HLT global tag over all records and a locked prompt global tag over locked tags.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from sqlalchemy import Engine

from origin.inputs import GlobalTagUpdate, MapEntry, NewIov, NewTag
from origin.query.sql import run_lumi_key
from origin.writes import Writes

__all__ = ["HLT_GLOBAL_TAG", "PROMPT_GLOBAL_TAG", "SampleSummary", "build_sample"]

HLT_GLOBAL_TAG = "OUTPOST_HLT_2026_V1"
PROMPT_GLOBAL_TAG = "OUTPOST_PROMPT_2025_V3"
START = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z in µs: the sample's clock starts here
TIMESTAMP_BASE = 1_767_225_600  # Unix seconds of run 1 in the sample
SECONDS_PER_RUN = 3_600
KIB = 1024

RECORDS: tuple[tuple[str, str, str], ...] = (
    # (record, time type, payload type)
    ("EcalPedestalsRcd", "run", "EcalPedestals"),
    ("EcalGainRatiosRcd", "run", "EcalGainRatios"),
    ("EcalIntercalibConstantsRcd", "run", "EcalIntercalibConstants"),
    ("EcalLaserAPDPNRatiosRcd", "timestamp", "EcalLaserAPDPNRatios"),
    ("EcalDCSTowerStatusRcd", "timestamp", "EcalDCSTowerStatus"),
    ("HcalPedestalsRcd", "run", "HcalPedestals"),
    ("HcalGainsRcd", "run", "HcalGains"),
    ("HcalRespCorrsRcd", "run", "HcalRespCorrs"),
    ("HcalDCSValuesRcd", "timestamp", "HcalDCSValues"),
    ("SiPixelQualityRcd", "run", "SiPixelQuality"),
    ("SiPixelGainCalibrationRcd", "run", "SiPixelGainCalibration"),
    ("SiPixelLorentzAngleRcd", "run_lumi", "SiPixelLorentzAngle"),
    ("SiStripNoisesRcd", "run", "SiStripNoises"),
    ("SiStripBadChannelRcd", "run", "SiStripBadStrip"),
    ("SiStripDetVOffRcd", "timestamp", "SiStripDetVOff"),
    ("DTT0Rcd", "run", "DTT0"),
    ("CSCGainsRcd", "run", "CSCGains"),
    ("RPCStripNoisesRcd", "run", "RPCStripNoises"),
    ("TrackerAlignmentRcd", "run", "Alignments"),
    ("MuonAlignmentRcd", "run", "MuonAlignments"),
    ("GlobalPositionRcd", "run", "GlobalPosition"),
    ("BeamSpotOnlineHLTObjectsRcd", "run_lumi", "BeamSpotOnlineObjects"),
    ("LumiCorrectionsRcd", "run_lumi", "LumiCorrections"),
    ("L1TUtmTriggerMenuRcd", "run", "L1TUtmTriggerMenu"),
    ("HLTPrescaleTableRcd", "run", "HLTPrescaleTable"),
)
LARGE: dict[str, int] = {  # payload type → size of its first payload: the big objects
    "Alignments": 4 * 1024 * KIB,
    "L1TUtmTriggerMenu": 1024 * KIB,
    "SiStripNoises": 2 * 1024 * KIB,
}
PROMPT_RECORDS = (
    "EcalPedestalsRcd",
    "HcalGainsRcd",
    "SiStripNoisesRcd",
    "DTT0Rcd",
    "GlobalPositionRcd",
)


@dataclass(frozen=True)
class SampleSummary:
    global_tags: int
    tags: int
    iovs: int
    payloads: int
    payload_bytes: int


class _Clock:
    """One second per write: deterministic insertion times."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> int:
        self.now += 1_000_000
        return self.now


def _sinces(rng: random.Random, time_type: str, count: int) -> list[int]:
    runs = sorted({1, *rng.sample(range(2, 1001), count - 1)})
    if time_type == "run":
        return runs
    if time_type == "run_lumi":
        return [run_lumi_key(run, 1 if run == 1 else rng.randint(1, 300)) for run in runs]
    return [TIMESTAMP_BASE + (run - 1) * SECONDS_PER_RUN + rng.randint(0, 600) for run in runs]


def _size(rng: random.Random) -> int:
    return int(math.exp(rng.uniform(math.log(KIB), math.log(256 * KIB))))


def _payload(rng: random.Random, payload_type: str, size: int) -> bytes:
    header = f"OUTPOST-SAMPLE {payload_type}\n".encode()
    return header + rng.randbytes(max(0, size - len(header)))


class _Builder:
    def __init__(self, engine: Engine, seed: int) -> None:
        self.rng = random.Random(seed)
        self.writes = Writes(engine, _Clock(), who="outpost db sample")
        self.iovs = self.payloads = self.payload_bytes = 0

    def upload(self, payload_type: str, size: int) -> str:
        data = _payload(self.rng, payload_type, size)
        digest, created = self.writes.put_payload(data, payload_type)
        if created:
            self.payloads += 1
            self.payload_bytes += len(data)
        return digest

    def append(self, tag: str, batch: list[NewIov]) -> None:
        self.writes.append_iovs(tag, tuple(batch))
        self.iovs += len(batch)

    def hlt_tag(self, record: str, time_type: str, payload_type: str) -> str:
        rng = self.rng
        tag = f"{payload_type}_v{rng.randint(1, 9)}_hlt"
        self.writes.create_tag(NewTag(tag, time_type, payload_type, f"{record} for the HLT, 2026"))
        hashes: list[str] = []
        batch = []
        for index, since in enumerate(_sinces(rng, time_type, rng.randint(3, 12))):
            if hashes and rng.random() < 0.15:
                digest = rng.choice(hashes)  # the same constants again: stored once
            else:
                first_large = index == 0 and payload_type in LARGE
                digest = self.upload(
                    payload_type, LARGE[payload_type] if first_large else _size(rng)
                )
                hashes.append(digest)
            batch.append(NewIov(since, digest))
        self.append(tag, batch)
        if rng.random() < 0.35:  # a correction: re-insert some sinces with new constants
            fixes = rng.sample(batch, 2)
            self.append(
                tag, [NewIov(i.since, self.upload(payload_type, _size(rng))) for i in fixes]
            )
        return tag

    def prompt_tag(self, record: str, time_type: str, payload_type: str) -> str:
        tag = f"{payload_type}_prompt_2025"
        self.writes.create_tag(NewTag(tag, time_type, payload_type, f"{record}, prompt 2025"))
        sinces = _sinces(self.rng, time_type, 4)
        self.append(tag, [NewIov(s, self.upload(payload_type, _size(self.rng))) for s in sinces])
        self.writes.lock_tag(tag)
        return tag


def build_sample(engine: Engine, seed: int = 1) -> SampleSummary:
    """Fill an empty, migrated database with the sample data set."""
    builder = _Builder(engine, seed)
    hlt_map, prompt_map = [], []
    for record, time_type, payload_type in RECORDS:
        hlt_map.append(MapEntry(record, "", builder.hlt_tag(record, time_type, payload_type)))
        if record in PROMPT_RECORDS:
            prompt = builder.prompt_tag(record, time_type, payload_type)
            prompt_map.append(MapEntry(record, "", prompt))
    builder.writes.put_global_tag(
        HLT_GLOBAL_TAG, GlobalTagUpdate(tuple(hlt_map), "HLT conditions for the 2026 run")
    )
    builder.writes.put_global_tag(
        PROMPT_GLOBAL_TAG,
        GlobalTagUpdate(tuple(prompt_map), "Prompt reconstruction 2025, frozen", lock=True),
    )
    return SampleSummary(
        global_tags=2,
        tags=len(RECORDS) + len(PROMPT_RECORDS),
        iovs=builder.iovs,
        payloads=builder.payloads,
        payload_bytes=builder.payload_bytes,
    )
