"""scripts/stack.py free_ports: the one port allocator of the stack, the tests and the benchmarks.

A port found free inside the kernel's ephemeral range can be taken as the local end of an
outgoing connection before our program binds it (CI once saw a collector fail with
"address already in use" that way), so ports come from outside that range, and a port is
never handed out twice by one process.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterator

import pytest

from tests.harness import stack


def _ephemeral() -> range:
    low, high = stack._ephemeral_range()
    return range(low, high + 1)


def test_ports_are_outside_the_ephemeral_range() -> None:
    ports = stack.free_ports(50)
    assert len(set(ports)) == 50
    assert not [p for p in ports if p in _ephemeral()]


def test_a_port_is_never_handed_out_twice_even_once_closed() -> None:
    first = stack.free_ports(20)
    # Nothing holds them now: a bind(0)-style allocator could give them again.
    second = stack.free_ports(20)
    assert not set(first) & set(second)


def test_consecutive_ports_follow_each_other() -> None:
    ports = stack.free_ports(4, consecutive=True)
    assert ports == list(range(ports[0], ports[0] + 4))


@pytest.fixture
def listener() -> Iterator[int]:
    """A port something already listens on, inside the pool the allocator uses."""
    pool = stack._port_pool()
    for port in pool:
        if port in stack._handed_out:  # would be skipped for that reason alone
            continue
        sock = socket.socket()
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.close()
            continue
        sock.listen()
        try:
            yield port
        finally:
            sock.close()
        return
    pytest.fail("no port to listen on")


def test_a_port_something_listens_on_is_skipped(listener: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # Start the search exactly at the busy port.
    monkeypatch.setattr(stack.random, "randrange", lambda n: stack._port_pool().index(listener))
    (port,) = stack.free_ports(1)
    assert port != listener
    assert port not in _ephemeral()


def test_a_run_broken_by_a_busy_port_starts_again(listener: int, monkeypatch: pytest.MonkeyPatch) -> None:
    pool = stack._port_pool()
    # Start two ports before the busy one: a run of three cannot include it.
    monkeypatch.setattr(stack.random, "randrange", lambda n: max(pool.index(listener) - 2, 0))
    ports = stack.free_ports(3, consecutive=True)
    assert listener not in ports
    assert ports == list(range(ports[0], ports[0] + 3))


def test_the_stack_ports_are_distinct_and_outside_the_ephemeral_range() -> None:
    ports = list(dataclasses.asdict(stack.Ports.free()).values())
    assert len(set(ports)) == len(ports)
    assert not [p for p in ports if p in _ephemeral()]
