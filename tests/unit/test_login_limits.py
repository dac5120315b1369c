"""Which address a sign-in attempt counts against."""

from __future__ import annotations

import pytest

from server.store.login_limits import address_bucket


@pytest.mark.parametrize(
    ("remote", "bucket"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("::ffff:192.0.2.7", "192.0.2.7"),  # an IPv4 client on a dual-stack socket
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),  # same host's /64
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        (None, "unknown"),
        ("", "unknown"),
        ("not-an-address", "unknown"),
    ],
)
def test_address_bucket(remote: str | None, bucket: str) -> None:
    assert address_bucket(remote) == bucket
