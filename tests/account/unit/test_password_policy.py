import pytest

from services.account.domain.password_policy import Violation, check_password
from shared.plans import PasswordPolicyName

STRONG = PasswordPolicyName.STRONG
BASIC = PasswordPolicyName.BASIC
ADDRESS = "taro@example.jp"
# Written out from SPEC rather than imported, so a typo in the code cannot hide.
SPEC_STRONG_SYMBOLS = ["#", "(", ")", "+", "-", ".", "[", "]", "{", "}", "!", "<", ">", "_", ":", "*", "$", "@", "%", "^", "&", ",", "~"]


def codes(password: str, *, policy: PasswordPolicyName, address: str = ADDRESS) -> set[str]:
    return {v.code for v in check_password(password, policy=policy, address=address)}


# --- strong ------------------------------------------------------------------

@pytest.mark.parametrize(
    "password",
    [
        "Abcdefgh12#x",               # 12, the shortest allowed
        "Aa1#" + "a" * 124,           # 128, the longest allowed
        "Correct-Horse9Battery",
        "Abcdef123456#",              # digit runs are a basic-only rule
        "taro@example.jp1A",          # equality with the address is a basic-only rule
    ],
)
def test_strong_accepts_good_passwords(password):
    """Ensure a password meeting every strong rule is accepted."""
    assert check_password(password, policy=STRONG, address=ADDRESS) == ()


@pytest.mark.parametrize("symbol", SPEC_STRONG_SYMBOLS)
def test_strong_accepts_each_allowed_symbol(symbol):
    """Ensure every symbol listed in the SPEC counts as the required symbol."""
    assert check_password("Abcdefgh123" + symbol, policy=STRONG, address=ADDRESS) == ()


@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("Abcdefg12#x", "too_short"),               # 11
        ("Aa1#" + "a" * 125, "too_long"),           # 129
        ("ABCDEFGH123#", "missing_lowercase"),
        ("abcdefgh123#", "missing_uppercase"),
        ("Abcdefghijk#", "missing_digit"),
        ("Abcdefghi123", "missing_symbol"),
        ("Abcdefgh 123#", "forbidden_character"),   # space
        ("Abcdefgh\t123#", "forbidden_character"),
        ('Abcdefgh"123#', "forbidden_character"),
        ("Abcdefgh'123#", "forbidden_character"),
        ("Abcdefgh/123#", "forbidden_character"),
        ("Abcdefgh\\123#", "forbidden_character"),
        ("Abcdefgh=123#", "forbidden_character"),
        ("Abcdefgh?123#", "forbidden_character"),
        ("Abcdefgh|123#", "forbidden_character"),
        ("Abcdefgh;123#", "forbidden_character"),
        ("Abcdefgh`123#", "forbidden_character"),
        ("Abcdefgh123#ａ", "non_ascii_character"),  # full-width letter
        ("Abcdefgh123#１", "non_ascii_character"),  # full-width digit
        ("Abcdefgh123#\u3000", "non_ascii_character"),  # full-width space
        ("Abcdefgh123#–", "non_ascii_character"),  # en dash, as printed in the seed
        ("Abcdefgh123#é", "non_ascii_character"),
    ],
)
def test_strong_refuses_each_rule_alone(password, code):
    """Ensure a password breaking exactly one strong rule reports only that rule."""
    assert codes(password, policy=STRONG) == {code}


def test_strong_en_dash_is_not_the_hyphen_symbol():
    """Ensure the seed's typeset en dash (U+2013) is not taken for the ASCII hyphen."""
    assert codes("Abcdefgh123–", policy=STRONG) == {"non_ascii_character", "missing_symbol"}


def test_strong_reports_every_broken_rule():
    """Ensure a password breaking several strong rules reports all of them at once."""
    assert codes("abc dé", policy=STRONG) == {
        "too_short", "forbidden_character", "non_ascii_character",
        "missing_uppercase", "missing_digit", "missing_symbol",
    }


def test_strong_empty_password():
    """Ensure an empty password is refused under the strong policy."""
    assert codes("", policy=STRONG) == {
        "too_short", "missing_lowercase", "missing_uppercase", "missing_digit",
        "missing_symbol",
    }


# --- basic -------------------------------------------------------------------

@pytest.mark.parametrize(
    "password",
    [
        "abc12345",                # 8, the shortest allowed; a run of 5 digits
        "abcdefgh12345-_.",        # 16, the longest allowed, every basic symbol
        "A1-_.xyz",
        "12345a67890",             # two runs of 5 digits
        "taro2024",                # not the local part of ADDRESS
        "example1.jp",             # not the domain of ADDRESS
    ],
)
def test_basic_accepts_good_passwords(password):
    """Ensure a password meeting every basic rule is accepted."""
    assert check_password(password, policy=BASIC, address=ADDRESS) == ()


@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("abc1234", "too_short"),                  # 7
        ("abcdefgh12345-_.x", "too_long"),         # 17
        ("12345.678", "missing_letter"),
        ("abcdefgh", "missing_digit"),
        ("abc123456", "six_consecutive_digits"),
        ("a123456789", "six_consecutive_digits"),
        ("123456abc", "six_consecutive_digits"),
        ("abc 1234", "forbidden_character"),
        ("abc1234#", "forbidden_character"),
        ("abc1234!", "forbidden_character"),
        ("abc1234+", "forbidden_character"),
        ("abc@1234", "forbidden_character"),
        ("abc1234ａ", "non_ascii_character"),
        ("abc1234–", "non_ascii_character"),
    ],
)
def test_basic_refuses_each_rule_alone(password, code):
    """Ensure a password breaking exactly one basic rule reports only that rule."""
    assert codes(password, policy=BASIC) == {code}


@pytest.mark.parametrize("password", ["taro2024", "TARO2024", "Taro2024"])
def test_basic_refuses_local_part_any_case(password):
    """Ensure a password equal to the account name, in any case, is refused."""
    assert codes(password, policy=BASIC, address="taro2024@example.jp") == {
        "same_as_local_part"
    }


@pytest.mark.parametrize("password", ["mail2024.jp", "MAIL2024.JP", "Mail2024.Jp"])
def test_basic_refuses_domain_any_case(password):
    """Ensure a password equal to the domain name, in any case, is refused."""
    assert codes(password, policy=BASIC, address="taro@mail2024.jp") == {"same_as_domain"}


@pytest.mark.parametrize("password", ["t1@b2.jp", "T1@B2.JP"])
def test_basic_refuses_full_address_any_case(password):
    """Ensure a password equal to the full address, in any case, is refused."""
    # '@' is never allowed in a basic password, so this rule cannot fire alone.
    assert codes(password, policy=BASIC, address="t1@b2.jp") == {
        "same_as_address", "forbidden_character"
    }


def test_basic_compares_with_an_uppercase_address():
    """Ensure the comparison ignores case on the address side too."""
    assert codes("taro2024", policy=BASIC, address="TARO2024@Example.JP") == {
        "same_as_local_part"
    }


def test_basic_full_width_digits_are_not_digits():
    """Ensure full-width digits neither satisfy the digit rule nor count as a digit run."""
    assert codes("abcd１２３４５６", policy=BASIC) == {
        "non_ascii_character", "missing_digit"
    }


def test_basic_reports_every_broken_rule():
    """Ensure a password breaking several basic rules reports all of them at once."""
    assert codes("123456 ", policy=BASIC) == {
        "too_short", "forbidden_character", "missing_letter", "six_consecutive_digits",
    }


# --- both --------------------------------------------------------------------

@pytest.mark.parametrize("policy", list(PasswordPolicyName))
def test_messages_never_echo_the_password(policy):
    """Ensure no violation message contains the password itself."""
    password = "Qz 9Qz 9Qz 9Qz 9Qz 9 ～"
    violations = check_password(password, policy=policy, address=ADDRESS)
    assert violations
    for violation in violations:
        assert isinstance(violation, Violation)
        assert violation.message
        assert "Qz" not in violation.message


@pytest.mark.parametrize("policy", list(PasswordPolicyName))
def test_violations_come_in_a_stable_order(policy):
    """Ensure the same password always yields the same violations in the same order."""
    first = check_password("x", policy=policy, address=ADDRESS)
    assert first == check_password("x", policy=policy, address=ADDRESS)
    assert len({v.code for v in first}) == len(first)
