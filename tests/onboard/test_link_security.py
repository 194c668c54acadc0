"""TC link security: the anti-replay window accepts each sequence number once and nothing
below it; the development link key is public, distinct from the patch key, and refused in
flight; keys are never printed."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onboard.link.link_security import (
    MAC_BYTES,
    LinkKeyRefused,
    ReplayWindow,
    SecurityAssociation,
    check_link_key,
    compute_mac,
    development_link_key,
    mac_ok,
)
from onboard.mission import find_mission
from onboard.patching.patch_format import development_key


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 300), max_size=200), st.integers(1, 70))
def test_the_window_accepts_each_number_at_most_once_and_none_too_old(
        seqs: list[int], size: int) -> None:
    w = ReplayWindow(size)
    accepted: list[int] = []
    for s in seqs:
        highest = max(accepted, default=0)
        fresh = w.fresh(s)
        # the rule, stated directly: positive, never seen, and above or within the window
        assert fresh == (s >= 1 and s not in accepted and s > highest - size)
        if fresh:
            w.record(s)
            accepted.append(s)
    assert w.highest == max(accepted, default=0)


def test_the_window_survives_a_huge_jump() -> None:
    w = ReplayWindow(64)
    w.record(5)
    w.record((1 << 32) - 1)   # a jump that must not build a 4-gigabit integer
    assert w.seen == 1 and not w.fresh(5) and not w.fresh((1 << 32) - 1)
    assert w.fresh((1 << 32) - 2)


def test_the_mac_is_truncated_hmac_sha256_and_checked_in_full() -> None:
    key = bytes(range(32))
    mac = compute_mac(key, b"frame")
    assert len(mac) == MAC_BYTES == 16
    assert mac_ok(key, b"frame", mac)
    assert not mac_ok(key, b"frame", mac[:-1] + bytes([mac[-1] ^ 1]))
    assert not mac_ok(bytes(32), b"frame", mac)


def test_the_development_link_key_is_public_distinct_and_refused_in_flight() -> None:
    corot = find_mission("corot")
    flight = find_mission("corot:flight")
    dev = development_link_key("corot")
    assert dev != development_key("corot") and dev != development_link_key("other")
    check_link_key(corot, dev)                      # a demo profile takes it
    with pytest.raises(LinkKeyRefused, match="flight profile: it refuses the development "
                                             "link key"):
        check_link_key(flight, dev)
    check_link_key(flight, bytes(range(32)))        # the mission's own key
    with pytest.raises(LinkKeyRefused, match="at least 16 bytes"):
        check_link_key(corot, bytes(8))


def test_an_association_never_prints_its_key_and_refuses_reserved_spis() -> None:
    sa = SecurityAssociation(1, bytes(range(32)))
    assert bytes(range(32)).hex() not in repr(sa) and "key" not in repr(sa)
    for spi in (0, 0xFFFF):
        with pytest.raises(ValueError, match="SPI"):
            SecurityAssociation(spi, bytes(32))
    with pytest.raises(ValueError, match="16 bytes"):
        dataclasses.replace(sa, key=bytes(4))
