"""What the discovery documents say, built from SystemSettings (services, mail exchangers, default
host name) and the MtaSts settings. The views only parse requests and wrap these answers.

Every document is built with a real serialiser (ElementTree, json): untrusted text (the e-mail
address a client sends) can reach the output only escaped.
"""
from __future__ import annotations

import hashlib
import logging
import re
import secrets
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import connection

from accounts.discovery import SERVICE_PROTOCOLS
from accounts.models import SystemSettings, domain_name_validator
from registry import context, memo
from registry import services as registry

from .models import MtaSts

# Ports are fixed in the reference's generators: (implicit TLS, plain/STARTTLS).
PORTS = {"imap": (993, 143), "pop3": (995, 110), "smtp": (465, 587)}
DAV_PATHS = {"caldav": "/dav/cal", "carddav": "/dav/card", "webdav": "/dav/file"}
PLACEHOLDER = "%EMAILADDRESS%"


# --- settings -------------------------------------------------------------------------------
def system_settings() -> SystemSettings:
    return registry.current(SystemSettings)


@dataclass(frozen=True)
class Service:
    protocol: str
    host: str
    cleartext: bool


def advertised(system: SystemSettings, protocols=SERVICE_PROTOCOLS) -> list[Service]:
    """The advertised services among `protocols`, in the reference's protocol order."""
    services = system.services or {}
    out = []
    for protocol in SERVICE_PROTOCOLS:
        entry = services.get(protocol)
        if protocol in protocols and isinstance(entry, dict):
            out.append(Service(protocol, entry.get("hostname") or system.hostname, bool(entry.get("cleartext"))))
    return out


# --- e-mail addresses from clients ----------------------------------------------------------
class BadAddress(ValueError):
    pass


MAX_ADDRESS = 254  # octets (RFC 5321 §4.5.3.1.3: a path is 256 with its angle brackets)
MAX_LOCAL = 64
# Non-ASCII (RFC 6531) without C1 controls, surrogates or the XML 1.0 non-characters.
_UTF8 = r"\u00a0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff"
_ATEXT = rf"[a-z0-9!#$%&'*+/=?^_`{{|}}~\-{_UTF8}]"
_DOT_ATOM = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*")
_QUOTED = re.compile(rf'"(?:[\x20\x21\x23-\x5b\x5d-\x7e{_UTF8}]|\\[\x20-\x7e])*"')
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def parse_address(raw: str) -> tuple[str, str]:
    """(address, domain) of an address a client sent, lowercased; raises BadAddress.

    The local part is a dot-atom or a quoted string (RFC 5321/6531), so it may contain `<`, `&`
    or `"`: the documents escape it. The domain is a host name (an internationalised one is
    turned into its A-label form).
    """
    if not isinstance(raw, str):
        raise BadAddress("The e-mail address must be text.")
    value = raw.strip().lower()
    if _CONTROL.search(value):
        raise BadAddress("The e-mail address contains control characters.")
    if len(value.encode("utf-8", "surrogatepass")) > MAX_ADDRESS:
        raise BadAddress(f"The e-mail address is longer than {MAX_ADDRESS} octets.")
    local, at, domain = value.rpartition("@")
    if not at:
        raise BadAddress("The e-mail address has no '@'.")
    if not local:
        raise BadAddress("The e-mail address has an empty local part.")
    if len(local.encode("utf-8", "surrogatepass")) > MAX_LOCAL:
        raise BadAddress(f"The local part is longer than {MAX_LOCAL} octets.")
    if not (_DOT_ATOM.fullmatch(local) or _QUOTED.fullmatch(local)):
        raise BadAddress("The local part of the e-mail address is not valid.")
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            raise BadAddress("The domain of the e-mail address is not valid.") from None
    try:
        domain_name_validator(domain)
    except ValidationError:
        raise BadAddress("The domain of the e-mail address is not valid.") from None
    return f"{local}@{domain}", domain


# --- XML ------------------------------------------------------------------------------------
def _sub(parent: ET.Element, tag: str, text=None, **attrs) -> ET.Element:
    el = ET.SubElement(parent, tag, {k: str(v) for k, v in attrs.items()})
    if text is not None:
        el.text = str(text)
    return el


def xml_bytes(root: ET.Element) -> bytes:
    ET.indent(root, space="  ")
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8", xml_declaration=False) + b"\n"


def client_config(system: SystemSettings, email: str | None = None, domain: str | None = None) -> bytes:
    """The Thunderbird autoconfig document (clientConfig 1.1), spec §3.2; no address: placeholders."""
    if email is None:
        email, domain = PLACEHOLDER, system.hostname
    root = ET.Element("clientConfig", version="1.1")
    provider = _sub(root, "emailProvider", id=domain)
    _sub(provider, "domain", domain)
    _sub(provider, "displayName", email)
    _sub(provider, "displayShortName", domain)
    for service in advertised(system, ("imap", "pop3", "smtp")):
        tag = "outgoingServer" if service.protocol == "smtp" else "incomingServer"
        tls, plain = PORTS[service.protocol]
        entries = ([(plain, "STARTTLS")] if service.cleartext else []) + [(tls, "SSL")]
        for port, socket_type in entries:
            server = _sub(provider, tag, type=service.protocol)
            _sub(server, "hostname", service.host)
            _sub(server, "port", port)
            _sub(server, "socketType", socket_type)
            _sub(server, "username", email)
            _sub(server, "authentication", "password-cleartext")
    tags = {"caldav": "calendar", "carddav": "addressBook", "webdav": "fileShare"}
    for service in advertised(system, tuple(tags)):
        el = _sub(root, tags[service.protocol], type=service.protocol)
        _sub(el, "username", email)
        _sub(el, "authentication", "http-basic")
        _sub(el, "serverURL", f"https://{service.host}{DAV_PATHS[service.protocol]}")
    _sub(root, "clientConfigUpdate", url=f"https://autoconfig.{domain}/mail/config-v1.1.xml")
    return xml_bytes(root)


AUTODISCOVER_RESPONSE = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
OUTLOOK_RESPONSE = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
MOBILESYNC_REQUEST = "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/requestschema/2006"
MOBILESYNC_RESPONSE = "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006"
DEPLOYMENT_ID = "644560b8-a1ce-429c-8ace-23395843f701"
MAX_AUTODISCOVER_BODY = 8192


def outlook_autodiscover(system: SystemSettings, email: str) -> bytes:
    """The Outlook (POX) autodiscover answer, spec §4.2."""
    # Default namespaces as plain xmlns attributes: the document reads as the reference's.
    root = ET.Element("Autodiscover", xmlns=AUTODISCOVER_RESPONSE)
    response = _sub(root, "Response", xmlns=OUTLOOK_RESPONSE)
    user = _sub(response, "User")
    _sub(user, "DisplayName", email)
    _sub(user, "AutoDiscoverSMTPAddress", email)
    _sub(user, "DeploymentId", DEPLOYMENT_ID)
    account = _sub(response, "Account")
    _sub(account, "AccountType", "email")
    _sub(account, "Action", "settings")
    for service in advertised(system, ("imap", "pop3", "smtp")):
        tls, plain = PORTS[service.protocol]
        for port, secure in ([(plain, False)] if service.cleartext else []) + [(tls, True)]:
            protocol = _sub(account, "Protocol")
            _sub(protocol, "Type", service.protocol.upper())
            _sub(protocol, "Server", service.host)
            _sub(protocol, "Port", port)
            _sub(protocol, "LoginName", email)
            _sub(protocol, "AuthRequired", "on")
            _sub(protocol, "DirectoryPort", 0)
            _sub(protocol, "ReferralPort", 0)
            _sub(protocol, "SSL", "on" if secure else "off")
            if secure:
                _sub(protocol, "Encryption", "TLS")
            _sub(protocol, "SPA", "off")
    return xml_bytes(root)


def mobilesync_error() -> bytes:
    """The answer to an ActiveSync autodiscover request: this server offers no ActiveSync, so no
    provider serves the mobilesync response schema (MS-ASCMD §2.2.3.64: ErrorCode 601)."""
    root = ET.Element("Autodiscover", xmlns=AUTODISCOVER_RESPONSE)
    response = _sub(root, "Response", xmlns=MOBILESYNC_RESPONSE)
    error = _sub(response, "Error")
    _sub(error, "ErrorCode", 601)
    _sub(error, "Message", "Requested schema version not supported")
    _sub(error, "DebugData", "This server does not offer Exchange ActiveSync; use IMAP and SMTP.")
    return xml_bytes(root)


# --- PACC -----------------------------------------------------------------------------------
def pacc_document(system: SystemSettings, issuer: str) -> dict:
    """draft-ietf-mailmaint-pacc: the services, the OAuth issuer, the provider (spec §6)."""
    protocols = {}
    for service in advertised(system):
        if service.protocol == "jmap":
            protocols["jmap"] = {"url": f"https://{service.host}/jmap/session"}
        elif service.protocol in DAV_PATHS:
            protocols[service.protocol] = {"url": f"https://{service.host}{DAV_PATHS[service.protocol]}/"}
        else:
            protocols[service.protocol] = {"host": service.host}
    return {
        "protocols": protocols,
        "authentication": {"oauth-public": {"issuer": issuer}, "password": True},
        "info": {"provider": {"name": "Stalwart"}},
    }


# --- MTA-STS --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Policy:
    mode: str
    max_age: int
    mx: tuple[str, ...]

    @property
    def text(self) -> str:
        lines = ["version: STSv1", f"mode: {self.mode}", f"max_age: {self.max_age}", *(f"mx: {h}" for h in self.mx)]
        return "".join(line + "\r\n" for line in lines)

    @property
    def id(self) -> str:
        """The policy id of the `_mta-sts` TXT record: it changes whenever the text does."""
        return hashlib.sha256(self.text.encode()).hexdigest()[:16]

    def txt_record(self) -> str:
        return f"v=STSv1; id={self.id}"


def build_policy(mta: MtaSts, system: SystemSettings) -> Policy | None:
    """The published policy (spec §8.2), or None when nothing is published."""
    if mta.mode == MtaSts.Mode.DISABLE:
        return None
    hosts = list(mta.mx_hosts or [])
    if not hosts:
        hosts = [(mx.get("hostname") or system.hostname) for mx in (system.mail_exchangers or [])
                 if isinstance(mx, dict)]
    mx = tuple(sorted({h.lower() for h in hosts if h}))
    if not mx:
        return None
    return Policy(mode=mta.mode, max_age=int(mta.max_age.total_seconds()), mx=mx)


def current_policy() -> Policy | None:
    """The policy as the settings are now: built once per change of either object and kept in
    the worker under their states (registry.memo)."""
    known = context.states("MtaSts", "SystemSettings")
    return memo.get("wellknown.mta-sts", (known["MtaSts"], known["SystemSettings"]),
                    lambda: build_policy(registry.current(MtaSts, known), registry.current(SystemSettings, known)))


# --- health ---------------------------------------------------------------------------------
def readiness() -> list[str]:
    """What is down, as short phrases (empty when ready): the database and the cache are asked."""


    down = []
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            if cursor.fetchone()[0] != 1:
                raise RuntimeError("SELECT 1 gave a wrong answer")
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        down.append(f"database unavailable: {type(exc).__name__}")
        _log(exc, "database")
    try:
        key, value = f"healthz:{secrets.token_hex(8)}", secrets.token_hex(8)
        cache.set(key, value, 10)
        got = cache.get(key)
        cache.delete(key)
        if got != value:
            raise RuntimeError("the value read back differs")
    except Exception as exc:  # noqa: BLE001
        down.append(f"cache unavailable: {type(exc).__name__}")
        _log(exc, "cache")
    return down


def _log(exc: Exception, what: str) -> None:
    logging.getLogger(__name__).warning("readiness: %s unavailable: %s", what, exc)
