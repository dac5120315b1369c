"""The one periodic sweeper (server/sweeper.py) on a real Redis: every registered sweep runs at
its own interval, a failing one does not stop it or the others, a locked one runs on one node
at a time, and after close nothing runs."""

from __future__ import annotations

import asyncio
import time

import pytest

from server.sweeper import Sweeper


async def test_each_sweep_at_its_interval_and_a_failure_stops_nothing(store):
    calls = {"fast": 0, "slow": 0, "failing": 0}

    def counter(name: str, fail: bool = False):
        async def sweep() -> None:
            calls[name] += 1
            if fail:
                raise ConnectionError("redis restarting")
        return sweep

    sweeper = Sweeper(store.locks)
    sweeper.register("fast", counter("fast"), 0.05)
    sweeper.register("failing", counter("failing", fail=True), 0.05)
    with pytest.raises(ValueError):
        sweeper.register("fast", counter("fast"), 1.0)  # one name, one sweep
    sweeper.start()
    sweeper.register("slow", counter("slow"), 0.3)  # registered after the start: runs too
    deadline = time.monotonic() + 10  # a loaded machine is slower, never wrong
    while calls["slow"] < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    await sweeper.close()
    # Each at its own pace: the fast ones ran several times for each slow run.
    assert calls["slow"] >= 2 and calls["fast"] >= 3 * calls["slow"], calls
    assert calls["failing"] >= 3 * calls["slow"], calls  # failing stops neither it nor others
    after = dict(calls)
    await asyncio.sleep(0.2)
    assert calls == after  # closed: nothing runs any more
    assert sweeper.names == ["fast", "failing", "slow"]


async def test_a_locked_sweep_runs_on_one_node_at_a_time(store):
    running = 0
    most = 0
    runs = 0

    async def sweep() -> None:
        nonlocal running, most, runs
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.03)
        running -= 1
        runs += 1

    nodes = [Sweeper(store.locks) for _ in range(3)]
    for node in nodes:
        node.register("exclusive", sweep, 0.01, lock_ttl_s=5)
        node.start()
    deadline = time.monotonic() + 10  # a loaded machine is slower, never wrong
    while runs < 6 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    for node in nodes:
        await node.close()
    assert most == 1 and runs >= 6, (most, runs)
    # The lock is released after each run, and by a run cut short by the close: nothing is
    # left held for its TTL (5 s).
    free_by = time.monotonic() + 1
    while not await store.locks.acquire("exclusive", "probe", 1):
        assert time.monotonic() < free_by, "the lock was left held after close"
        await asyncio.sleep(0.02)
    await store.locks.release("exclusive", "probe")


async def test_a_lock_needs_a_store():
    with pytest.raises(ValueError):
        Sweeper().register("x", asyncio.sleep, 1.0, lock_ttl_s=1)
