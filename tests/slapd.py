"""A real OpenLDAP server for the tests: Debian's slapd on free loopback ports.

Each instance gets a generated slapd.conf in its own temporary folder, an mdb database loaded
offline with slapadd, a self-signed certificate (StartTLS on the ldap:// port and a separate
ldaps:// port) and the monitor backend, through which the tests count the connections the server
sees. The data holds two shapes of directory under one suffix:

- ou=people / ou=groups: OpenLDAP style (inetOrgPerson, groupOfNames with member, mailAlias
  from a tiny custom schema, one {SSHA} and one cleartext userPassword, pwdChangedTime kept by
  the ppolicy overlay: OpenLDAP's name, not the reference's default pwdChangeTime);
- ou=corp: Active Directory style (objectClass user and group, sAMAccountName,
  userPrincipalName, memberOf values on the user, userAccountControl with one disabled
  account), from a small custom schema with AD's OIDs.

`make slapd` installs the package; the system's own slapd service is never used.
"""
from __future__ import annotations

import base64
import datetime
import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pytest

SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"
SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIR = Path("/usr/lib/ldap")

BASE_DN = "dc=example,dc=org"
ROOT_DN = f"cn=admin,{BASE_DN}"
ROOT_PASSWORD = "root-secret-not-used-by-the-backend"
READER_DN = f"cn=reader,{BASE_DN}"
READER_PASSWORD = "reader-Secret-42"

ALICE_PASSWORD = "Alice-Wonderland-7"  # stored as {SSHA}
BOB_PASSWORD = "bob-plain-secret"  # stored as is (slapd compares cleartext)
SCARLETT_PASSWORD = "Tara-Plantation-1861"
DAVE_PASSWORD = "Dave-Corp-Pass-99"
ERIN_PASSWORD = "Erin-Corp-Pass-11"
FRANK_PASSWORD = "Frank-Disabled-3"  # userAccountControl 514: a disabled account

# A DN whose value needs escaping both as a DN (the comma) and inside a filter ( ( ) * \ ).
SCARLETT_DN = f"cn=Scarlett (Sales)* \\, O'Hara,ou=people,{BASE_DN}"

CUSTOM_SCHEMA = """\
# mailAlias, for OpenLDAP-style entries (private arc, tests only)
attributetype ( 1.3.6.1.4.1.55555.1.1 NAME 'mailAlias'
  EQUALITY caseIgnoreIA5Match SUBSTR caseIgnoreIA5SubstringsMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.26{256} )
objectclass ( 1.3.6.1.4.1.55555.2.1 NAME 'mailRecipient' SUP top AUXILIARY
  MAY ( mail $ mailAlias ) )

# The few Active Directory attributes and classes the AD-style subtree uses, with AD's OIDs.
attributetype ( 1.2.840.113556.1.4.221 NAME 'sAMAccountName'
  EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.656 NAME 'userPrincipalName'
  EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.2.102 NAME 'memberOf'
  EQUALITY distinguishedNameMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.12 )
attributetype ( 1.2.840.113556.1.4.8 NAME 'userAccountControl'
  EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
objectclass ( 1.2.840.113556.1.5.9 NAME 'user' SUP organizationalPerson STRUCTURAL
  MAY ( sAMAccountName $ userPrincipalName $ memberOf $ mail $ displayName $
        userAccountControl ) )
objectclass ( 1.2.840.113556.1.5.8 NAME 'group' SUP top STRUCTURAL
  MUST cn MAY ( member $ sAMAccountName $ mail $ description ) )
"""


def ssha(password: str, salt: bytes = b"s4lt!") -> str:
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


ALICE_HASH = ssha(ALICE_PASSWORD)


def _ad_user(corp: str, cn: str, sam: str, password: str, salt: bytes, account_control: int,
             member_of: tuple[str, ...] = (), display_name: bool = False) -> str:
    """An Active Directory style user under `corp`: `sam`@corp.example.org, memberOf values on
    the entry itself."""
    address = f"{sam}@corp.example.org"
    lines = [f"dn: cn={cn},{corp}", "objectClass: user", f"cn: {cn}", f"sn: {cn.split()[-1]}"]
    if display_name:
        lines.append(f"displayName: {cn}")
    lines += [f"sAMAccountName: {sam}", f"userPrincipalName: {address}", f"mail: {address}"]
    lines += [f"memberOf: cn={group},{corp}" for group in member_of]
    lines += [f"userAccountControl: {account_control}", f"userPassword: {ssha(password, salt)}"]
    return "\n".join(lines)


def _ldif() -> str:
    people, groups, corp = f"ou=people,{BASE_DN}", f"ou=groups,{BASE_DN}", f"ou=corp,{BASE_DN}"
    entries = [
        f"""dn: {BASE_DN}
objectClass: dcObject
objectClass: organization
dc: example
o: Example""",
        f"""dn: {READER_DN}
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: reader
userPassword: {ssha(READER_PASSWORD)}""",
        f"""dn: ou=policies,{BASE_DN}
objectClass: organizationalUnit
ou: policies""",
        f"""dn: cn=default,ou=policies,{BASE_DN}
objectClass: organizationalRole
objectClass: pwdPolicy
cn: default
pwdAttribute: userPassword""",
        f"dn: {people}\nobjectClass: organizationalUnit\nou: people",
        f"dn: {groups}\nobjectClass: organizationalUnit\nou: groups",
        f"dn: {corp}\nobjectClass: organizationalUnit\nou: corp",
        f"""dn: uid=alice,{people}
objectClass: inetOrgPerson
objectClass: mailRecipient
uid: alice
cn: Alice Liddell
sn: Liddell
description: Alice Liddell
mail: Alice@Example.org
mailAlias: a.liddell@example.org
mailAlias: wonder@example.org
userPassword: {ALICE_HASH}
pwdChangedTime: 20260101000000Z""",
        f"""dn: uid=bob,{people}
objectClass: inetOrgPerson
uid: bob
cn: Bob Builder
sn: Builder
mail: bob@example.org
userPassword: {BOB_PASSWORD}""",
        f"""dn: {SCARLETT_DN}
objectClass: inetOrgPerson
cn: Scarlett (Sales)* , O'Hara
sn: O'Hara
mail: scarlett@example.org
userPassword: {ssha(SCARLETT_PASSWORD, b"xy")}""",
        f"""dn: cn=sales,{groups}
objectClass: groupOfNames
objectClass: mailRecipient
cn: sales
description: The sales team
mail: sales@example.org
mailAlias: deals@example.org
member: uid=alice,{people}
member: {SCARLETT_DN}""",
        f"""dn: cn=staff,{groups}
objectClass: groupOfNames
cn: staff
member: uid=alice,{people}
member: uid=bob,{people}""",
        f"""dn: cn=Engineering,{corp}
objectClass: group
cn: Engineering
sAMAccountName: engineering
mail: engineering@corp.example.org
member: cn=Dave Jones,{corp}""",
        f"""dn: cn=Remote Workers,{corp}
objectClass: group
cn: Remote Workers
sAMAccountName: remote
member: cn=Dave Jones,{corp}
member: cn=Erin Smith,{corp}""",
        _ad_user(corp, "Dave Jones", "dave", DAVE_PASSWORD, b"dd", 512,
                 ("Engineering", "Remote Workers"), display_name=True),
        _ad_user(corp, "Frank Gone", "frank", FRANK_PASSWORD, b"ff", 514),
        _ad_user(corp, "Erin Smith", "erin", ERIN_PASSWORD, b"ee", 66048, ("Remote Workers",)),
    ]
    return "\n\n".join(entries) + "\n"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


def available() -> bool:
    return os.access(SLAPD, os.X_OK) and os.access(SLAPADD, os.X_OK)


class Slapd:
    """One slapd process. `start()` loads the data once; `restart()` keeps it."""

    def __init__(self):
        self.folder = Path(tempfile.mkdtemp(prefix="slapd-"))
        self.port = _free_port()
        self.tls_port = _free_port()
        self.url = f"ldap://127.0.0.1:{self.port}"
        self.ldaps_url = f"ldaps://127.0.0.1:{self.tls_port}"
        # The same server under an address its certificate does not name.
        self.ldaps_url_unnamed = f"ldaps://127.0.0.2:{self.tls_port}"
        self.process: subprocess.Popen | None = None
        self.cert, self.key = _self_signed(self.folder)
        (self.folder / "db").mkdir()
        (self.folder / "custom.schema").write_text(CUSTOM_SCHEMA)
        self.conf = self.folder / "slapd.conf"
        self.conf.write_text(self._conf())
        (self.folder / "data.ldif").write_text(_ldif())
        done = subprocess.run([SLAPADD, "-q", "-b", BASE_DN, "-f", str(self.conf),
                               "-l", str(self.folder / "data.ldif")], capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"slapadd failed: {done.stderr[-2000:]}")

    def _conf(self) -> str:
        schemas = "\n".join(f"include {SCHEMA_DIR / name}.schema"
                            for name in ("core", "cosine", "inetorgperson", "nis"))
        return f"""{schemas}
include {self.folder / 'custom.schema'}
modulepath {MODULE_DIR}
moduleload back_mdb
moduleload ppolicy
pidfile {self.folder / 'slapd.pid'}
argsfile {self.folder / 'slapd.args'}
TLSCertificateFile {self.cert}
TLSCertificateKeyFile {self.key}

database monitor
access to * by dn.exact="{ROOT_DN}" read by * none

database mdb
suffix "{BASE_DN}"
rootdn "{ROOT_DN}"
rootpw {ROOT_PASSWORD}
directory {self.folder / 'db'}
maxsize 16777216
index objectClass eq
index mail,mailAlias,uid,cn,sAMAccountName,userPrincipalName,member,memberOf eq
overlay ppolicy
ppolicy_default "cn=default,ou=policies,{BASE_DN}"
access to attrs=userPassword
  by self write
  by dn.exact="{READER_DN}" read
  by anonymous auth
  by * none
access to * by * read
"""

    def start(self) -> "Slapd":
        log = open(self.folder / "slapd.log", "ab")
        # -d keeps slapd in the foreground, so that it is our child and dies with us.
        self.process = subprocess.Popen(
            [SLAPD, "-d", "0", "-f", str(self.conf),
             "-h", f"{self.url}/ {self.ldaps_url}/ {self.ldaps_url_unnamed}/"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("slapd exited: " + (self.folder / "slapd.log").read_text()[-2000:])
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                socket.create_connection(("127.0.0.1", self.tls_port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.02)  # slapd is still opening its database
        self.stop()
        raise RuntimeError("slapd did not start listening")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    # What the tests look at, as the server sees it.

    def admin(self):
        """An ldap3 connection bound as the rootdn (to change entries and read the monitor)."""
        import ldap3

        return ldap3.Connection(ldap3.Server(self.url, get_info=ldap3.NONE), ROOT_DN, ROOT_PASSWORD, auto_bind=True)

    def connections(self) -> int:
        """How many client connections slapd has open now, the rootdn's own (this one and
        those still closing from earlier calls) not counted."""
        with self.admin() as conn:
            conn.search("cn=Connections,cn=Monitor", "(objectClass=monitorConnection)",
                        attributes=["monitorConnectionAuthzDN"])
            return sum(1 for entry in conn.response if entry.get("type") == "searchResEntry"
                       and [v.lower() for v in entry["attributes"].get("monitorConnectionAuthzDN", [])]
                       != [ROOT_DN.lower()])

    def binds(self) -> int:
        """Bind operations completed since the server started, the rootdn's own included (one
        per call of this method or of connections()): for tests of the login verdict cache."""
        with self.admin() as conn:
            conn.search("cn=Bind,cn=Operations,cn=Monitor", "(objectClass=*)",
                        search_scope="BASE", attributes=["monitorOpCompleted"])
            return int(conn.response[0]["attributes"]["monitorOpCompleted"][0])

    def searches(self) -> int:
        """Search operations completed since the server started, this call's own included (it
        searches once): for tests that count what a login asks the directory."""
        with self.admin() as conn:
            conn.search("cn=Search,cn=Operations,cn=Monitor", "(objectClass=*)",
                        search_scope="BASE", attributes=["monitorOpCompleted"])
            return int(conn.response[0]["attributes"]["monitorOpCompleted"][0])

    # Configurations for the backend and the JMAP face.

    def config(self, **overrides):
        """An OpenLDAP-style LdapConfig for this server (bind mode, the reader as bind DN)."""
        from directories.base import LdapConfig, SecretRef

        base = LdapConfig(
            url=self.url, base_dn=BASE_DN, bind_dn=READER_DN,
            bind_secret=SecretRef(kind="value", value=READER_PASSWORD),
            timeout=datetime.timedelta(seconds=5),
            pool_timeout_create=datetime.timedelta(seconds=5),
            pool_timeout_wait=datetime.timedelta(seconds=5),
            attr_secret_changed=("pwdChangedTime",))
        return replace(base, **overrides)

    def ad_config(self, **overrides):
        """An Active Directory-style LdapConfig: login by sAMAccountName (the local part)."""
        settings = dict(
            base_dn=f"ou=corp,{BASE_DN}",
            filter_login="(&(objectClass=user)(sAMAccountName={local}))",
            filter_mailbox="(&(|(objectClass=user)(objectClass=group))(mail=?))",
            filter_member_of=None, attr_email=("mail",), attr_email_alias=(),
            attr_description=("displayName", "description"), attr_member_of=("memberOf",),
            attr_secret_changed=(), group_class="group")
        settings.update(overrides)
        return self.config(**settings)

    def directory_create(self, **overrides) -> dict:
        """The `x:Directory/set` create object (JMAP) for this server, OpenLDAP style, bind
        mode, for the end-to-end tests of the login pipeline."""
        payload = {
            "@type": "Ldap",
            "description": "Test OpenLDAP",
            "url": self.url,
            "timeout": 5000,
            "baseDn": BASE_DN,
            "bindDn": READER_DN,
            "bindSecret": {"@type": "Value", "secret": READER_PASSWORD},
            "bindAuthentication": True,
            "filterLogin": "(&(objectClass=inetOrgPerson)(mail=?))",
            "filterMailbox": ("(|(&(objectClass=inetOrgPerson)(|(mail=?)(mailAlias=?)))"
                              "(&(objectClass=groupOfNames)(|(mail=?)(mailAlias=?))))"),
            "filterMemberOf": "(&(objectClass=groupOfNames)(member=?))",
            "attrEmail": ["mail"],
            "attrEmailAlias": ["mailAlias"],
            "attrSecret": ["userPassword"],
            "attrSecretChanged": ["pwdChangedTime"],
            "groupClass": "groupOfNames",
        }
        payload.update(overrides)
        return payload

    def jmap_method_calls(self, **overrides) -> list:
        """The JMAP method calls that create the directory and make it the one logins use."""
        return [["x:Directory/set", {"create": {"ldap": self.directory_create(**overrides)}}, "d1"],
                ["x:Authentication/set", {"update": {"singleton": {"directoryId": "#ldap"}}}, "d2"]]


def start_or_skip() -> Slapd:
    if not available():
        if os.environ.get("CI"):
            pytest.fail("slapd is not installed: make slapd")
        pytest.skip("slapd is not installed (make slapd)")
    server = Slapd()
    try:
        return server.start()
    except BaseException:
        server.close()
        raise


@pytest.fixture(scope="module")
def slapd():
    """One running slapd for a test module."""
    server = start_or_skip()
    try:
        yield server
    finally:
        server.close()
