"""Landlock, the Linux security module an unprivileged process uses to restrict itself and
every process it starts (for C code and other programs too; a restriction cannot be undone).

Its interface is three system calls and three small structures, called here through ctypes:
the Python bindings on PyPI are pre-1.0 (`landlock` 1.0.0.dev5, `landlockpy` 0.2.0), and this
is the whole of what gradlint needs. Rights the running kernel does not know are left out (the
kernel's ABI version decides), so a policy is always the strongest the kernel can enforce:

- ABI 1 (Linux 5.13): reads, writes, execution, creating and removing files beneath paths;
- ABI 2: renaming or linking across directories (REFER); ABI 3: truncation;
- ABI 4: TCP bind and connect; ABI 5: ioctl on devices;
- ABI 6: scoping, so that no signal and no abstract UNIX socket reaches a process outside.

A restriction applies to the calling thread and the processes and threads it creates later:
call `restrict` while the process has a single thread (before torch starts its own).
"""

from __future__ import annotations

import ctypes
import os
import sys
from dataclasses import dataclass, field

_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446  # the same number on every architecture
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38

EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REMOVE_DIR, REMOVE_FILE, MAKE_CHAR, MAKE_DIR = 1 << 4, 1 << 5, 1 << 6, 1 << 7
MAKE_REG, MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK, MAKE_SYM = 1 << 8, 1 << 9, 1 << 10, 1 << 11, 1 << 12
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
BIND_TCP, CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1

_FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV  # the only rights a rule on a file may carry
READ = READ_FILE | READ_DIR | EXECUTE
WRITE = (WRITE_FILE | READ_FILE | READ_DIR | REMOVE_DIR | REMOVE_FILE | MAKE_DIR | MAKE_REG | MAKE_SOCK | MAKE_FIFO
         | MAKE_SYM | REFER | TRUNCATE)  # no EXECUTE: nothing written in the sandbox runs as a program
DEVICE = READ_FILE | WRITE_FILE | IOCTL_DEV


def _fs_rights(abi: int) -> int:
    rights = (1 << 13) - 1  # ABI 1: EXECUTE .. MAKE_SYM
    if abi >= 2:
        rights |= REFER
    if abi >= 3:
        rights |= TRUNCATE
    if abi >= 5:
        rights |= IOCTL_DEV
    return rights


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # the kernel's struct is packed: 12 bytes
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


_libc = None


def _lib():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
    return _libc


def _syscall(number: int, *args) -> int:
    result = _lib().syscall(ctypes.c_long(number), *args)
    if result < 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))
    return result


def abi() -> int:
    """The kernel's Landlock ABI version; 0 where there is none (not Linux, a kernel before 5.13,
    or Landlock left out of the kernel's list of security modules)."""
    if not sys.platform.startswith("linux"):
        return 0
    try:
        return _syscall(_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    except OSError:
        return 0


@dataclass
class Policy:
    """What stays allowed. Everything beneath `read` may be read and executed, beneath `write`
    read, written, created, renamed and removed (not executed); `devices` are device files to
    read, write and ioctl. Every other file-system access the kernel can check, every TCP bind
    and connect, and (ABI >= 6) every signal or abstract UNIX socket to a process outside is
    denied."""

    read: list[str] = field(default_factory=list)
    write: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)


def ruleset(policy: Policy) -> tuple[int, int]:
    """A ruleset file descriptor for `policy` (close-on-exec; reusable: each `restrict` with it
    adds one more layer) and the ABI it was built for. OSError where Landlock is unavailable."""
    version = abi()
    if version < 1:
        raise OSError(38, "Landlock is not available in this kernel")
    handled = _fs_rights(version)
    attr = _RulesetAttr(handled, BIND_TCP | CONNECT_TCP if version >= 4 else 0,
                        SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if version >= 6 else 0)
    size = 24 if version >= 6 else 16 if version >= 4 else 8  # the structure as this ABI knows it
    fd = _syscall(_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    try:
        os.set_inheritable(fd, False)
        for paths, rights in ((policy.read, READ), (policy.write, WRITE), (policy.devices, DEVICE)):
            for path in paths:
                _allow(fd, path, rights & handled)
    except BaseException:
        os.close(fd)
        raise
    return fd, version


def _allow(fd: int, path: str, rights: int) -> None:
    try:
        target = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # a path that does not exist here needs no rule
    try:
        if not os.path.isdir(f"/proc/self/fd/{target}"):
            rights &= _FILE_RIGHTS
        if rights:
            attr = _PathBeneathAttr(rights, target)
            _syscall(_ADD_RULE, ctypes.c_int(fd), ctypes.c_int(_RULE_PATH_BENEATH), ctypes.byref(attr),
                     ctypes.c_uint32(0))
    finally:
        os.close(target)


def restrict(fd: int) -> None:
    """Enforce the ruleset on this thread and everything it starts from now on (no new
    privileges either: setuid programs lose their effect)."""
    if _lib().prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))
    _syscall(_RESTRICT_SELF, ctypes.c_int(fd), ctypes.c_uint32(0))


def confine(policy: Policy) -> int:
    """Build and enforce `policy` at once; the ABI version it was enforced with."""
    fd, version = ruleset(policy)
    try:
        restrict(fd)
    finally:
        os.close(fd)
    return version
