"""directories.filters: the strict RFC 4515 check behind the Directory's filter properties, and
the escaping that keeps a login name from widening a search."""
from __future__ import annotations

import pytest

from directories import filters


@pytest.mark.parametrize("template", [
    "(mail=?)",
    "(|(mail=?)(mailAlias=?))",
    "(&(objectClass=inetOrgPerson)(mail=?))",
    "(|(&(objectClass=inetOrgPerson)(|(mail=?)(mailAlias=?)))(&(objectClass=groupOfNames)(|(mail=?)(mailAlias=?))))",
    "(&(objectClass=user)(sAMAccountName=?)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))",
    "(&(objectClass=user)(sAMAccountName={local}))",
    "(member:1.2.840.113556.1.4.1941:=?)",
    "(cn:dn:=?)",
    "(mail=*?*)",
    "(mail=pre?)",
    "(mail;lang-en>=?)",
    "(2.5.4.3=?)",
    "(&" * 20 + "(mail=?)" + ")" * 20,
])
def test_accepted(template):
    assert filters.validate_filter(template) is None


@pytest.mark.parametrize("template", [
    "(&(mail=?)",             # unbalanced
    "(mail=?))",              # trailing text
    "mail=?",                 # no parentheses
    "(mail=?)(uid=?)",        # two filters
    "(&)",                    # empty and, and no ?
    "(objectClass=person)",   # no ?: the same entry for everyone
    "(=?)",                   # no attribute
    "(ma il=?)",
    "(mail~?)",
    "(mail=\\zz?)",           # bad escape
    "(mail=a(b?)",            # unescaped parenthesis
    "(mail>=*?)",             # a star only in equality and substrings
    "(:=?)",                  # extensible match without attribute or rule
    "(uid={nope})",           # unknown placeholder
    "(" * 100 + "mail=?" + ")" * 100,
    "(&" * 5000 + "(mail=?)" + ")" * 5000,  # deeper than any real filter: refused, not a crash
])
def test_refused(template):
    assert filters.validate_filter(template)


def test_substitution_escapes_the_value():
    assert filters.render_filter("(mail=?)", "jane@example.org") == "(mail=jane@example.org)"
    hostile = filters.render_filter("(&(objectClass=person)(mail=?))", "*)(uid=*")
    assert hostile == "(&(objectClass=person)(mail=\\2a\\29\\28uid=\\2a))"
    assert filters.render_filter("(uid={local})", "a*@example.org") == "(uid=a\\2a)"
    assert filters.escape_filter_value("a\\b\x00") == "a\\5cb\\00"
