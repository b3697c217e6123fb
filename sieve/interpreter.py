"""Running a checked script against one message for one recipient.

A run only plans: it returns the actions for the caller (delivery) to carry out, so that a run
that fails half-way has done nothing, and RFC 5228 §2.10.6's "keep the message" holds."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from email.utils import getaddresses, parseaddr

from .errors import SieveRuntimeError
from .grammar import ADDRESS_PART, SET_MODIFIERS, Node, Script
from .limits import Limits
from .match import Matcher, compare
from .message import Envelope, Message, html_text


# ---- Actions: what the caller must do ---------------------------------------------------------

@dataclass(frozen=True)
class Keep:
    """Store in the default mailbox (the inbox); `implicit` when no command asked for it."""
    flags: tuple = ()
    implicit: bool = False


@dataclass(frozen=True)
class FileInto:
    mailbox: str
    flags: tuple = ()
    copy: bool = False


@dataclass(frozen=True)
class Redirect:
    address: str
    copy: bool = False


@dataclass(frozen=True)
class Discard:
    pass


@dataclass(frozen=True)
class Reject:
    """Refuse the message: `extended` (ereject) asks for an SMTP/LMTP refusal where the protocol
    allows one, instead of an MDN (RFC 5429 §2.1)."""
    reason: str
    extended: bool = False


@dataclass(frozen=True)
class Vacation:
    """Send `body` (a whole MIME entity when `mime`) to `recipient`, unless the caller already
    answered `tracking_key` within `period_seconds` (RFC 5230 §4.2: the key stands for this
    sender and this :handle; the caller keeps it per account)."""
    recipient: str
    from_address: str
    subject: str
    body: str
    mime: bool
    handle: str
    period_seconds: int
    tracking_key: str
    in_reply_to: str = ""
    references: str = ""


@dataclass
class Result:
    actions: list = field(default_factory=list)
    error: str | None = None          # set when the run failed; `actions` is then [Keep(implicit)]
    notes: list = field(default_factory=list)   # why a vacation was not sent, for the log
    steps: int = 0


# ---- The run ---------------------------------------------------------------------------------

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*|[0-9]+)\}")
_FLAGS = "\0flags"   # imap4flags' internal variable: no script can name it
_LIST_SENDERS = re.compile(r"^(owner-.*|.*-request|mailer-daemon|listserv|majordomo)$", re.I)


class _Stop(Exception):
    pass


class _Run:
    def __init__(self, script: Script, message: Message, envelope: Envelope, limits: Limits):
        self.script = script
        self.message = message
        self.envelope = envelope
        self.limits = limits
        self.variables_on = "variables" in script.requires
        self.variables: dict[str, str] = {_FLAGS: ""}
        self.match_vars: list[str] = []
        self.actions: list = []
        self.implicit_keep = True
        self.steps = 0
        self.redirects = 0
        self.notes: list[str] = []
        self.matcher = Matcher(limits.max_regex_memory)
        self.node: Node | None = None

    def fail(self, message: str):
        node = self.node
        raise SieveRuntimeError(message, node.line if node else 0, node.column if node else 0)

    def spend(self, units: int = 1) -> None:
        self.steps += units
        if self.steps > self.limits.max_steps:
            self.fail(f"the script did more than {self.limits.max_steps} steps of work")

    # Strings ----------------------------------------------------------------------------------

    def expand(self, text: str) -> str:
        if not self.variables_on or "${" not in text:
            return text
        self.spend(1 + len(text) // 1024)

        def value(found):
            name = found.group(1)
            if name.isdigit():
                index = int(name)
                return self.match_vars[index] if index < len(self.match_vars) else ""
            return self.variables.get(name.lower(), "")

        out = _VARIABLE.sub(value, text)
        # RFC 5229 §6 lets an implementation cut what exceeds its limits: a string that would
        # grow past the limit is cut, never refused (the message must still be delivered).
        return out[:self.limits.max_string_length]

    def expand_all(self, items: list) -> list:
        return [self.expand(s) for s in items]

    def set_variable(self, name: str, value: str) -> None:
        name = name.lower()
        if name not in self.variables and len(self.variables) > self.limits.max_variables:
            self.fail(f"more than {self.limits.max_variables} variables")
        self.variables[name] = value[:self.limits.max_variable_size]

    # Commands ---------------------------------------------------------------------------------

    def block(self, commands: list) -> None:
        for node in commands:
            self.command(node)

    def command(self, node: Node) -> None:
        self.node = node
        self.spend()
        name = node.name
        if name == "if":
            for test, block in node.branches:
                if self.test(test):
                    self.block(block)
                    return
            if node.orelse is not None:
                self.block(node.orelse)
            return
        getattr(self, "do_" + name)(node)

    def do_stop(self, node):
        raise _Stop

    def _flags_of(self, node) -> tuple:
        if ":flags" in node.tags:
            return _flag_list(self.expand_all(node.tags[":flags"]))
        return _flag_list([self.variables[_FLAGS]])

    def _add(self, action) -> None:
        if action in self.actions:
            return   # RFC 5228 §2.10.3: the same keep, fileinto or redirect twice is done once
        if len(self.actions) >= self.limits.max_actions:
            self.fail(f"more than {self.limits.max_actions} actions")
        kinds = {type(a) for a in self.actions}
        if Reject in kinds and isinstance(action, (Keep, FileInto, Vacation, Reject)) or \
                isinstance(action, Reject) and kinds & {Keep, FileInto, Vacation, Reject}:
            self.fail("'reject' cannot be combined with keep, fileinto, vacation or another reject")
        if isinstance(action, Vacation) and Vacation in kinds:
            self.fail("'vacation' can run only once")
        self.actions.append(action)

    def do_keep(self, node):
        self._add(Keep(self._flags_of(node)))
        self.implicit_keep = False

    def do_discard(self, node):
        self._add(Discard())
        self.implicit_keep = False

    def do_fileinto(self, node):
        mailbox = self.expand(node.args[0])
        self._add(FileInto(mailbox, self._flags_of(node), bool(node.tags.get(":copy"))))
        if not node.tags.get(":copy"):
            self.implicit_keep = False

    def do_redirect(self, node):
        address = self.expand(node.args[0]).strip()
        _, parsed = parseaddr(address)
        if not parsed or "@" not in parsed:
            self.fail(f'redirect to an invalid address "{address[:100]}"')
        self.redirects += 1
        if self.redirects > self.limits.max_redirects:
            self.fail(f"more than {self.limits.max_redirects} redirect(s)")
        self._add(Redirect(parsed, bool(node.tags.get(":copy"))))
        if not node.tags.get(":copy"):
            self.implicit_keep = False

    def do_reject(self, node, extended=False):
        self._add(Reject(self.expand(node.args[0]), extended))
        self.implicit_keep = False

    def do_ereject(self, node):
        self.do_reject(node, extended=True)

    def do_set(self, node):
        name, value = node.args[0], self.expand(node.args[1])
        for modifier in sorted(node.tags, key=lambda t: -SET_MODIFIERS[t]):
            value = _modify(modifier, value)
        self.set_variable(name, value)

    def _flag_target(self, node) -> tuple[str, list]:
        if len(node.args) == 2:
            return node.args[0].lower(), self.expand_all(node.args[1])
        return _FLAGS, self.expand_all(node.args[0])

    def do_setflag(self, node):
        target, flags = self._flag_target(node)
        self.set_variable(target, " ".join(_flag_list(flags)))

    def do_addflag(self, node):
        target, flags = self._flag_target(node)
        self.set_variable(target, " ".join(_flag_list([self.variables.get(target, "")] + flags)))

    def do_removeflag(self, node):
        target, flags = self._flag_target(node)
        gone = {f.lower() for f in _flag_list(flags)}
        kept = [f for f in _flag_list([self.variables.get(target, "")]) if f.lower() not in gone]
        self.set_variable(target, " ".join(kept))

    def do_vacation(self, node):
        tags = node.tags
        env = self.envelope
        message = self.message
        limits = self.limits
        sender = env.mail_from.strip()
        own = {a.lower() for a in (env.rcpt_to, *env.user_addresses, *self.expand_all(tags.get(":addresses", []))) if a}
        reason = self.expand(node.args[0])
        subject = self.expand(tags[":subject"]) if ":subject" in tags else None
        from_address = self.expand(tags[":from"]) if ":from" in tags else ""
        # RFC 5230 §4.4: a :from that is not an address is an error, not a reply from nowhere.
        if from_address and "@" not in parseaddr(from_address)[1]:
            self.fail(f'vacation :from is not an address: "{from_address[:100]}"')
        if ":seconds" in tags:
            period = max(limits.min_vacation_seconds, min(tags[":seconds"], limits.max_vacation_days * 86400))
        else:
            days = tags.get(":days", limits.default_vacation_days)
            period = max(1, min(days, limits.max_vacation_days)) * 86400
        # RFC 5230 §4.2: without :handle, the reason and the parameters that shape the answer
        # tell one vacation from another.
        handle = self.expand(tags[":handle"]) if ":handle" in tags else \
            "\0".join([reason, subject or "", from_address, "mime" if ":mime" in tags else ""])
        skip = self._vacation_refusal(sender, own)
        if skip:
            self.notes.append(f"vacation not sent: {skip}")
            return
        original = (message.header_values("subject") or [""])[0]
        message_id = (message.header_values("message-id") or [""])[0].strip()
        references = " ".join(filter(None, [(message.header_values("references") or [""])[0].strip(), message_id]))
        key = hashlib.sha256(f"{sender.lower()}\0{handle}".encode("utf-8", "surrogatepass")).hexdigest()
        self._add(Vacation(
            recipient=sender, from_address=from_address or env.rcpt_to,
            subject=subject if subject is not None else f"Auto: {original}".strip(),
            body=reason, mime=":mime" in tags, handle=handle, period_seconds=period,
            tracking_key=key, in_reply_to=message_id, references=references,
        ))

    def _vacation_refusal(self, sender: str, own: set) -> str | None:
        """RFC 5230 §4.5 (and RFC 3834 §2, which it points to): whom an auto-reply never goes to."""
        message = self.message
        if not sender or sender == "<>":
            return "the message has no return path (a bounce)"
        if sender.lower() in own:
            return "the sender is the recipient"
        local = sender.rsplit("@", 1)[0]
        if _LIST_SENDERS.match(local):
            return f'"{sender}" is a list or system address'
        auto = [v.strip().lower() for v in message.header_values("auto-submitted")]
        if any(v and not v.startswith("no") for v in auto):
            return "the message is auto-submitted"
        if any(v.strip().lower() in ("bulk", "list", "junk") for v in message.header_values("precedence")):
            return "the message is bulk or list mail (Precedence)"
        if any(n.lower().startswith("list-") for n, _ in message.headers):
            return "the message comes from a mailing list (List-* header)"
        named = set()
        for name in ("to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc"):
            named.update(a.lower() for _, a in getaddresses(message.header_values(name)) if a)
        if not named & own:
            return "the recipient is not named in To, Cc or Bcc"
        return None

    # Tests ------------------------------------------------------------------------------------

    def test(self, node: Node) -> bool:
        self.node = node
        self.spend()
        name = node.name
        if name == "true":
            return True
        if name == "false":
            return False
        if name == "not":
            return not self.test(node.tests[0])
        if name == "allof":
            return all(self.test(t) for t in node.tests)
        if name == "anyof":
            return any(self.test(t) for t in node.tests)
        if name == "size":
            limit = node.args[0]
            return self.message.size > limit if ":over" in node.tags else self.message.size < limit
        if name == "exists":
            return all(self.message.header_values(h) for h in self.expand_all(node.args[0]))
        keys = self.expand_all(node.args[-1])
        values = self._values(node)
        return self._match(node, values, keys)

    def _values(self, node: Node) -> list:
        name = node.name
        limit = self.limits.max_header_values
        if name == "header":
            out = []
            for header in self.expand_all(node.args[0]):
                out.extend(self.message.header_values(header))
            return out[:limit]
        if name == "address":
            out = []
            for header in self.expand_all(node.args[0]):
                for _, address in getaddresses(self.message.header_values(header)[:limit]):
                    part = _address_part(address, node) if address else None
                    if part is not None:
                        out.append(part)
            return out[:limit]
        if name == "envelope":
            out = []
            for part in node.args[0]:
                address = self.envelope.mail_from if part.lower() == "from" else self.envelope.rcpt_to
                address = address.strip().strip("<>")
                # RFC 5228 §5.4: the null reverse-path is "" for :all and matches no part else.
                part = _address_part(address, node) if address else ("" if node.tag(ADDRESS_PART, ":all") == ":all" else None)
                if part is not None:
                    out.append(part)
            return out
        if name == "string":
            return self.expand_all(node.args[0])
        if name == "hasflag":
            names = [n.lower() for n in node.args[0]] if len(node.args) == 2 else [_FLAGS]
            return _flag_list([self.variables.get(n, "") for n in names])
        if name == "body":
            return self._body(node)
        raise AssertionError(name)

    def _body(self, node: Node) -> list:
        message = self.message
        if ":raw" in node.tags:
            return [message.raw_body]
        if ":content" in node.tags:
            wanted = [t.lower() for t in self.expand_all(node.tags[":content"])]
            out = []
            for part in message.parts:
                major = part.content_type.split("/", 1)[0]
                if any(w == "" or w == part.content_type or ("/" not in w and w == major) for w in wanted):
                    out.append(part.text)
            return out
        out = []
        for part in message.parts:
            if part.content_type == "text/html":
                out.append(html_text(part.text))
            elif part.content_type.startswith("text/"):
                out.append(part.text)
        return out

    def _match(self, node: Node, values: list, keys: list) -> bool:
        tags = node.tags
        comparator = tags.get(":comparator", "i;ascii-casemap")
        if ":count" in tags:
            if node.name == "string":
                values = [v for v in values if v]
            count = str(len(values))
            relation = tags[":count"].lower()
            return any(compare(count, key, relation, comparator) for key in keys)
        match_type = node.tag({":is": None, ":contains": None, ":matches": None, ":regex": None, ":value": None}, ":is")
        relation = tags[":value"].lower() if ":value" in tags else None
        compiled = node.regex
        for value in values:
            self.spend(1 + len(value) // 1024)
            for index, key in enumerate(keys):
                self.spend(1 + len(key) // 1024)
                try:
                    found = self.matcher.match(value, key, match_type, comparator, relation,
                                               compiled[index] if compiled else None)
                except Exception as exc:
                    # A :regex key made of variables that does not compile, or a pattern past
                    # RE2's memory bound: the run stops and keeps the message.
                    if match_type not in (":regex", ":matches"):
                        raise
                    self.fail(f"invalid regular expression: {exc}" if match_type == ":regex"
                              else f"the :matches pattern is too complex: {exc}")
                if found:
                    if isinstance(found, list):
                        self.match_vars = [v[:self.limits.max_variable_size]
                                           for v in found[:self.limits.max_match_variables]]
                    return True
        return False


def _address_part(address: str, node: Node) -> str | None:
    """The part of `address` the test compares, or None when it has none (:detail without '+')."""
    part = node.tag(ADDRESS_PART, ":all")
    if part == ":all":
        return address
    local, at, domain = address.rpartition("@")
    if not at:
        local, domain = address, ""
    if part == ":domain":
        return domain
    if part == ":localpart":
        return local
    # RFC 5233: the separator is '+', the first one splits the user from the detail.
    user, plus, detail = local.partition("+")
    if part == ":user":
        return user
    return detail if plus else None


def _flag_list(items: list) -> tuple:
    """RFC 5232 §3: a flag list is the space-separated words of its strings, each once (flags
    compare without case)."""
    seen = {}
    for item in items:
        for flag in item.split():
            seen.setdefault(flag.lower(), flag)
    return tuple(seen.values())


def _modify(modifier: str, value: str) -> str:
    if modifier == ":lower":
        return value.lower()
    if modifier == ":upper":
        return value.upper()
    if modifier == ":lowerfirst":
        return value[:1].lower() + value[1:]
    if modifier == ":upperfirst":
        return value[:1].upper() + value[1:]
    if modifier == ":quotewildcard":
        return re.sub(r"([*?\\])", r"\\\1", value)
    if modifier == ":length":
        return str(len(value))
    raise AssertionError(modifier)


def evaluate(script: Script, message: Message, envelope: Envelope, limits: Limits | None = None) -> Result:
    """The actions of `script` for this message and recipient. Never raises for a script that
    `parse()` accepted: a run that fails keeps the message (RFC 5228 §2.10.6) and says why."""
    run = _Run(script, message, envelope, limits or Limits())
    try:
        run.block(script.commands)
    except _Stop:
        pass
    except SieveRuntimeError as exc:
        return Result([Keep(_flag_list([run.variables[_FLAGS]]), implicit=True)], str(exc), run.notes, run.steps)
    actions = run.actions
    if run.implicit_keep:
        actions.append(Keep(_flag_list([run.variables[_FLAGS]]), implicit=True))
    return Result(actions, None, run.notes, run.steps)
