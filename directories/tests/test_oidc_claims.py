"""How verified claims become an account (directories.oidc.principal_from_claims): the cases a
live provider's tokens cannot show, because this project's provider always sends a verified
address (test_oidc_live.py covers the ones it can)."""
import pytest

from directories.base import OidcConfig
from directories.oidc import jwt_header, principal_from_claims

CONFIG = OidcConfig(issuer_url="https://idp.example", claim_groups="groups")


def principal(claims, **config):
    return principal_from_claims(OidcConfig(**{**CONFIG.__dict__, **config}), claims)


def test_the_username_claim_names_the_account_in_lower_case():
    got = principal({"preferred_username": " Jane@Example.ORG ", "name": "Jane", "email": "jane.doe@example.org"})
    assert got.name == "jane@example.org" and got.description == "Jane" and got.verified
    assert got.emails == ("jane@example.org", "jane.doe@example.org")


def test_a_bare_username_takes_the_configured_domain():
    assert principal({"preferred_username": "jdoe"}, username_domain="corp.example").name == "jdoe@corp.example"
    assert principal({"preferred_username": "jdoe"}, username_domain="@corp.example").name == "jdoe@corp.example"


@pytest.mark.parametrize("claims", [
    {},                                                    # neither claim
    {"preferred_username": "jdoe"},                        # no domain, none configured, no email
    {"preferred_username": ["jane@example.org"]},          # not a string
    {"preferred_username": "", "email": None},
    {"preferred_username": "jane doe@example.org"},        # white space is no address
    {"preferred_username": "@example.org"},
    {"email": "jane@example.org", "email_verified": False},  # an address the provider did not verify
    {"preferred_username": "jdoe", "email": "admin@example.org", "email_verified": False},
])
def test_claims_that_name_no_account_are_refused(claims):
    assert principal(claims) is None


def test_an_unverified_email_is_not_listed_as_an_address():
    got = principal({"preferred_username": "jane@example.org", "email": "admin@example.org", "email_verified": False})
    assert got.name == "jane@example.org" and got.emails == ("jane@example.org",)


@pytest.mark.parametrize("value, expected", [
    (["staff", "ops", "staff", 7, ""], ("staff", "ops")),
    ("staff  ops", ("staff", "ops")),
    (None, ()),
    ({"staff": True}, ()),
])
def test_groups_come_as_a_list_or_a_space_separated_string(value, expected):
    assert principal({"preferred_username": "jane@example.org", "groups": value}).groups == expected


def test_no_groups_claim_configured_means_no_groups():
    assert principal({"preferred_username": "jane@example.org", "groups": ["staff"]}, claim_groups=None).groups == ()


@pytest.mark.parametrize("token", [
    "sw1.abcdef", "abc", "a.b", "a.b.c.d.e", "e30.e30.", "bm90IGpzb24.e30.", "W10.e30.x", "eyJhbGciOjF9.e30.x",
    '{"protected": "e30", "payload": "e30", "signature": ""}', "ey J.e30.x",
])
def test_only_a_compact_jws_with_an_algorithm_counts_as_a_jwt(token):
    assert jwt_header(token) is None


def test_a_compact_jws_header_is_read():
    assert jwt_header("eyJhbGciOiJFUzI1NiJ9.e30.c2ln") == {"alg": "ES256"}
