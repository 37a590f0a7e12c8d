"""The outbound allowlist's matching (names, subdomains, addresses, networks) and the one
reading of a host that both the check and the connection use."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from task_scheduler.domain.allowlist import (
    DEFAULT_ALLOWLIST,
    Allowlist,
    check_entry,
    normalise_host,
    refused_urls,
)
from task_scheduler.transports.allowlist import NotAllowed, outbound_url


def test_the_default_allows_this_machine_only():
    allowlist = Allowlist(DEFAULT_ALLOWLIST)
    assert allowlist.allows_name("localhost") and allowlist.allows_name("LOCALHOST.")
    assert allowlist.allows_address("127.0.0.1") and allowlist.allows_address("127.255.255.254")
    assert not allowlist.allows_address("126.255.255.255") and not allowlist.allows_address("128.0.0.0")
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


def test_entries_are_trimmed_and_a_network_may_name_any_of_its_addresses():
    assert check_entry(" LocalHost. ") == "localhost"
    with pytest.raises(ValueError, match="an empty entry"):
        check_entry("  ")
    assert Allowlist(["10.1.2.3/8"]).allows_address("10.9.9.9")


def test_star_allows_everything():
    allowlist = Allowlist(["*"])
    assert allowlist.allows_name("anything.org") and allowlist.allows_address("8.8.8.8")


@pytest.mark.parametrize("entry", ["", "http://host", "a..b", "host/path", "-*.x", "exa mple.com"])
def test_a_malformed_entry_is_refused(entry):
    with pytest.raises(ValueError):
        check_entry(entry)


# -- one reading of a host -----------------------------------------------------------------

# 127.0.0.2 as people (and attackers) write it: each form is read as the address it reaches.
HOSTILE_127_0_0_2 = [
    "\uff11\uff12\uff17.\uff10.\uff10.\uff12",  # fullwidth digits
    "\u2460\u2461\u2466.\u24ea.\u24ea.\u2461",  # circled digits
    "127\u30020\u30020\u30022",  # ideographic full stops
    "127\uff0e0\uff0e0\uff0e2",  # fullwidth full stops
    "127\uff610\uff610\uff612",  # halfwidth ideographic full stops
    "127.0.0.2.",
    "127.0.0.2\u3002",
    "0x7f.2",
    "0X7F.0x0.0.02",
    "127.2",
    "127.0.2",
    "2130706434",
    "0x7f000002",
    "0177.0.0.2",
    "\uff10\uff58\uff17\uff46.\uff12",  # 0x7f.2 in fullwidth
]


@pytest.mark.parametrize("host", HOSTILE_127_0_0_2)
def test_every_form_of_an_address_is_read_as_that_address(host):
    assert normalise_host(host) == "127.0.0.2"
    assert Allowlist(["127.0.0.1"]).refusal(host) == f"{host} (127.0.0.2) is not in outbound_allowlist"
    assert Allowlist(["127.0.0.2"]).refusal(host) is None


@pytest.mark.parametrize(
    "form", ["0x7f.1", "127.1", "127.0.1", "2130706433", "0177.0.0.1", "0X7F.0x00000001", "4294967295"]
)
def test_numeric_forms_are_read_as_the_resolver_reads_them(form):
    assert ipaddress.ip_address(normalise_host(form)).packed == socket.inet_aton(form)


@pytest.mark.parametrize(
    ("form", "address"),
    [
        ("1.16777215", "1.255.255.255"),
        ("1.2.65535", "1.2.255.255"),
        ("0xff.0xffffff", "255.255.255.255"),
        ("0", "0.0.0.0"),
        ("00", "0.0.0.0"),
    ],
)
def test_the_last_part_fills_the_bytes_left(form, address):
    assert normalise_host(form) == address


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("1.16777216", "out of range"),
        ("1.2.65536", "out of range"),
        ("4294967296", "out of range"),
        ("0x100.0", "out of range"),
        ("256.0.0.1", "out of range"),
        ("1.256.0.1", "out of range"),  # not 2.0.0.1
        ("1.2.3.256", "out of range"),
        ("1.2.3.4.5", "ends in a number"),
        ("1.2.3.4.0", "ends in a number"),
        ("1.2.3.08", "ends in a number"),  # 08 is no octal number
        ("0x.0.0.1", "ends in a number"),
        ("00x1.0.0.1", "ends in a number"),
        ("foo.123", "ends in a number"),  # no name ends in a number
        ("foo.0x1", "ends in a number"),
    ],
)
def test_a_host_that_ends_in_a_number_but_is_no_address_is_refused(host, reason):
    with pytest.raises(ValueError, match=f"^{reason}" if reason == "ends in a number" else reason):
        normalise_host(host)
    assert "not an IPv4 address" in Allowlist(["*"]).refusal(host)


@pytest.mark.parametrize(
    ("host", "normalised"),
    [
        ("[::1]", "::1"),
        ("0:0:0:0:0:0:0:1", "::1"),
        ("[::FFFF:127.0.0.2]", "::ffff:7f00:2"),
        ("[2001:DB8::0:1]", "2001:db8::1"),
    ],
)
def test_ipv6_addresses_come_back_in_their_standard_form(host, normalised):
    assert normalise_host(host) == normalised


def test_an_ipv4_mapped_address_is_checked_as_the_ipv4_address():
    allowlist = Allowlist(["127.0.0.1"])
    assert (
        allowlist.refusal("[::ffff:127.0.0.2]")
        == "[::ffff:127.0.0.2] (::ffff:7f00:2) is not in outbound_allowlist"
    )
    assert allowlist.refusal("[::FFFF:7f00:1]") is None


@pytest.mark.parametrize(
    ("host", "normalised"),
    [
        ("Fleet.Example.COM", "fleet.example.com"),
        ("fleet.example.com.", "fleet.example.com"),
        ("B\u00fccher.DE", "xn--bcher-kva.de"),
        ("XN--BCHER-KVA.de", "xn--bcher-kva.de"),
        ("\uff41\uff42\uff43\uff0e\uff43\uff4f\uff4d", "abc.com"),  # fullwidth letters
        ("\u24b6\u24b7.example", "ab.example"),  # circled letters
        ("my_service", "my_service"),  # a container's name
        ("10.fleet.example", "10.fleet.example"),  # a number may start a name
        ("127.0.0.1_0", "127.0.0.1_0"),  # 1_0 is no number to a resolver
        ("0x7f.0.0.1g", "0x7f.0.0.1g"),
        ("a" * 63 + ".example", "a" * 63 + ".example"),
        (".".join(["a" * 63] * 3 + ["b" * 61]), ".".join(["a" * 63] * 3 + ["b" * 61])),  # 253 characters
    ],
)
def test_names_come_back_as_lower_case_ascii(host, normalised):
    assert normalise_host(host) == normalised


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("e\u200bvil.com", "invisible"),  # UTS-46 would delete the zero-width space
        ("e\u00advil.com", "invisible"),  # and the soft hyphen
        ("a..b", "empty label"),
        ("a\uff0fb.com", "international"),  # a fullwidth solidus maps to /
        ("a\uff1a80", "international"),  # a fullwidth colon maps to :
        ("%31%32%37.0.0.1", "label"),
        ("a b", "label"),
        ("xn--99999999999", "not valid punycode"),
        ("a" * 64 + ".example", "label"),
        (".".join(["a" * 63] * 3 + ["b" * 62]), "longer than 253"),
        ("fe80::1%eth0", "zone is not allowed"),
        ("1::2::3", "not an IPv6 address"),
    ],
)
def test_a_host_that_cannot_be_read_is_refused_saying_why(host, reason):
    with pytest.raises(ValueError, match=reason):
        normalise_host(host)
    assert reason in Allowlist(["*"]).refusal(host)


def test_the_fullwidth_metadata_address_is_refused_by_the_default():
    assert (
        Allowlist(DEFAULT_ALLOWLIST)
        .url_refusal(
            "http://\uff11\uff16\uff19.\uff12\uff15\uff14.\uff11\uff16\uff19.\uff12\uff15\uff14/latest"
        )
        .endswith("(169.254.169.254) is not in outbound_allowlist")
    )


def test_entries_are_read_as_hosts_are():
    allowlist = Allowlist(["B\u00fccher.de", "*.Example.COM.", "0x7f.1", "10.0.0.0/8"])
    assert allowlist.allows_name("xn--bcher-kva.de") and allowlist.allows_name("B\u00dcCHER.de")
    assert allowlist.allows_name("fleet.\uff45xample.com")
    assert allowlist.refusal("127.0.0.1") is None and allowlist.refusal("127.1") is None
    assert allowlist.refusal("127.0.0.2") is not None
    assert check_entry("*.B\u00fccher.de") == "*.xn--bcher-kva.de"
    with pytest.raises(ValueError, match="wildcard"):
        check_entry("*.127.0.0.1")


def test_a_url_is_called_with_its_host_normalised():
    allowlist = Allowlist(["127.0.0.1", "xn--bcher-kva.de"])
    url = outbound_url(allowlist, "http://\uff11\uff12\uff17.\uff10.\uff10.\uff11:8080/a%20b/c?x=1&y=%41")
    assert (url.raw_host, url.port, url.raw_path, url.raw_query_string) == (
        "127.0.0.1",
        8080,
        "/a%20b/c",
        "x=1&y=A",
    )
    assert outbound_url(allowlist, "https://B\u00fccher.DE./x").raw_host == "xn--bcher-kva.de"
    assert str(outbound_url(None, "ws://[::FFFF:127.0.0.2]:9/ws")) == "ws://[::ffff:7f00:2]:9/ws"
    for refused in (
        "http://\uff11\uff12\uff17.\uff10.\uff10.\uff12/",
        "http://0x7f.2/",
        "http://e\u200bvil.com/",
    ):
        with pytest.raises(NotAllowed):
            outbound_url(allowlist, refused)


def test_each_refused_url_is_named_by_its_field():
    urls = [
        (("a",), "http://127.0.0.1/"),
        (("b",), "http://0x7f.2/"),
        (("c",), "http://[::1/"),
        (("d",), "http://x.example/"),
    ]
    assert refused_urls(Allowlist(["127.0.0.1"]), urls) == [
        (("b",), "0x7f.2 (127.0.0.2) is not in outbound_allowlist"),
        (("c",), "not a valid URL: Invalid IPv6 URL"),
    ]
