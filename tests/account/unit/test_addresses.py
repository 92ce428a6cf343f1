import dataclasses

import pytest

from services.account.domain.addresses import Address, InvalidAddress, parse_address

LOCAL_64 = "a" * 64
LABEL_63 = "b" * 63
# 64 + 1 + (63 + 1 + 63 + 1 + 61) = 254, the longest accepted address.
LONGEST = f"{LOCAL_64}@{LABEL_63}.{'c' * 63}.{'d' * 61}"


@pytest.mark.parametrize(
    ("text", "local", "domain"),
    [
        ("user@example.jp", "user", "example.jp"),
        ("User@Example.JP", "user", "example.jp"),
        ("a@b.co", "a", "b.co"),
        ("first.last+tag@mail.example.co.jp", "first.last+tag", "mail.example.co.jp"),
        ("a_b-c@x-y.jp", "a_b-c", "x-y.jp"),
        ("_x@1.jp", "_x", "1.jp"),
        ("+x@a.jp", "+x", "a.jp"),
        (f"{LOCAL_64}@example.jp", LOCAL_64, "example.jp"),
        (f"u@{LABEL_63}.jp", "u", f"{LABEL_63}.jp"),
        (LONGEST, LOCAL_64, LONGEST.split("@")[1]),
    ],
)
def test_accepts_safe_addresses(text, local, domain):
    """Ensure an address in the safe subset parses into lowercase parts."""
    assert parse_address(text) == Address(local=local, domain=domain)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "exactly one @"),
        ("user", "exactly one @"),
        ("a@@b.jp", "exactly one @"),
        ("a@b@c.jp", "exactly one @"),
        ("@example.jp", "1 to 64"),
        ("user@", "domain must be 1 to 253"),
        ("user@localhost", "at least two labels"),
        (".user@x.jp", "start or end with a dot"),
        ("user.@x.jp", "start or end with a dot"),
        ("us..er@x.jp", "two dots in a row"),
        ("-user@x.jp", "start with a hyphen"),
        ("us/er@x.jp", "may contain only"),
        ("us\x00er@x.jp", "may contain only"),
        ("us er@x.jp", "may contain only"),
        (" user@x.jp", "may contain only"),
        ('"user"@x.jp', "may contain only"),
        ("user'@x.jp", "may contain only"),
        ("us\\er@x.jp", "may contain only"),
        ("user@x.jp\n", "domain label"),
        ("user@x.jp ", "domain label"),
        ("user@-x.jp", "domain label"),
        ("user@x-.jp", "domain label"),
        ("user@x..jp", "domain label"),
        ("user@.x.jp", "domain label"),
        ("user@x.jp.", "domain label"),
        ("user@x_y.jp", "domain label"),
        ("user@x/y.jp", "domain label"),
        ("user@[127.0.0.1]", "domain label"),
        (f"{'a' * 65}@example.jp", "1 to 64"),
        (f"u@{'b' * 64}.jp", "domain label"),
        (f"u@{'b' * 63}.{'c' * 63}.{'d' * 63}.{'e' * 62}", "domain must be 1 to 253"),
        (LONGEST[:-1] + "dd", "at most 254"),
        ("üser@x.jp", "only ASCII"),
        ("\u212aaro@x.jp", "only ASCII"),  # KELVIN SIGN lowercases to ASCII 'k'
        ("user@ｅxample.jp", "only ASCII"),
    ],
)
def test_refuses_unsafe_addresses(text, reason):
    """Ensure an address outside the safe subset is refused with a message naming the rule."""
    with pytest.raises(InvalidAddress, match=reason):
        parse_address(text)


def test_full_and_str():
    """Ensure an address renders as local@domain."""
    address = parse_address("Taro@Example.JP")
    assert address.full == "taro@example.jp"
    assert str(address) == "taro@example.jp"


def test_invalid_address_is_a_value_error():
    """Ensure callers catching ValueError also catch InvalidAddress."""
    with pytest.raises(ValueError):
        parse_address("not an address")


def test_constructor_validates_too():
    """Ensure an Address built directly cannot bypass the rules."""
    with pytest.raises(InvalidAddress):
        Address(local="a/b", domain="example.jp")


def test_address_is_frozen():
    """Ensure an Address cannot be changed after it is made."""
    address = parse_address("user@example.jp")
    with pytest.raises(dataclasses.FrozenInstanceError):
        address.local = "other"  # type: ignore[misc]


def test_every_broken_rule_is_reported():
    """Ensure an address breaking several rules names all of them."""
    with pytest.raises(InvalidAddress) as caught:
        parse_address("-a..b.@-x")
    message = str(caught.value)
    for reason in ("start or end with a dot", "two dots in a row",
                   "start with a hyphen", "at least two labels", "domain label"):
        assert reason in message
