"""Why a file or disk operation failed, in words for operators: the path, and what the
service user (the account the portal and its workers run as) may not do there.

A permission, a missing file or a full file system is the machine's set-up, not a passing
problem: trying again does not help until an operator fixes it, so the person who asked is
told that an administrator has the cause, and the operator reads it here. No Django.
"""

from __future__ import annotations

import errno
import os
import pwd

# errno -> what it means for the file named, {path} and {user} filled in
_WORDS = {
    errno.EACCES: "permission denied for the service user {user} on {path}: it needs access "
                  "to that file and to every folder above it",
    errno.EPERM: "the service user {user} may not do this to {path} (operation not permitted)",
    errno.ENOENT: "{path} does not exist (a missing file or folder)",
    errno.ENOTDIR: "a part of {path} is not a folder",
    errno.ENOSPC: "no space left on the file system holding {path}",
    errno.EDQUOT: "the service user {user} has used up its disk quota on the file system "
                  "holding {path}",
    errno.EROFS: "{path} is on a read-only file system",
    errno.EEXIST: "{path} exists already",
}
SET_UP = frozenset(_WORDS) - {errno.EEXIST}
# The same causes as other programs (qemu-img, libvirt, QEMU) report them in their messages.
# The file is whichever the message names, opened by the service user (qemu-img) or by QEMU's
# own user (a running guest, through libvirt).
_REPORTED = {
    "Permission denied": "permission denied: whoever opened the file it names (the service "
                         "user {user} for qemu-img, QEMU's user for a running guest) needs "
                         "access to it and to every folder above it",
    "Operation not permitted": "an operation the system does not permit on the file it names",
    "No such file or directory": "a file or folder it names does not exist",
    "No space left on device": "no space left on the file system holding the file it names",
    "Disk quota exceeded": "a disk quota is used up on the file system holding the file it "
                           "names",
    "Read-only file system": "the file it names is on a read-only file system",
}


def service_user() -> str:
    """The account this process runs as, by name (its uid if it has none)."""
    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def is_set_up_problem(exc: BaseException) -> bool:
    """Whether ``exc`` comes from the machine's set-up (a permission, a missing file, a full
    file system): trying again changes nothing until an operator fixes it."""
    if isinstance(exc, OSError):
        return exc.errno in SET_UP
    return any(text in str(exc) for text in _REPORTED)


def explain(exc: BaseException) -> str:
    """The cause of ``exc`` for operators, naming the path and what is wrong with it."""
    if isinstance(exc, OSError):
        return _explain_os_error(exc)
    text = str(exc) or type(exc).__name__
    for reported, hint in _REPORTED.items():
        if reported in text:
            return f"{text} ({hint.format(user=service_user())})"
    return text


def _explain_os_error(exc: OSError) -> str:
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    path = " -> ".join(paths) if paths else "the file it was using"
    words = _WORDS.get(exc.errno or 0)
    if words is None:
        return f"{exc.strerror or exc} ({path})"
    return words.format(path=path, user=service_user())
