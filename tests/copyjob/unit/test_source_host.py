"""The source host check: every private address refused in every spelling, names resolved once
and checked, the allow-list the only way round it."""

import ipaddress

import pytest

from services.copyjob.domain.source_host import HostRefused, check, check_all, ip_literal, parse_host

LOOPBACK = ipaddress.ip_address("127.0.0.1")


@pytest.mark.parametrize("spelling", ["127.0.0.1", "127.1", "0x7f000001", "2130706433", "0177.0.0.1", "0x7f.1",
                                      "::ffff:127.0.0.1", "[::ffff:127.0.0.1]", "127.000.000.001", "127.0.0.1."])
def test_every_spelling_of_loopback_is_read_as_loopback_and_refused(spelling):
    source = parse_host(spelling)
    assert source.literal is not None and source.literal.is_loopback
    with pytest.raises(HostRefused, match="loopback"):
        check(source.literal)


@pytest.mark.parametrize(("address", "reason"), [
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("192.168.1.1", "private"), ("169.254.169.254", "metadata"),
    ("169.254.1.1", "link-local"), ("224.0.0.1", "multicast"), ("0.0.0.0", "unspecified"), ("::1", "loopback"),
    ("fe80::1", "link-local"), ("fc00::1", "private"), ("fd00:ec2::254", "metadata"), ("100.100.100.200", "metadata"),
    ("240.0.0.1", "reserved"), ("::", "unspecified"), ("2002:7f00:1::", "tunnel"), ("2002:7f00:1::", "loopback"),
    ("100.64.0.1", "CGNAT"), ("100.127.255.254", "CGNAT"), ("192.0.0.9", "IETF"), ("198.18.0.1", "benchmarking"),
    ("192.0.2.1", "documentation"), ("203.0.113.7", "documentation"), ("255.255.255.255", "reserved"),
    ("64:ff9b::a00:1", "10.0.0.1, which is private"), ("64:ff9b::7f00:1", "loopback"), ("64:ff9b:1::1", "local-use"),
    ("2001::1", "Teredo"), ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"), ("2001:db8::1", "documentation"),
    ("3fff::1", "documentation"), ("fec0::1", "reserved"), ("100::1", "discard"), ("::a00:1", "reserved"),
    ("2002:a9fe:a9fe::", "metadata"), ("::ffff:100.64.0.1", "CGNAT"),
])
def test_private_and_special_addresses_are_refused_naming_why(address, reason):
    with pytest.raises(HostRefused, match=reason):
        check(ip_literal(address))


def test_public_addresses_pass_and_the_allow_list_lets_a_private_one_through():
    check(ipaddress.ip_address("8.8.8.8"))
    check(ipaddress.ip_address("2001:4860:4860::8888"))
    check(ipaddress.ip_address("64:ff9b::808:808"))  # NAT64 to 8.8.8.8
    check(ipaddress.ip_address("2002:808:808::1"))  # 6to4 of 8.8.8.8
    check(LOOPBACK, allowed=[ipaddress.ip_network("127.0.0.1/32")])
    with pytest.raises(HostRefused):
        check(ipaddress.ip_address("127.0.0.2"), allowed=[ipaddress.ip_network("127.0.0.1/32")])


def test_a_name_is_checked_on_every_address_it_resolves_to():
    assert parse_host("IMAP.Example.COM.").host == "imap.example.com"
    assert parse_host("imap.example.com").literal is None
    with pytest.raises(HostRefused, match="private"):
        check_all([ipaddress.ip_address("93.184.216.34"), ipaddress.ip_address("10.0.0.1")])
    with pytest.raises(HostRefused, match="no address"):
        check_all([])


@pytest.mark.parametrize("bad", ["", "a" * 254, "imap example.com", "imap_x.example.com", "-imap.example.com",
                                 "imap.example.com/x", "user@imap.example.com", "ｉｍａｐ.example.com", "1.2.3.4.5", "0x7g.1",
                                 "imap.example.com:993", "localhost\n"])
def test_what_is_no_host_name_is_refused(bad):
    try:
        source = parse_host(bad)
    except HostRefused:
        return
    assert bad.strip() == "localhost" or source.literal is None
    if bad.strip() == "localhost":
        assert source.host == "localhost"
