"""The rate-limited logging helper (pure logic; time is passed in)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from server.log_throttle import LogThrottle


def test_burst_then_suppressed_then_reported():
    t = LogThrottle(burst=3, window_s=60)
    assert [t.allow("k", now=0) for _ in range(3)] == [0, 0, 0]
    assert [t.allow("k", now=1) for _ in range(5)] == [None] * 5
    assert t.allow("other", now=1) == 0  # keys are independent
    assert t.allow("k", now=60) == 5  # next window: what was suppressed is reported once
    assert t.allow("k", now=61) == 0


@given(st.lists(st.tuples(st.sampled_from("abc"), st.floats(0, 1000)), max_size=300))
def test_nothing_is_lost_and_lines_stay_bounded(calls):
    t = LogThrottle(burst=2, window_s=10)
    logged: dict[str, list[float]] = {}
    reported: dict[str, int] = {}
    for key, now in sorted(calls, key=lambda c: c[1]):
        n = t.allow(key, now=now)
        if n is not None:
            logged.setdefault(key, []).append(now)
            reported[key] = reported.get(key, 0) + n
    for key in "abc":
        calls_of_key = sum(1 for k, _ in calls if k == key)
        stamps = logged.get(key, [])
        pending = t.allow(key, now=10_000.0)  # a later line reports the rest
        assert len(stamps) + reported.get(key, 0) + pending == calls_of_key
        for i, s in enumerate(stamps):  # any 10 s holds at most two windows' worth
            assert len([x for x in stamps[i:] if x < s + 10]) <= 4


def test_memory_is_bounded():
    t = LogThrottle(burst=1, window_s=60, max_keys=10)
    for i in range(1000):
        t.allow(f"k{i}", now=0)
    assert len(t._windows) == 10
