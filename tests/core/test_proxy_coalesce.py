"""Request coalescing: one leader per key fetches, later requests wait on its flight."""

from __future__ import annotations

import itertools

from proxy.core.coalesce import Flight, FlightTable


def counter_table() -> FlightTable[int]:
    """A table whose flights carry 0, 1, 2, … in order of creation."""
    return FlightTable(itertools.count().__next__)


def test_the_first_request_for_a_key_leads() -> None:
    table = counter_table()
    flight, leader = table.join("k")
    assert leader
    assert flight == Flight("k", 0, waiters=0)


def test_later_requests_wait_on_the_same_flight_and_are_counted() -> None:
    table: FlightTable[object] = FlightTable(object)
    first, _ = table.join("k")
    second, leads = table.join("k")
    third, also_leads = table.join("k")
    assert not leads
    assert not also_leads
    assert second is first
    assert third is first
    assert first.waiters == 2


def test_waiting_does_not_create_a_new_waitable() -> None:
    table = counter_table()
    for _ in range(3):
        table.join("k")
    flight, _ = table.join("k")
    assert flight.result == 0


def test_different_keys_fly_independently() -> None:
    table = counter_table()
    a, a_leads = table.join("a")
    b, b_leads = table.join("b")
    assert a_leads
    assert b_leads
    assert (a.result, b.result) == (0, 1)
    assert len(table) == 2


def test_landing_returns_the_flight_and_lets_the_next_request_lead() -> None:
    table = counter_table()
    flight, _ = table.join("k")
    table.join("k")
    assert table.land("k") is flight
    assert len(table) == 0
    again, leader = table.join("k")
    assert leader
    assert again is not flight
    assert again.result == 1
    assert again.waiters == 0


def test_landing_one_key_leaves_the_others_in_flight() -> None:
    table = counter_table()
    table.join("a")
    b, _ = table.join("b")
    table.land("a")
    assert len(table) == 1
    assert table.join("b") == (b, False)


def test_landing_a_key_not_in_flight_is_none() -> None:
    table = counter_table()
    assert table.land("k") is None
    table.join("k")
    table.land("k")
    assert table.land("k") is None


def test_an_empty_table_has_no_flights() -> None:
    assert len(counter_table()) == 0


def test_waiting_joins_a_flight_in_the_air_and_never_starts_one() -> None:
    table = counter_table()
    assert table.wait("k") is None
    assert len(table) == 0
    flight, _ = table.join("k")
    assert table.wait("k") is flight
    assert flight.waiters == 1
    table.land("k")
    assert table.wait("k") is None
