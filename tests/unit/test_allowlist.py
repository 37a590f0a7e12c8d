"""The outbound allowlist's matching: names, subdomains, addresses, networks."""

from __future__ import annotations

import pytest

from task_scheduler.domain.allowlist import DEFAULT_ALLOWLIST, Allowlist, check_entry


def test_the_default_allows_this_machine_only():
    allowlist = Allowlist(DEFAULT_ALLOWLIST)
    assert allowlist.allows_name("localhost") and allowlist.allows_name("LOCALHOST.")
    assert allowlist.allows_address("127.0.0.1") and allowlist.allows_address("127.8.9.10")
    assert allowlist.allows_address("::1") and allowlist.allows_address("::ffff:127.0.0.1")
    for address in ("10.0.0.1", "169.254.169.254", "::ffff:10.0.0.1", "fe80::1%eth0", "not-an-address"):
        assert not allowlist.allows_address(address), address
    assert not allowlist.allows_name("fleet.example.com")


def test_a_wildcard_trusts_subdomains_but_not_the_domain_or_lookalikes():
    allowlist = Allowlist(["*.example.com"])
    assert allowlist.allows_name("fleet.example.com") and allowlist.allows_name("a.b.example.com")
    assert not allowlist.allows_name("example.com")
    assert not allowlist.allows_name("badexample.com")
    assert not allowlist.allows_name("example.com.evil.org")


def test_addresses_in_a_url_are_refused_before_anything_is_resolved():
    allowlist = Allowlist(["10.0.0.0/8", "fleet.example.com"])
    assert allowlist.refusal("10.20.30.40") is None
    assert allowlist.refusal("[::1]") == "[::1] is not in outbound_allowlist"
    assert allowlist.refusal("127.0.0.1") == "127.0.0.1 is not in outbound_allowlist"
    assert allowlist.refusal("fleet.example.com") is None  # names are checked when resolved
    assert allowlist.refusal(None) == "the URL has no host"


def test_star_allows_everything():
    allowlist = Allowlist(["*"])
    assert allowlist.allows_name("anything.org") and allowlist.allows_address("8.8.8.8")


@pytest.mark.parametrize("entry", ["", "http://host", "a..b", "host/path", "-*.x", "exa mple.com"])
def test_a_malformed_entry_is_refused(entry):
    with pytest.raises(ValueError):
        check_entry(entry)
