"""Which remote ICE candidates the SFU uses (media.rtc.ice.IcePolicy): pure logic."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media.rtc.ice import IcePolicy, is_loopback_host
from server.config import Settings
from server.errors import ConfigurationError

PRODUCTION = IcePolicy.from_settings(None, "0.0.0.0")
LOCAL = IcePolicy.from_settings(None, "127.0.0.1")


@pytest.mark.parametrize("address", ["127.0.0.1", "127.8.9.1", "::1", "169.254.10.20",
                                     "fe80::1", "224.0.0.251", "239.1.1.1", "ff02::fb",
                                     "0.0.0.0", "::", "255.255.255.255", "abcd.local",
                                     "::ffff:127.0.0.1", "::ffff:169.254.1.1",
                                     "example.org", ""])
def test_production_default_refuses_local_multicast_and_names(address):
    assert not PRODUCTION.allows(address)


@pytest.mark.parametrize("address", ["10.2.3.4", "192.168.1.20", "172.16.0.9", "100.64.1.1",
                                     "203.0.113.7", "2001:db8::5"])
def test_production_default_allows_routable_and_private(address):
    assert PRODUCTION.allows(address)


def test_a_server_on_loopback_allows_loopback_but_not_link_local():
    assert is_loopback_host("127.0.0.1") and is_loopback_host("::1")
    assert is_loopback_host("localhost") and not is_loopback_host("0.0.0.0")
    assert LOCAL.allows("127.0.0.1") and LOCAL.allows("::1")
    assert not LOCAL.allows("169.254.1.1") and not LOCAL.allows("224.0.0.1")
    assert LOCAL.allows("192.168.1.20")


def test_explicit_networks_are_the_only_ones():
    policy = IcePolicy.from_settings(("10.0.0.0/8", "127.0.0.1/32"), "0.0.0.0")
    assert policy.allows("10.9.9.9") and policy.allows("127.0.0.1")
    assert not policy.allows("127.0.0.2") and not policy.allows("192.168.1.1")
    assert not IcePolicy.from_settings(("0.0.0.0/0",), "x").allows("224.0.0.1")  # never


def test_settings_refuse_a_bad_cidr():
    with pytest.raises(ConfigurationError):
        Settings.from_env({"HUIZHEN_ICE_ALLOWED_NETWORKS": "10.0.0.0/8,not-a-net",
                           "HUIZHEN_SECRET_KEY": "k" * 40})
    s = Settings.from_env({"HUIZHEN_ICE_ALLOWED_NETWORKS": "10.0.0.0/8, 127.0.0.1/32",
                           "HUIZHEN_SECRET_KEY": "k" * 40})
    assert s.ice_allowed_networks == ("10.0.0.0/8", "127.0.0.1/32")


ANSWER = (
    "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
    "a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\n"
    "a=candidate:2 1 udp 2130706431 192.168.1.20 40001 typ host\r\n"
    "a=candidate:3 1 udp 2130706431 1f2e3d.local 40002 typ host\r\n"
    "a=candidate:4 1 udp 1694498815 203.0.113.7 40003 typ srflx raddr 0.0.0.0 rport 0\r\n"
    "a=end-of-candidates\r\n"
)


def test_filter_sdp_drops_exactly_the_refused_candidates():
    out, dropped = PRODUCTION.filter_sdp(ANSWER)
    assert dropped == 2
    assert "127.0.0.1 40000" not in out and ".local" not in out
    assert "192.168.1.20 40001" in out and "203.0.113.7 40003" in out
    assert out.replace("\r\n", "\n").count("\n") == ANSWER.count("\r\n") - 2
    assert LOCAL.filter_sdp(ANSWER) == (ANSWER.replace(
        "a=candidate:3 1 udp 2130706431 1f2e3d.local 40002 typ host\r\n", ""), 1)


@given(st.lists(st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)), max_size=20),
       st.lists(st.text(alphabet="abcdefghij=:/ 0123456789", max_size=30), max_size=10))
def test_filtered_sdp_keeps_other_lines_and_only_allowed_candidates(addresses, others):
    lines = [f"a=candidate:{i} 1 udp 100 {a} {1000 + i} typ host" for i, a in enumerate(addresses)]
    lines += [f"x={o}" for o in others]
    sdp = "".join(line + "\r\n" for line in lines)
    out, dropped = PRODUCTION.filter_sdp(sdp)
    kept = out.split("\r\n")[:-1]
    assert [k for k in kept if k.startswith("x=")] == [f"x={o}" for o in others]
    candidates = [k for k in kept if k.startswith("a=candidate:")]
    assert len(candidates) + dropped == len(addresses)
    for a in addresses:
        ip = ipaddress.ip_address(a)
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        expected = not (ip.is_loopback or ip.is_link_local or ip.is_multicast
                        or ip.is_unspecified or str(ip) == "255.255.255.255"
                        or (ip.version == 4 and ip in ipaddress.ip_network("0.0.0.0/8")))
        assert PRODUCTION.allows(str(a)) == expected, a
