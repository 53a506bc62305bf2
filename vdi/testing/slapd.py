"""A real OpenLDAP ``slapd`` for the tests: its own folder and configuration, loopback only.

One slapd serves two directories: ``dc=corp,dc=example`` as OpenLDAP deployments have it
(inetOrgPerson users, groupOfNames groups) and ``dc=ad,dc=example`` shaped like Active
Directory (``user`` entries with ``sAMAccountName``, ``group`` entries). In both the memberof
overlay keeps ``memberOf`` on users and on nested groups, as Active Directory does.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any

import ldap
import ldap.modlist
import ldif

from vdi.testing.processes import free_port, stop_group, wait_for

SLAPD = shutil.which("slapd") or "/usr/sbin/slapd"
SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIR = Path("/usr/lib/ldap")
ADMIN_PASSWORD = "slapd-admin-secret"  # noqa: S105 (a throw-away test directory)

# The little of Active Directory's schema the portal reads, with Active Directory's own OIDs.
AD_SCHEMA = """
attributetype ( 1.2.840.113556.1.4.221 NAME 'sAMAccountName'
    EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
    SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.656 NAME 'userPrincipalName'
    EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
objectclass ( 1.2.840.113556.1.5.9 NAME 'user' SUP inetOrgPerson STRUCTURAL
    MAY ( sAMAccountName $ userPrincipalName ) )
objectclass ( 1.2.840.113556.1.5.8 NAME 'group' SUP top STRUCTURAL
    MUST cn MAY ( member $ sAMAccountName $ description ) )
"""


@dataclass(frozen=True)
class Directory:
    """One suffix of the test slapd, with the object classes its groups use."""

    suffix: str
    group_class: str

    @property
    def admin_dn(self) -> str:
        return f"cn=admin,{self.suffix}"


CORP = Directory("dc=corp,dc=example", "groupOfNames")
AD = Directory("dc=ad,dc=example", "group")


def _database(folder: Path, directory: Directory) -> str:
    data = folder / directory.suffix.split(",")[0].split("=")[1]
    data.mkdir()
    return f"""
database mdb
suffix "{directory.suffix}"
rootdn "{directory.admin_dn}"
rootpw {ADMIN_PASSWORD}
directory {data}
maxsize 16777216
index objectClass,member eq
access to attrs=userPassword
    by self write
    by anonymous auth
    by * none
access to *
    by users read
    by anonymous auth
    by * none
overlay memberof
memberof-group-oc {directory.group_class}
memberof-member-ad member
memberof-memberof-ad memberOf
memberof-refint TRUE
"""


def write_config(folder: Path, directories: tuple[Directory, ...]) -> Path:
    (folder / "ad.schema").write_text(AD_SCHEMA)
    schemas = [SCHEMA_DIR / f"{name}.schema" for name in ("core", "cosine", "inetorgperson",
                                                           "nis")]
    lines = [f"include {path}" for path in [*schemas, folder / "ad.schema"]]
    lines += [f"modulepath {MODULE_DIR}", "moduleload back_mdb", "moduleload memberof",
              f"pidfile {folder / 'slapd.pid'}", f"argsfile {folder / 'slapd.args'}"]
    config = folder / "slapd.conf"
    config.write_text("\n".join(lines) + "".join(_database(folder, d) for d in directories))
    return config


class Slapd:
    """``start()`` runs slapd in the foreground of its own process group on 127.0.0.1 and a
    free port; ``stop()`` ends it. ``add``/``modify`` change the directories as their admins."""

    def __init__(self, folder: Path, directories: tuple[Directory, ...] = (CORP, AD)) -> None:
        self.folder = folder
        self.directories = directories
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    def start(self) -> None:
        config = write_config(self.folder, self.directories)
        for _attempt in range(3):  # another test may take the free port first
            self.port = free_port()
            log = (self.folder / "slapd.log").open("ab")
            self.process = subprocess.Popen(
                [SLAPD, "-d", "0", "-f", str(config), "-h", f"{self.uri}/"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                wait_for(self._answers, 20, "slapd to answer")
                self._seed_suffixes()
                return
            except AssertionError:
                self.stop()
        raise AssertionError(f"slapd did not start: {(self.folder / 'slapd.log').read_text()}")

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError("slapd exited")
        try:
            self.connect(self.directories[0]).unbind_s()
            return True
        except ldap.SERVER_DOWN:
            return False

    def stop(self) -> None:
        stop_group(self.process)

    def connect(self, directory: Directory) -> Any:
        connection = ldap.initialize(self.uri)
        connection.set_option(ldap.OPT_NETWORK_TIMEOUT, 5)
        connection.simple_bind_s(directory.admin_dn, ADMIN_PASSWORD)
        return connection

    def _seed_suffixes(self) -> None:
        for directory in self.directories:
            top = directory.suffix.split(",")[0].split("=")[1]
            self.add(directory, f"dn: {directory.suffix}\nobjectClass: dcObject\n"
                                f"objectClass: organization\ndc: {top}\no: {top}\n")

    def add(self, directory: Directory, ldif_text: str) -> None:
        """Add the entries of ``ldif_text``, in order."""
        records = ldif.LDIFRecordList(StringIO(ldif_text.strip() + "\n"))
        records.parse()
        connection = self.connect(directory)
        try:
            for dn, entry in records.all_records:
                connection.add_s(dn, ldap.modlist.addModlist(entry))
        finally:
            connection.unbind_s()

    def modify(self, directory: Directory, dn: str, operation: int, attribute: str,
               value: str) -> None:
        connection = self.connect(directory)
        try:
            connection.modify_s(dn, [(operation, attribute, [value.encode()])])
        finally:
            connection.unbind_s()

    def read(self, directory: Directory, dn: str, attribute: str) -> list[str]:
        connection = self.connect(directory)
        try:
            (_dn, attrs), = connection.search_s(dn, ldap.SCOPE_BASE, "(objectClass=*)",
                                                [attribute])
        finally:
            connection.unbind_s()
        return sorted(value.decode() for value in attrs.get(attribute, []))

