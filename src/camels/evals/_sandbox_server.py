"""The trusted side of :mod:`camels.evals.sandbox`: a small server that runs one untrusted program at a time.

This file is run as a script by a fresh interpreter (``python -I <this file>``) that the harness starts
for each worker; it imports nothing of camels and only the standard library. It reads requests from its
stdin (one JSON line each), runs every program in a new child process and writes one JSON line per
program to its stdout, which only it holds: the program never has a descriptor of it.

Per program, the process tree is::

    server (trusted, never runs untrusted code)
      └─ setup process: new network / PID / mount namespaces (unshare), then fork
           └─ program process: PID 1 of its own PID namespace; private /tmp; rlimits; other uid; runs code

The program process is a fork of this pristine interpreter: it has executed nothing but this file, so it
starts from the same state as a freshly started one (with ``fresh`` mode the whole server is started anew
for every program instead). It closes every inherited descriptor except three pipes it was built with
(stdin from /dev/null, stdout/stderr into size-capped anonymous memory files) and one report pipe, then
drops to an unprivileged uid, and only then compiles and runs the program.

The verdict: the program passes when ``exec`` of the whole program returned without an exception and
the trusted code after it wrote a per-run random nonce to the report pipe. Output, exit status, exit
hooks (``atexit``, ``sys.exit``, ``os._exit``) and signals carry no verdict. What the setup steps
achieved is written to the report pipe *before* the program starts, so the program cannot change that
record (a pipe is append-only); the server keeps only those first records.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import resource
import select
import signal
import sys
import time
import traceback

CLONE_NEWNS = 0x00020000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND = 1, 2, 4, 8, 32, 4096
MS_REC, MS_PRIVATE = 0x4000, 1 << 18
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 4, 36, 38

EXIT_SETUP_FAILED = 70
TAIL = 4096

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]


def _call(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _prctl(option: int, arg: int) -> None:
    _call(_libc.prctl(option, arg, 0, 0, 0), f"prctl({option})")


def _enc(text: str | None) -> bytes | None:
    return text.encode() if text is not None else None


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = _enc
    _call(_libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


def _write_line(fd: int, obj: dict) -> None:
    data = (json.dumps(obj, separators=(",", ":")) + "\n").encode()
    while data:
        data = data[os.write(fd, data):]


# --- namespaces -----------------------------------------------------------------------------------------
def _new_pid_namespace(cfg: dict) -> bool | str:
    """In the server, before the fork: the next child starts a new PID namespace as its PID 1.

    ``unshare(CLONE_NEWPID)`` only changes the namespace of the children to come, and may be done again
    only once the server's children namespace is its own again: ``setns`` to its own PID namespace first.
    """
    if "pid_namespace" in cfg["disable"]:
        return "disabled"
    if cfg.get("pid_ns_fd") is not None:
        _libc.setns(cfg["pid_ns_fd"], CLONE_NEWPID)
    if _libc.unshare(CLONE_NEWPID) == 0:
        return True
    return os.strerror(ctypes.get_errno())


def _own_namespaces(cfg: dict) -> dict:
    """In the program process: new network and mount namespaces (each alone, so one refusal loses only
    itself)."""
    got = {}
    for name, flag in (("net_namespace", CLONE_NEWNET), ("mount_namespace", CLONE_NEWNS)):
        if name in cfg["disable"] or (name == "mount_namespace" and not cfg["view"]):
            got[name] = "disabled" if name in cfg["disable"] else "refused for the server"
            continue
        ok = _libc.unshare(flag) == 0
        got[name] = True if ok else os.strerror(ctypes.get_errno())
    return got


# --- inside the program process, before untrusted code ------------------------------------------------
def _interpreter_dirs() -> list[str]:
    """Directories the program's imports read: the standard library and, with site, site-packages."""
    dirs = {sys.base_prefix, sys.base_exec_prefix, sys.prefix, sys.exec_prefix}
    if "site" in sys.modules:
        import site

        dirs.update(site.getsitepackages())
    return sorted({os.path.realpath(d) for d in dirs if os.path.isdir(d)})


def _blocked_ancestor(path: str) -> str | None:
    """The first directory on ``path`` that other users cannot enter (e.g. a 0700 /root holding pyenv)."""
    cur = "/"
    for part in path.strip("/").split("/"):
        cur = os.path.join(cur, part)
        try:
            if not os.stat(cur).st_mode & 0o001:
                return cur
        except OSError:
            return None
    return None


def _expose(paths: list[str]) -> list[str]:
    """Make ``paths`` reachable for the unprivileged uid without opening what blocks them: the blocking
    directory is covered by an empty tmpfs, and only ``paths`` are bound into it, read-only."""
    plan = [(p, b) for p in paths if (b := _blocked_ancestor(p)) is not None and b != p]
    if not plan:
        return []
    held = {p: os.open(p, os.O_PATH | os.O_DIRECTORY) for p, _ in plan}
    for blocked in sorted({b for _, b in plan}, key=len):
        _mount("tmpfs", blocked, "tmpfs", MS_NOSUID | MS_NODEV, "size=65536,mode=0755")
    for path, fd in held.items():
        os.makedirs(path, mode=0o755, exist_ok=True)
        _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
        _mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
        os.close(fd)
    return sorted(held)


_MOUNT_FLAGS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": 1024,
                "nodiratime": 2048, "relatime": 1 << 21}


def _read_only_all() -> bool:
    """Remount every mount of this namespace read-only (keeping its other flags). True when all were."""
    ok = True
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        rows = [line.split() for line in f]
    for row in rows:
        target = row[4].encode().decode("unicode_escape")  # mountinfo escapes spaces as \040
        flags = MS_BIND | MS_REMOUNT | MS_RDONLY
        for opt in row[5].split(","):
            flags |= _MOUNT_FLAGS.get(opt, 0)
        if _libc.mount(None, target.encode(), None, flags, None) != 0:
            ok = False
    return ok


def _private_view(cfg: dict) -> dict:
    """Once per server: its own mount namespace (private propagation) in which the whole file system is
    read-only and the interpreter's files are exposed to the unprivileged uid when a 0700 directory (a
    home holding pyenv) blocks them. Every program's mount namespace starts as a copy of this one and
    only adds its own writable tmpfs mounts."""
    if "mount_namespace" in cfg["disable"] or _libc.unshare(CLONE_NEWNS) != 0:
        return {}
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    exposed = _expose(_interpreter_dirs())
    # The other world-writable places become empty (and, below, read-only) for every program alike.
    for path in ("/var/tmp", "/dev/shm"):
        if os.path.isdir(path):
            _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=65536,mode=0755")
    return {"exposed": exposed, "read_only_fs": _read_only_all()}


def _private_dirs(cfg: dict, ns: dict, uid: int, gid: int) -> tuple[str, dict]:
    """The program's working directory, and what was done to the file system view."""
    done: dict = {}
    if ns.get("mount_namespace") is True:
        # (Propagation is already private: this namespace is a copy of the server's.)
        # A fresh, size-capped tmpfs is the program's /tmp, HOME and cwd; it vanishes with the namespace.
        opts = f"size={cfg['disk_bytes']},nr_inodes={cfg['disk_inodes']},mode=0700,uid={uid},gid={gid}"
        _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, opts)
        done["private_tmp"] = True
        done["read_only_fs"] = bool(cfg["view"].get("read_only_fs"))
        if ns.get("pid_namespace") is True:
            _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
            done["own_proc"] = True
        return "/tmp", done
    # No mount namespace: a fresh directory on the host, made by the setup process, removed by the server.
    return cfg["host_dir"], done


def _limits(cfg: dict) -> dict:
    cpu = int(cfg["timeout"]) + 1
    limits = {
        "RLIMIT_CPU": (cpu, cpu + 1),
        "RLIMIT_AS": (cfg["memory_bytes"],) * 2,
        "RLIMIT_DATA": (cfg["memory_bytes"],) * 2,
        "RLIMIT_NPROC": (cfg["max_processes"],) * 2,
        "RLIMIT_FSIZE": (cfg["file_bytes"],) * 2,
        "RLIMIT_NOFILE": (cfg["max_open_files"],) * 2,
        "RLIMIT_CORE": (0, 0),
        "RLIMIT_MEMLOCK": (0, 0),
    }
    for name, value in limits.items():
        resource.setrlimit(getattr(resource, name), value)
    return {k: v[1] for k, v in limits.items()}


def _guard(blocked: frozenset[str]) -> None:
    """In-interpreter refusals, installed only where a kernel protection is missing (best effort: code
    that reaches the C level, e.g. through an extension module, is not stopped by them)."""

    def hook(event: str, args: tuple) -> None:
        if event in blocked or (event == "import" and args and args[0] in ("_ctypes", "ctypes")):
            raise PermissionError(f"sandbox: {event} is not allowed here")

    sys.addaudithook(hook)


NET_EVENTS = ("socket.__new__", "socket.connect", "socket.bind", "socket.sendto", "socket.getaddrinfo")
SPAWN_EVENTS = ("subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn", "os.system", "ctypes.dlopen")
KILL_EVENTS = ("os.kill", "os.killpg", "signal.pthread_kill")


def _program(cfg: dict, req: dict, pid_ns: bool | str, fds: dict) -> None:
    """Set up the program process, then run the untrusted program. Never returns."""
    report = fds["report"]
    try:
        ns = {**_own_namespaces(cfg), "pid_namespace": pid_ns is True and os.getpid() == 1}
        if ns["pid_namespace"] is not True:
            ns["pid_namespace"] = pid_ns if pid_ns is not True else "not PID 1"
        _write_line(report, {"ns": ns})
        os.setsid()
        uid, gid = cfg["uid"], cfg["gid"]
        switch = uid is not None and "unprivileged_user" not in cfg["disable"] and os.geteuid() == 0
        workdir, dirs = _private_dirs(cfg, ns, uid if switch else os.geteuid(), gid if switch else os.getegid())
        os.chdir(workdir)
        limits = _limits(cfg)
        # Descriptors: 0 = /dev/null, 1/2 = capped memory files, 3 = report pipe; nothing else survives.
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(fds["out"], 1)
        os.dup2(fds["err"], 2)
        os.dup2(report, 3)  # after 0-2: the report pipe is never one of them
        report = 3
        os.closerange(4, 1 << 20)
        if switch:
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
        _prctl(PR_SET_NO_NEW_PRIVS, 1)
        stdlib = os.path.dirname(os.__file__)
        if not os.access(stdlib, os.R_OK | os.X_OK):
            raise PermissionError(
                f"the standard library ({stdlib}) is not readable by uid {os.getuid()} and no mount namespace "
                "exposes it: install Python where other users can read it, or disable unprivileged_user")
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # after the uid change, which clears it
        os.environ.clear()
        os.environ.update({"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": workdir,
                           "TMPDIR": workdir, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1",
                           "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
        blocked: set[str] = set()
        if ns.get("net_namespace") is not True:
            blocked.update(NET_EVENTS + SPAWN_EVENTS)
        if ns.get("pid_namespace") is not True:
            blocked.update(KILL_EVENTS + SPAWN_EVENTS)
        if blocked:
            _guard(frozenset(blocked))
        sys.stdin = open(0, encoding="utf-8", errors="replace")  # noqa: SIM115 - lives as long as the process
        sys.stdout = open(1, "w", buffering=1, encoding="utf-8", errors="backslashreplace")  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="backslashreplace")  # noqa: SIM115
        sys.argv = ["<program>"]
        setup = {"unprivileged_user": switch and os.getuid() == uid and os.geteuid() == uid,
                 "uid": os.getuid(), "session": os.getsid(0) == os.getpid(), "no_new_privs": True,
                 "env_allowlist": True, "rlimits": limits, "private_dir": workdir,
                 "interpreter_guard": sorted(blocked), "setup_cpu": round(time.process_time(), 5), **dirs}
        _write_line(report, {"setup": setup})
    except BaseException as e:  # noqa: BLE001 - any setup failure: refuse to run the program
        try:
            _write_line(report, {"setup_error": f"{type(e).__name__}: {e}"})
        finally:
            os._exit(EXIT_SETUP_FAILED)

    nonce = (req["nonce"] + "\n").encode()
    write, flush_exit = os.write, os._exit
    del req["nonce"]
    try:
        source = req.pop("program")
        # Tracebacks show the program's lines (the module linecache is imported by traceback anyway).
        linecache = sys.modules.get("linecache")
        if linecache is not None:
            linecache.cache["<program>"] = (len(source), None, source.splitlines(True), "<program>")
        code = compile(source, "<program>", "exec")
        exec(code, {})  # a fresh namespace, as the study's evaluator ran its programs
    except BaseException as e:  # noqa: BLE001 - every way out of the program but a normal return fails
        try:
            tb = e.__traceback__.tb_next if e.__traceback__ is not None else None
            sys.stderr.write("".join(traceback.format_exception(type(e), e, tb))[-TAIL:])
            sys.stderr.flush()
        except BaseException:  # noqa: BLE001
            pass
        flush_exit(1)
    try:
        write(report, nonce)
    except BaseException:  # noqa: BLE001
        flush_exit(1)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001
            pass
    flush_exit(0)


# --- in the server -----------------------------------------------------------------------------------------
def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return kids
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                kids.extend(int(x) for x in f.read().split())
        except OSError:
            pass
    return kids


def _descendants() -> list[int]:
    """Every live process below this server (orphans are reparented to it: it is a subreaper)."""
    found: list[int] = []
    frontier = [os.getpid()]
    while frontier:
        kids = [k for p in frontier for k in _children(p) if k not in found]
        found.extend(kids)
        frontier = kids
    return found


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _sweep() -> int:
    """Kill and reap every remaining descendant (orphans come to this server: it is a subreaper)."""
    killed = 0
    for _ in range(1000):
        _reap()
        left = _descendants()
        if not left:
            return killed
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
        time.sleep(0.002)
    return killed


def _read_all(fd: int) -> bytes:
    os.set_blocking(fd, False)
    chunks = []
    while True:
        try:
            b = os.read(fd, 1 << 16)
        except BlockingIOError:
            break
        if not b:
            break
        chunks.append(b)
        if sum(map(len, chunks)) > 1 << 20:
            break
    return b"".join(chunks)


def _tail(fd: int) -> tuple[str, int]:
    size = os.fstat(fd).st_size
    data = os.pread(fd, TAIL, max(0, size - TAIL))
    return data.decode("utf-8", errors="replace"), size


def _record(line: bytes) -> dict:
    try:
        obj = json.loads(line)
    except ValueError:
        return {}
    return obj if isinstance(obj, dict) else {}


def run_one(cfg: dict, req: dict, stdin: Input | None = None) -> dict:
    """Run one program in a new child process and return its verdict (a JSON-ready dict)."""
    cfg = {**cfg, "timeout": float(req["timeout"])}
    nonce = os.urandom(16).hex()
    report_r, report_w = os.pipe()
    out = os.memfd_create("stdout")
    err = os.memfd_create("stderr")
    host_dir = None
    if not cfg["view"]:
        # No mount namespace: the program's private directory is a fresh one on the host, removed below.
        import tempfile

        host_dir = tempfile.mkdtemp(prefix="camels-sbx-", dir=cfg["tmp_base"])
        if cfg["root"] and cfg["uid"] is not None and "unprivileged_user" not in cfg["disable"]:
            os.chown(host_dir, cfg["uid"], cfg["gid"])
    cfg["host_dir"] = host_dir or ""
    pid_ns = _new_pid_namespace(cfg)
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(report_r)
        _program(cfg, {**req, "nonce": nonce}, pid_ns, {"report": report_w, "out": out, "err": err})
    os.close(report_w)
    pidfd = os.pidfd_open(pid)
    deadline = t0 + cfg["timeout"] + cfg["setup_allowance"]
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    if stdin is not None:
        poller.register(0, select.POLLIN)
    while True:
        events = poller.poll(max(0.0, deadline - time.monotonic()) * 1000)
        if stdin is not None and any(fd == 0 for fd, _ in events):
            stdin.fill()  # more input, or the harness is gone: then stop the program now
            if stdin.closed:
                poller.unregister(0)
                events = []
                deadline = 0.0
        if any(fd == pidfd for fd, _ in events) or time.monotonic() >= deadline:
            break
    timed_out = not select.select([pidfd], [], [], 0)[0]
    if timed_out:
        os.kill(pid, signal.SIGKILL)  # PID 1 of its namespace: everything it started goes with it
    _, status, usage = os.wait4(pid, 0)
    wall = time.monotonic() - t0
    os.close(pidfd)
    swept = _sweep()  # without a PID namespace, descendants may remain (they were reparented here)
    report_raw = _read_all(report_r)
    os.close(report_r)
    stdout, out_size = _tail(out)
    stderr, err_size = _tail(err)
    os.close(out)
    os.close(err)
    if host_dir:
        import shutil

        shutil.rmtree(host_dir, ignore_errors=True)
    lines = report_raw.split(b"\n")
    # Trusted records: the program process writes its namespaces, then its setup, before any untrusted
    # code runs (a pipe keeps the order and cannot be rewritten). Anything later may come from the program.
    ns = _record(lines[0]).get("ns")
    second = _record(lines[1]) if len(lines) > 1 else {}
    setup = second.get("setup")
    passed = nonce.encode() in lines[2:]
    result = {"stdout": stdout, "stderr": stderr, "stdout_bytes": out_size, "stderr_bytes": err_size,
              "wall_time": round(wall, 4), "cpu_time": round(usage.ru_utime + usage.ru_stime, 4),
              "exit_code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
              "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
              "ns": ns, "setup": setup, "swept": swept, "reason": ""}
    setup_error = second.get("setup_error") or _record(lines[0]).get("setup_error")
    if setup_error or ns is None or (setup is None and not timed_out):
        result.update(status="error", reason=f"sandbox setup failed: {setup_error or 'no setup record'}")
    elif passed:
        result["status"] = "passed"
    elif timed_out:
        result.update(status="timeout", reason=f"wall time limit of {cfg['timeout']} s")
    else:
        result["status"] = "failed"
        sig = result["signal"]
        if sig == signal.SIGXFSZ or out_size >= cfg["file_bytes"] or err_size >= cfg["file_bytes"]:
            result["reason"] = "output or file size limit"
        elif sig in (signal.SIGXCPU, signal.SIGKILL) and result["cpu_time"] >= int(cfg["timeout"]) + 1:
            result["status"], result["reason"] = "timeout", "CPU time limit"
        elif sig is not None:
            result["reason"] = f"killed by signal {signal.Signals(sig).name}"
        else:
            last = stderr.strip().splitlines()[-1:] if stderr.strip() else []
            result["reason"] = last[0][:300] if last else f"exit status {result['exit_code']} before the end"
    return result


class Input:
    """The request stream from the harness (stdin). Its end means the harness is gone."""

    def __init__(self) -> None:
        self.buf = b""
        self.closed = False

    def fill(self) -> None:
        chunk = os.read(0, 1 << 16)
        if chunk:
            self.buf += chunk
        else:
            self.closed = True

    def line(self) -> bytes | None:
        while b"\n" not in self.buf:
            if self.closed:
                return None
            self.fill()
        line, self.buf = self.buf.split(b"\n", 1)
        return line


def main() -> None:
    # No parent-death signal here: the harness thread that started this server may end before the
    # harness does. The end of stdin is the signal instead (watched while a program runs, too).
    _prctl(PR_SET_DUMPABLE, 0)  # no ptrace, no /proc/<pid>/fd or mem of this process for same-uid code
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    stdin = Input()
    first = stdin.line()
    if first is None:
        return
    cfg = json.loads(first)
    cfg["root"] = os.geteuid() == 0
    cfg["disable"] = frozenset(cfg.get("disable", ()))
    cfg["view"] = _private_view(cfg)
    try:
        cfg["pid_ns_fd"] = os.open("/proc/self/ns/pid", os.O_RDONLY)
    except OSError:
        cfg["pid_ns_fd"] = None
    # Modules most programs import (HumanEval's ``from typing import List`` ...), imported once here by
    # trusted code: every forked program finds them loaded, as pristine as a fresh import would make them.
    import importlib

    for name in cfg.get("preload", ()):
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    # Every program is a fork of this process: objects that exist now are never collected, so the
    # children's garbage collector need not touch (and copy) their pages.
    gc.collect()
    gc.freeze()
    once = cfg.get("once", False)
    while True:
        line = stdin.line()
        if line is None:
            break
        req = json.loads(line)
        try:
            res = run_one(cfg, req, stdin)
        except Exception:  # noqa: BLE001 - a server fault is an error verdict, never a pass
            res = {"status": "error", "reason": "sandbox server: " + traceback.format_exc()[-TAIL:]}
        if stdin.closed:
            break
        res["id"] = req.get("id")
        _write_line(1, res)
        if once:
            break
    _sweep()


if __name__ == "__main__":
    main()
