"""Request coalescing bookkeeping: at most one upstream fetch per key in flight.

The table only records who leads and how many wait; the engine supplies the waitable object
(an asyncio future) through `new_flight`, so the rules are testable without an event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["Flight", "FlightTable"]

T = TypeVar("T")


@dataclass
class Flight(Generic[T]):
    key: str
    result: T
    waiters: int = 0
    started: bool = True  # False: reserved for a request that has not fetched yet


@dataclass
class FlightTable(Generic[T]):
    new_flight: Callable[[], T]
    flights: dict[str, Flight[T]] = field(default_factory=dict)

    def join(self, key: str) -> tuple[Flight[T], bool]:
        """The flight for `key` and whether the caller leads it (and so must fetch)."""
        flight = self.flights.get(key)
        if flight is not None:
            if not flight.started:  # reserved: the first to join leads it
                flight.started = True
                return flight, True
            flight.waiters += 1
            return flight, False
        flight = Flight(key, self.new_flight())
        self.flights[key] = flight
        return flight, True

    def reserve(self, key: str) -> bool:
        """Hold the flight for `key` for a request that will lead it once it gets to run
        (requests arriving meanwhile wait for it instead of each starting a fetch of its own);
        False when a flight is in the air already."""
        if key in self.flights:
            return False
        self.flights[key] = Flight(key, self.new_flight(), started=False)
        return True

    def wait(self, key: str) -> Flight[T] | None:
        """The flight for `key`, joined as a waiter, if one is in the air; never starts one."""
        flight = self.flights.get(key)
        if flight is not None:
            flight.waiters += 1
        return flight

    def land(self, key: str) -> Flight[T] | None:
        """The leader is done: later requests start a new flight."""
        return self.flights.pop(key, None)

    def __len__(self) -> int:
        return len(self.flights)
