"""Address classes follow Python's ipaddress; registered domains follow the offline PSL."""

import polars as pl
import pytest

from detectors.base.domains import host_of, registered_domain, registered_domains
from detectors.base.netclass import classify_ip, normalize_ip


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("8.8.8.8", "Public"),
        ("10.0.0.1", "Private"),
        ("127.0.0.1", "Loopback"),
        ("169.254.10.1", "LinkLocal"),
        ("0.0.0.0", "Unspecified"),
        ("224.0.0.251", "Multicast"),
        ("100.64.0.1", "Reserved"),
        ("::ffff:8.8.8.8", "Public"),
        ("::ffff:192.168.1.1", "Private"),
        ("fe80::1", "LinkLocal"),
        ("2606:4700::1111", "Public"),
        ("not-an-ip", "Invalid"),
        ("", "Invalid"),
    ],
)
def test_classify_ip(address, expected):
    assert classify_ip(address) == expected


def test_ipv4_mapped_ipv6_normalises_to_ipv4():
    assert normalize_ip("::ffff:1.2.3.4") == "1.2.3.4"
    assert normalize_ip("2001:DB8::1") == "2001:db8::1"
    assert normalize_ip("junk") == "junk"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://a.b.example.co.uk/path?q=1", "example.co.uk"),
        ("login.microsoftonline.com", "microsoftonline.com"),
        ("EVIL.Example.COM.", "example.com"),
        ("http://1.2.3.4:8080/x", None),
        ("co.uk", None),
        ("", None),
    ],
)
def test_registered_domain(value, expected):
    assert registered_domain(value) == expected


def test_host_of_url_without_scheme():
    assert host_of("cdn.example.net:8443/beacon") == "cdn.example.net"


def test_registered_domains_vectorised_keeps_nulls():
    series = pl.Series(["a.example.com", None, "b.example.com"])
    assert registered_domains(series).to_list() == ["example.com", None, "example.com"]


def test_the_quicker_parse_of_the_suffix_list_equals_the_librarys():
    # _parsed_list adds the punycode forms of the non-ASCII rules itself and lets the
    # library parse without encoding: the rule set, the longest rule and the answers
    # must be the library's own parse's, for ASCII, Unicode and punycode names alike.
    from publicsuffixlist import PublicSuffixList

    from detectors.base.domains import _parsed_list

    ours, theirs = _parsed_list(), PublicSuffixList()
    assert ours._publicsuffix == theirs._publicsuffix
    assert ours._maxlabel == theirs._maxlabel
    names = [
        "a.b.example.co.uk",
        "www.example.com",
        "co.uk",
        "x.city.kawasaki.jp",  # an exception rule (!city.kawasaki.jp)
        "a.b.kawasaki.jp",  # a wildcard rule (*.kawasaki.jp)
        "shop.例え.jp",
        "shop.xn--r8jz45g.jp",
        "www.食狮.中国",
        "www.xn--85x722f.xn--fiqs8s",  # the same name in punycode
        "host.unknown-tld-zz",
    ]
    assert [ours.privatesuffix(n) for n in names] == [theirs.privatesuffix(n) for n in names]
    assert [ours.privatesuffix(n) for n in names][:2] == ["example.co.uk", "example.com"]
    assert ours.privatesuffix("www.xn--85x722f.xn--fiqs8s") == "xn--85x722f.xn--fiqs8s"
