"""Scripts × messages -> actions: the RFC examples first, then each command and test."""
from __future__ import annotations

import pytest

from sieve import (
    Discard, Envelope, FileInto, Keep, Limits, Message, Redirect, Reject, Vacation, evaluate, parse,
)

PLAIN = (
    b"From: Coyote <coyote@desert.example.org>\r\n"
    b"To: me@example.com, roadrunner@acme.example.com\r\n"
    b"Cc: team@example.com\r\n"
    b"Subject: I have a present for you\r\n"
    b"Message-ID: <m1@desert.example.org>\r\n"
    b"X-Caffeine: C8H10N4O2\r\n"
    b"\r\n"
    b"Look, I'm sorry about the whole anvil thing, and I'd\r\n"
    b"really like to make it up to you.\r\n"
)
SPAM = (
    b"From: promo@spam.example.net\r\nTo: someone@elsewhere.example\r\n"
    b"Subject: Make MONEY fast!!! at home\r\n\r\nMAKE MONEY FAST now\r\n"
)
LIST = (
    b"From: Alice <alice@example.org>\r\nTo: acme-users@lists.example.org\r\nCc: me@example.com\r\n"
    b"List-ID: Acme users <acme-users.lists.example.org>\r\nPrecedence: list\r\n"
    b"Subject: [acme-users] [fwd] version 1.0 is out\r\n\r\nhello\r\n"
)
MULTIPART = (
    b"From: bob@example.org\r\nTo: me@example.com\r\nSubject: =?utf-8?q?caf=C3=A9_menu?=\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=XX\r\n\r\n"
    b"--XX\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"Caf=E9 au lait, 2 euros\r\n"
    b"--XX\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    b"<html><body><p>Secret <b>discount</b> code</p><script>ignored()</script></body></html>\r\n"
    b"--XX--\r\n"
)
ME = Envelope(mail_from="coyote@desert.example.org", rcpt_to="me@example.com")

RFC5228_EXAMPLE = """
# RFC 5228 §9, the complete example
require ["fileinto"];
if header :is "Sender" "owner-ietf-mta-filters@imc.org"
        { fileinto "filter"; }
elsif address :DOMAIN :is ["From", "To"] "example.com"
        { keep; }
elsif anyof (NOT address :all :contains ["To", "Cc", "Bcc"] "me@example.com",
             header :matches "subject" ["*make*money*fast*", "*university*dipl*mas*"])
        { fileinto "spam"; }
else
        { fileinto "personal"; }
"""

CASES = [
    # (name, script, message, envelope, expected actions)
    ("empty script keeps", "", PLAIN, ME, [Keep(implicit=True)]),
    ("rfc5228 §9: domain example.com -> keep", RFC5228_EXAMPLE, PLAIN, ME, [Keep()]),
    ("rfc5228 §9: spam", RFC5228_EXAMPLE, SPAM, ME, [FileInto("spam")]),
    ("rfc5228 §9: sender", RFC5228_EXAMPLE,
     b"Sender: owner-ietf-mta-filters@imc.org\r\nFrom: x@y.example\r\n\r\nhi", ME, [FileInto("filter")]),
    ("rfc5228 §9: personal", RFC5228_EXAMPLE,
     b"From: x@y.example\r\nTo: me@example.com.au\r\nSubject: lunch\r\n\r\nhi", ME, [FileInto("personal")]),
    ("discard cancels implicit keep", "discard;", PLAIN, ME, [Discard()]),
    ("stop ends the script", 'require "fileinto"; stop; fileinto "never";', PLAIN, ME, [Keep(implicit=True)]),
    ("fileinto :copy keeps the implicit keep", 'require ["fileinto","copy"]; fileinto :copy "Archive";',
     PLAIN, ME, [FileInto("Archive", copy=True), Keep(implicit=True)]),
    ("same fileinto twice is done once", 'require "fileinto"; fileinto "A"; fileinto "A";', PLAIN, ME,
     [FileInto("A")]),
    ("redirect", 'redirect "other@example.net";', PLAIN, ME, [Redirect("other@example.net")]),
    ("redirect :copy", 'require "copy"; redirect :copy "other@example.net";', PLAIN, ME,
     [Redirect("other@example.net", copy=True), Keep(implicit=True)]),
    ("reject", 'require "reject"; if header :contains "subject" "money" { reject "no thanks"; }', SPAM, ME,
     [Reject("no thanks")]),
    ("ereject", 'require "ereject"; ereject "go away";', SPAM, ME, [Reject("go away", extended=True)]),
    ("size :over", 'if size :over 100 { discard; }', PLAIN, ME, [Discard()]),
    ("size :under 1K", 'if size :under 1K { discard; }', PLAIN, ME, [Discard()]),
    ("size :over 1M is false", 'if size :over 1M { discard; }', PLAIN, ME, [Keep(implicit=True)]),
    ("exists all named", 'if exists ["X-Caffeine", "From"] { discard; }', PLAIN, ME, [Discard()]),
    ("exists one missing", 'if exists ["X-Caffeine", "X-Nope"] { discard; }', PLAIN, ME, [Keep(implicit=True)]),
    ("header default comparator is case-blind", 'if header :is "SUBJECT" "i HAVE A PRESENT FOR YOU" { discard; }',
     PLAIN, ME, [Discard()]),
    ("i;octet is case-sensitive", 'if header :comparator "i;octet" :contains "subject" "PRESENT" { discard; }',
     PLAIN, ME, [Keep(implicit=True)]),
    ("address :localpart", 'if address :localpart :is "from" "coyote" { discard; }', PLAIN, ME, [Discard()]),
    ("address :domain on a list header", 'if address :domain :is "to" "acme.example.com" { discard; }',
     PLAIN, ME, [Discard()]),
    ("address ignores the display name", 'if address :is "from" "Coyote" { discard; }', PLAIN, ME,
     [Keep(implicit=True)]),
    ("envelope from", 'require "envelope"; if envelope :domain :is "from" "desert.example.org" { discard; }',
     PLAIN, ME, [Discard()]),
    ("envelope to", 'require "envelope"; if envelope :localpart :is "to" "me" { discard; }', PLAIN, ME, [Discard()]),
    ("envelope null sender is empty", 'require "envelope"; if envelope :all :is "from" "" { discard; }',
     PLAIN, Envelope("", "me@example.com"), [Discard()]),
    ("not / allof / anyof / true / false",
     'if allof (true, not false, anyof (false, header :contains "subject" "present")) { discard; }',
     PLAIN, ME, [Discard()]),
    ("elsif chain takes the first true branch",
     'require "fileinto"; if false { fileinto "a"; } elsif true { fileinto "b"; } elsif true { fileinto "c"; }'
     ' else { fileinto "d"; }', PLAIN, ME, [FileInto("b")]),
    ("decoded RFC 2047 subject", 'if header :contains "subject" "café" { discard; }', MULTIPART, ME, [Discard()]),
    # RFC 5229: variables
    ("rfc5229 §3.2 match variables", 'require ["fileinto", "variables"];\n'
     'if header :matches "Subject" "[*] *" { fileinto "lists.${1}"; set "rest" "${2}"; fileinto "${rest}"; }',
     LIST, ME, [FileInto("lists.acme-users"), FileInto("[fwd] version 1.0 is out")]),
    ("rfc5229 List-ID example", 'require ["fileinto", "variables"];\n'
     'if header :matches "List-ID" "*<*@*" { fileinto "INBOX.lists.${2}"; stop; }', 
     b"List-ID: <acme@lists.example>\r\n\r\n", ME, [FileInto("INBOX.lists.acme")]),
    ("matches ? and escapes", 'require ["fileinto","variables"];\n'
     'if header :matches "subject" "I ha?e a \\\\*?" { fileinto "no"; }'
     'elsif header :matches "subject" "I ha?e a*" { fileinto "x${1}${2}"; }', PLAIN, ME,
     [FileInto("xv present for you")]),
    ("rfc5229 §4.1 set modifiers", 'require ["fileinto","variables"];\n'
     'set "a" "juMBlEd lETteRS"; set :length "b" "${a}"; set :lower "c" "${a}"; set :upperfirst "d" "${c}";'
     'set :upperfirst :lower "e" "${a}"; set :quotewildcard "f" "a*b?c\\\\";'
     'fileinto "${b}|${c}|${d}|${e}|${f}";', PLAIN, ME,
     [FileInto("15|jumbled letters|Jumbled letters|Jumbled letters|a\\*b\\?c\\\\")]),
    ("variable names are case-blind, unknown ones empty, bad ones verbatim", 'require ["fileinto","variables"];\n'
     'set "Name" "v"; fileinto "${NAME}-${unknown}-${bad name}-${1}";', PLAIN, ME, [FileInto("v--${bad name}-")]),
    ("string test and :count", 'require ["fileinto","variables","relational","comparator-i;ascii-numeric"];\n'
     'set "x" ""; if string :count "eq" :comparator "i;ascii-numeric" ["a", "${x}", "b"] "2" { discard; }',
     PLAIN, ME, [Discard()]),
    ("without variables, ${} is literal", 'require "fileinto"; fileinto "${x}";', PLAIN, ME, [FileInto("${x}")]),
    ("text: multi-line with variables", 'require ["variables", "fileinto"];\n'
     'set "honorific" "Mr"; set "last_name" "Coyote";\nset "greeting" text:\nDear ${HONORIFIC} ${last_name},\n'
     '..dotted\n.\n;\nfileinto "${greeting}";', PLAIN, ME, [FileInto("Dear Mr Coyote,\n.dotted\n")]),
    # RFC 5231: relational
    ("rfc5231 :count of To and Cc", 'require ["relational", "comparator-i;ascii-numeric"];\n'
     'if address :count "ge" :comparator "i;ascii-numeric" ["to", "cc"] ["3"] { discard; }', PLAIN, ME,
     [Discard()]),
    ("rfc5231 :count not reached", 'require ["relational", "comparator-i;ascii-numeric"];\n'
     'if address :count "ge" :comparator "i;ascii-numeric" ["to", "cc"] ["4"] { discard; }', PLAIN, ME,
     [Keep(implicit=True)]),
    ("rfc5231 :value numeric", 'require ["relational", "comparator-i;ascii-numeric"];\n'
     'if header :value "gt" :comparator "i;ascii-numeric" "x-priority" "3" { discard; }',
     b"X-Priority: 5 (Lowest)\r\n\r\n", ME, [Discard()]),
    ("rfc5231 :value non-numeric is infinity", 'require ["relational", "comparator-i;ascii-numeric"];\n'
     'if header :value "lt" :comparator "i;ascii-numeric" "x-priority" "3" { discard; }',
     b"X-Priority: high\r\n\r\n", ME, [Keep(implicit=True)]),
    ("rfc5231 :value string order", 'require "relational"; if header :value "lt" "subject" "J" { discard; }',
     PLAIN, ME, [Discard()]),
    # RFC 5232: imap4flags
    ("rfc5232 flags on implicit keep", 'require "imap4flags"; addflag "\\\\Seen"; addflag ["$Work", "\\\\seen"];',
     PLAIN, ME, [Keep(flags=("\\Seen", "$Work"), implicit=True)]),
    ("rfc5232 removeflag and setflag", 'require ["imap4flags", "fileinto"];\n'
     'setflag "A B C"; removeflag "b"; fileinto "x"; fileinto :flags ["\\\\Flagged"] "y"; keep :flags "";',
     PLAIN, ME, [FileInto("x", flags=("A", "C")), FileInto("y", flags=("\\Flagged",)), Keep()]),
    ("rfc5232 flags in a variable and hasflag", 'require ["imap4flags", "variables", "fileinto"];\n'
     'addflag "f" "\\\\Deleted"; if hasflag :is "f" "\\\\deleted" { fileinto "a"; }'
     'if hasflag :contains "\\\\Deleted" { fileinto "b"; }', PLAIN, ME, [FileInto("a")]),
    # RFC 5173: body
    ("rfc5173 body :text", 'require "body"; if body :text :contains "MAKE MONEY FAST" { discard; }', SPAM, ME,
     [Discard()]),
    ("body :text reads decoded parts and HTML text", 'require ["body","fileinto"];\n'
     'if body :contains "café au lait" { fileinto "a"; } if body :contains "secret discount" { fileinto "b"; }'
     'if body :contains "ignored" { fileinto "c"; }', MULTIPART, ME, [FileInto("a"), FileInto("b")]),
    ("body :raw sees the encoding", 'require ["body","fileinto"];\n'
     'if body :raw :contains "Caf=E9" { fileinto "raw"; } if body :raw :contains "café" { fileinto "no"; }',
     MULTIPART, ME, [FileInto("raw")]),
    ("body :content by type", 'require ["body","fileinto"];\n'
     'if body :content "text/html" :contains "<b>" { fileinto "html"; }'
     'if body :content "text/plain" :contains "<b>" { fileinto "no"; }'
     'if body :content "text" :contains "<b>" { fileinto "major"; }', MULTIPART, ME,
     [FileInto("html"), FileInto("major")]),
    # RFC 5233: subaddress
    ("rfc5233 :user and :detail", 'require ["envelope", "subaddress", "fileinto", "variables"];\n'
     'if envelope :detail :matches "to" "*" { fileinto "plus.${1}"; }'
     'if address :user :is "to" "me" { fileinto "user"; }'
     'if address :detail :is "to" "" { fileinto "no-detail-is-no-match"; }',
     PLAIN, Envelope("a@b.example", "me+lists@example.com"), [FileInto("plus.lists"), FileInto("user")]),
    ("rfc5233 empty detail", 'require ["envelope", "subaddress"]; if envelope :detail :is "to" "" { discard; }',
     PLAIN, Envelope("a@b.example", "me+@example.com"), [Discard()]),
    # RFC 5228 §2.4.2.4: encoded-character
    ("encoded-character hex and unicode", 'require ["encoded-character", "fileinto"];\n'
     'if header :contains "subject" "${hex: 70 72 65}${unicode:73 0065 6E}t" { fileinto "${hex:43 61 66 C3 A9}"; }',
     PLAIN, ME, [FileInto("Café")]),
    ("encoded-character malformed stays as written", 'require ["encoded-character", "fileinto"];\n'
     'fileinto "${hex:4}${hex:zz}";', PLAIN, ME, [FileInto("${hex:4}${hex:zz}")]),
    ("without encoded-character, ${hex:} is literal", 'require "fileinto"; fileinto "${hex:41}";', PLAIN, ME,
     [FileInto("${hex:41}")]),
    # regex (RE2)
    ("regex with match variables", 'require ["regex", "variables", "fileinto"];\n'
     'if header :regex "subject" "^\\\\[([a-z-]+)\\\\]" { fileinto "${1}"; }', LIST, ME, [FileInto("acme-users")]),
]


@pytest.mark.parametrize("name,script,raw,envelope,expected", CASES, ids=[c[0] for c in CASES])
def test_actions(name, script, raw, envelope, expected):
    result = evaluate(parse(script), Message.from_bytes(raw), envelope)
    assert result.error is None
    assert result.actions == expected


VACATION = """require ["vacation", "variables"];
if header :matches "subject" "*" { set "s" "${1}"; }
vacation :days 3 :addresses ["me@example.com", "me.too@example.com"] :handle "away-${s}"
  "I'm out of the office until Monday.";
"""


def test_vacation_answers_a_person_with_tracking_key():
    result = evaluate(parse(VACATION), Message.from_bytes(PLAIN), ME)
    assert result.error is None
    vacation, keep = result.actions
    assert keep == Keep(implicit=True)   # RFC 5230 §4.7: vacation does not cancel the keep
    assert isinstance(vacation, Vacation)
    assert vacation.recipient == "coyote@desert.example.org"
    assert vacation.from_address == "me@example.com"
    assert vacation.subject == "Auto: I have a present for you"
    assert vacation.body == "I'm out of the office until Monday."
    assert vacation.period_seconds == 3 * 86400
    assert vacation.handle == "away-I have a present for you"
    assert vacation.in_reply_to == "<m1@desert.example.org>"
    assert vacation.references == "<m1@desert.example.org>"
    # The key stands for (sender, handle): same sender same key, another sender another key.
    again = evaluate(parse(VACATION), Message.from_bytes(PLAIN), ME).actions[0]
    other = evaluate(parse(VACATION), Message.from_bytes(PLAIN), Envelope("x@y.example", "me@example.com")).actions[0]
    assert again.tracking_key == vacation.tracking_key != other.tracking_key


def test_vacation_parameters():
    script = parse('require ["vacation", "vacation-seconds"];\n'
                   'vacation :seconds 10 :subject "Away" :from "boss@example.com" :mime text:\n'
                   'Content-Type: text/plain\n\nAway.\n.\n;')
    vacation = evaluate(script, Message.from_bytes(PLAIN), ME).actions[0]
    assert (vacation.subject, vacation.from_address, vacation.mime) == ("Away", "boss@example.com", True)
    assert vacation.period_seconds == Limits().min_vacation_seconds   # floor
    assert vacation.body.startswith("Content-Type: text/plain")
    days = evaluate(parse('require "vacation"; vacation :days 1000 "x";'), Message.from_bytes(PLAIN), ME)
    assert days.actions[0].period_seconds == Limits().max_vacation_days * 86400
    # Without :handle, two different reasons are two different vacations.
    a = evaluate(parse('require "vacation"; vacation "one";'), Message.from_bytes(PLAIN), ME).actions[0]
    b = evaluate(parse('require "vacation"; vacation "two";'), Message.from_bytes(PLAIN), ME).actions[0]
    assert a.tracking_key != b.tracking_key


@pytest.mark.parametrize("raw,envelope,why", [
    (PLAIN, Envelope("", "me@example.com"), "no return path"),
    (PLAIN, Envelope("me@example.com", "me@example.com"), "the sender is the recipient"),
    (PLAIN, Envelope("ME.TOO@example.com", "me@example.com"), "the sender is the recipient"),
    (PLAIN, Envelope("owner-acme@lists.example", "me@example.com"), "list or system address"),
    (PLAIN, Envelope("acme-request@lists.example", "me@example.com"), "list or system address"),
    (PLAIN, Envelope("MAILER-DAEMON@mx.example", "me@example.com"), "list or system address"),
    (b"Auto-Submitted: auto-replied\r\nTo: me@example.com\r\n\r\nx", ME, "auto-submitted"),
    (b"Precedence: bulk\r\nTo: me@example.com\r\n\r\nx", ME, "bulk or list"),
    (LIST, ME, "bulk or list"),
    (b"List-Unsubscribe: <mailto:u@l.example>\r\nTo: me@example.com\r\n\r\nx", ME, "mailing list"),
    (SPAM, ME, "not named in To, Cc or Bcc"),
])
def test_vacation_refusals_rfc5230_4_5(raw, envelope, why):
    result = evaluate(parse(VACATION), Message.from_bytes(raw), envelope)
    assert result.actions == [Keep(implicit=True)]
    assert len(result.notes) == 1 and why in result.notes[0]


def test_vacation_to_auto_submitted_no_is_sent():
    raw = b"Auto-Submitted: no\r\nFrom: a@b.example\r\nBcc: me@example.com\r\n\r\nx"
    result = evaluate(parse(VACATION), Message.from_bytes(raw), Envelope("a@b.example", "me@example.com"))
    assert isinstance(result.actions[0], Vacation)


@pytest.mark.parametrize("script,message", [
    ('require ["reject", "fileinto"]; fileinto "a"; reject "no";', "'reject' cannot be combined"),
    ('require ["reject", "vacation"]; vacation "away"; reject "no";', "'reject' cannot be combined"),
    ('require ["reject"]; reject "no"; keep;', "'reject' cannot be combined"),
    ('require "vacation"; vacation "a"; vacation :handle "b" "b";', "'vacation' can run only once"),
    ('redirect "a@example.net"; redirect "b@example.net";', "more than 1 redirect"),
    ('require "variables"; set "a" "not an address"; redirect "${a}";', "invalid address"),
    ('require ["vacation", "variables"]; set "f" "nobody"; vacation :from "${f}" "away";',
     "vacation :from is not an address"),
])
def test_runtime_errors_keep_the_message(script, message):
    """RFC 5228 §2.10.6: a run that fails does nothing planned so far and keeps the message."""
    result = evaluate(parse(script), Message.from_bytes(PLAIN), ME)
    assert result.actions == [Keep(implicit=True)]
    assert message in result.error
    assert result.error.startswith("line 1, column ")


def test_limits_are_configurable():
    script = parse('redirect "a@example.net"; redirect "b@example.net";')
    result = evaluate(script, Message.from_bytes(PLAIN), ME, Limits(max_redirects=2))
    assert result.actions == [Redirect("a@example.net"), Redirect("b@example.net")]


def test_limits_from_settings(settings):
    settings.SIEVE_LIMITS = {"max_redirects": 3, "max_script_size": 10}
    limits = Limits.from_settings()
    assert (limits.max_redirects, limits.max_script_size, limits.max_steps) == (3, 10, Limits().max_steps)
    settings.SIEVE_LIMITS = {"max_redirect": 3}
    with pytest.raises(ValueError, match="max_redirect"):
        Limits.from_settings()


def test_broken_message_still_runs():
    raw = (b"Subject: =?bogus-charset?q?x?= \xff\xfe\r\nFrom: <<<@@>>\r\nContent-Type: multipart/mixed\r\n\r\n"
           b"no boundary at all\r\n")
    script = parse('require ["body", "fileinto"]; if address :all :contains "from" "@" { fileinto "a"; }'
                   'if body :contains "boundary" { fileinto "b"; } if header :contains "subject" "x" { fileinto "c"; }')
    result = evaluate(script, Message.from_bytes(raw), ME)
    assert result.error is None
    assert FileInto("c") in result.actions


@pytest.mark.django_db
def test_a_run_touches_no_database(django_assert_num_queries):
    """Delivery runs a script per recipient: parsing and running must cost no query at all."""
    with django_assert_num_queries(0):
        script = parse(RFC5228_EXAMPLE)
        for raw in (PLAIN, SPAM, LIST, MULTIPART):
            evaluate(script, Message.from_bytes(raw), ME)
