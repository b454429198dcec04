"""Run model-written Python in a sandbox and return a verdict the program cannot forge.

Scoring HumanEval means running code a model wrote, on the user's machine, for every model evaluated.
:class:`Sandbox` runs each program (for HumanEval: prompt + completion + the problem's tests + the check
call) in its own process and answers :class:`ExecuteRequest` with an :class:`ExecutionResult`:
``passed | failed | timeout | error``, exit status or signal, the tails of stdout and stderr, wall and
CPU time, and the protections that were in force for that very program.

What each program gets (Linux; the trusted side is ``_sandbox_server.py``, standard library only):

* a new process forked from a pristine interpreter that has run nothing but the sandbox's own server
  (``fresh=True`` starts a new interpreter per program instead), in its own session and process group;
* rlimits: CPU time (the timeout + 1 s, then SIGKILL), address space, processes (per uid), file size
  (which also caps stdout/stderr: they are anonymous memory files, so a program printing gigabytes is
  stopped at the cap by SIGXFSZ, at no cost to the harness), open files; no core dumps, no locked memory;
* a private, size-capped tmpfs as ``/tmp``, working directory, ``HOME`` and ``TMPDIR`` in its own mount
  namespace (``/var/tmp`` and ``/dev/shm`` are empty tmpfs too; all of it vanishes with the namespace);
  without a mount namespace, a fresh directory on the host, removed afterwards;
* an environment reduced to an allowlist (PATH, LANG, HOME, TMPDIR and thread-count variables): none of
  the parent's variables, so no secrets; the parent is not visible in its own ``/proc``;
* a new network namespace (no interface up, not even loopback: nothing reaches the host's listeners);
* a new PID namespace, the program as its PID 1: when it ends or is killed, the kernel kills every
  process it started, daemons included; the server is also a subreaper and sweeps any descendant;
* when camels runs as root: an unprivileged uid (one per worker, ``uid_base + worker``; no groups, no
  capabilities, ``no_new_privs``), so it cannot write outside its own directory, signal the harness or
  read other processes' environments.

Where the kernel refuses a namespace or camels is not root, the program runs with what is available; the
missing protections are listed in every result (``missing``), a :class:`SandboxWarning` is emitted, and
an in-interpreter guard (audit hooks) refuses sockets, process spawning and signals instead. Nothing is
claimed that was not in force: ``protections`` lists only what the program's own setup confirmed.

The verdict is written by the trusted code after ``exec`` of the whole program returns: a per-run random
nonce on a pipe that only exists inside the program's process (not stdout, not the exit status); the
server then reports to the harness over its own stdout, of which the program never holds a descriptor.
Printing "passed", exiting with status 0 early, raising ``SystemExit``, ``atexit`` or other exit hooks,
killing processes: all read as ``failed``.

What it does **not** protect against (said plainly):

* The tests run in the same interpreter as the completion (as in the study's evaluator), so a completion
  written to subvert them can: return an object equal to everything, patch the test's globals, skip
  test lines with a trace function, or find the verdict pipe and nonce in its own process memory. The
  sandbox keeps such code contained; it cannot make in-process tests tamper-proof.
* Kernel exploits, CPU side channels and resource exhaustion beyond the rlimits (e.g. many tiny files
  on the host directory in the no-mount-namespace fallback) are out of scope; so is the host's file
  system when no unprivileged uid is available (the guard is best effort: an extension module can reach
  the C level past audit hooks).
* A fork of the server shares its memory image: a program can read what the server held (earlier
  programs' text, the server's code). Nothing secret is held there.
* Only Linux is supported (namespaces, ``memfd_create``, ``pidfd_open``, ``prctl``).
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import secrets
import select
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from camels.core.errors import ConfigError
from camels.core.requests import BackendInfo, register_kind
from camels.evals.scoring import register_scorer

SERVER = Path(__file__).with_name("_sandbox_server.py")
STATUSES = ("passed", "failed", "timeout", "error")
# Every protection the sandbox tries for each program, by the name results use.
PROTECTIONS = ("session", "rlimits", "env_allowlist", "private_dir", "no_new_privs", "output_cap",
               "net_namespace", "pid_namespace", "mount_namespace", "private_tmp", "read_only_fs",
               "own_proc", "unprivileged_user")
# What a missing kernel protection is replaced by (best effort), for the warning.
_FALLBACKS = {
    "net_namespace": "sockets refused inside the interpreter",
    "pid_namespace": "descendants swept by the server; signals and spawning refused inside the interpreter",
    "mount_namespace": "a private directory on the host, removed afterwards; /tmp shared",
    "unprivileged_user": "none: the program runs as the harness's user",
}


# What HumanEval-style programs import most; loaded once per server, before any program runs.
PRELOAD = ("typing", "math", "re", "collections", "itertools", "functools", "string", "heapq", "bisect",
           "hashlib", "fractions", "statistics")


class SandboxWarning(UserWarning):
    """A protection the sandbox wanted was not in force (the result's ``missing`` says which)."""


@dataclass(frozen=True, slots=True)
class ExecuteRequest:
    """Run ``program`` (Python source) once; it passes when it runs to its end within ``timeout`` seconds."""

    program: str
    timeout: float = 3.0

    kind = "execute"
    method = "execute"

    def __post_init__(self) -> None:
        if not isinstance(self.program, str):
            raise TypeError("program must be a str")
        if not 0 < float(self.timeout) <= 600:
            raise ValueError(f"timeout must be in (0, 600] seconds, got {self.timeout}")


@dataclass(frozen=True, slots=True)
class ExecutionResult:
    """The verdict on one program.

    * ``status``: ``passed`` (ran to its end), ``failed`` (an exception, an early exit, a signal, the
      output or file size cap), ``timeout`` (wall or CPU limit) or ``error`` (the sandbox could not run it).
    * ``exit_code`` / ``signal``: how the program's process ended (one of them is set unless ``error``).
    * ``stdout`` / ``stderr``: the last 4 KiB of each; ``reason``: a one-line explanation (the exception).
    * ``wall_time`` / ``cpu_time``: seconds (CPU of the program and the children it waited for).
    * ``protections``: what was in force for this program (confirmed by its setup); ``missing``: what
      the sandbox wanted but could not have.
    """

    status: str
    exit_code: int | None = None
    signal: int | None = None
    stdout: str = ""
    stderr: str = ""
    reason: str = ""
    wall_time: float = 0.0
    cpu_time: float | None = None
    protections: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    """Limits and choices of a :class:`Sandbox` (each field documented in its metadata)."""

    workers: int = field(default=0, metadata={"help": "programs run at once (0: one per CPU core available)"})
    memory_mb: int = field(default=1024, metadata={"help": "address-space limit per process (MiB)"})
    max_processes: int = field(default=32, metadata={"help": "processes and threads per worker uid"})
    file_mb: int = field(default=8, metadata={"help": "largest file, and cap of stdout and stderr (MiB)"})
    disk_mb: int = field(default=64, metadata={"help": "size of the private /tmp (mount namespace only)"})
    max_open_files: int = field(default=64, metadata={"help": "open file descriptors per process"})
    uid_base: int = field(default=0x70000000, metadata={
        "help": "when root: worker i runs programs as uid/gid uid_base + i (no passwd entry needed)"})
    fresh: bool = field(default=False, metadata={
        "help": "start a new interpreter for every program instead of forking a pristine server"})
    site_packages: bool = field(default=True, metadata={
        "help": "programs may import the installed third-party packages (numpy ...), as in the study"})
    disable: tuple[str, ...] = field(default=(), metadata={
        "help": "protections not to attempt (net_namespace, pid_namespace, mount_namespace, "
                "unprivileged_user): to test the fallbacks"})
    require: tuple[str, ...] = field(default=(), metadata={
        "help": "protections that must be in force: a program without one is not run (status error)"})
    preload: tuple[str, ...] = field(default=PRELOAD, metadata={
        "help": "standard modules the server imports before forking programs (they then import for free)"})
    python: str = field(default="", metadata={"help": "interpreter for the programs (default: this one)"})
    tmp_base: str = field(default="", metadata={"help": "where fallback directories go (default: TMPDIR)"})
    setup_allowance: float = field(default=0.5, metadata={
        "help": "seconds allowed for namespace setup on top of each program's timeout"})

    def __post_init__(self) -> None:
        for name in (*self.disable, *self.require):
            if name not in PROTECTIONS:
                raise ConfigError(f"sandbox: unknown protection {name!r} (known: {', '.join(PROTECTIONS)})")
        for name in ("memory_mb", "max_processes", "file_mb", "disk_mb", "max_open_files"):
            if getattr(self, name) < 1:
                raise ConfigError(f"sandbox: {name} must be at least 1")
        if self.max_open_files < 8:
            raise ConfigError("sandbox: max_open_files must be at least 8 (the interpreter needs a few)")


def _server_config(cfg: SandboxConfig, slot: int) -> dict[str, Any]:
    root = os.geteuid() == 0
    return {
        "uid": cfg.uid_base + slot if root else None,
        "gid": cfg.uid_base + slot if root else None,
        "memory_bytes": cfg.memory_mb << 20,
        "max_processes": cfg.max_processes,
        "file_bytes": cfg.file_mb << 20,
        "disk_bytes": cfg.disk_mb << 20,
        "disk_inodes": 4096,
        "max_open_files": cfg.max_open_files,
        "disable": list(cfg.disable),
        "tmp_base": cfg.tmp_base or tempfile.gettempdir(),
        "setup_allowance": cfg.setup_allowance,
        "once": cfg.fresh,
        "preload": list(cfg.preload),
    }


def _protections(raw: dict[str, Any], cfg: SandboxConfig) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(in force, missing) from the trusted setup records of one program."""
    ns = raw.get("ns") or {}
    setup = raw.get("setup") or {}
    active = []
    if setup:
        active += ["session"] * bool(setup.get("session")) + ["rlimits", "env_allowlist", "private_dir",
                                                               "no_new_privs", "output_cap"]
        active += [n for n in ("net_namespace", "pid_namespace", "mount_namespace") if ns.get(n) is True]
        active += [n for n in ("private_tmp", "read_only_fs", "own_proc", "unprivileged_user")
                   if setup.get(n) is True]
    # Missing: everything not confirmed in force, whether refused by the kernel or disabled on purpose.
    missing = [n for n in PROTECTIONS if n not in active] if setup else []
    return tuple(active), tuple(missing)


class _Worker:
    """One server process (started on demand, restarted after a fault), used by one thread at a time."""

    def __init__(self, cfg: SandboxConfig, slot: int, tag: str) -> None:
        self.cfg, self.slot, self.tag = cfg, slot, tag
        self.proc: subprocess.Popen | None = None
        self.buf = b""

    def _start(self) -> subprocess.Popen:
        python = self.cfg.python or sys.executable
        args = [python, "-I", "-B"] + ([] if self.cfg.site_packages else ["-S"]) + [str(SERVER), self.tag]
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
        proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=env, cwd="/", start_new_session=True, close_fds=True)
        assert proc.stdin is not None
        proc.stdin.write((json.dumps(_server_config(self.cfg, self.slot)) + "\n").encode())
        proc.stdin.flush()
        self.buf = b""
        return proc

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            if proc.stdin:
                proc.stdin.close()
            proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            _kill_group(proc)
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()

    def _readline(self, deadline: float) -> bytes | None:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def send(self, req: ExecuteRequest) -> str | None:
        """Queue ``req`` at the server (started if needed); an error message if it cannot be reached."""
        if self.proc is None or self.proc.poll() is not None:
            self.stop()
            self.proc = self._start()
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write((json.dumps({"program": req.program, "timeout": req.timeout}) + "\n").encode())
            self.proc.stdin.flush()
        except OSError as e:
            self.stop()
            return f"sandbox server unreachable: {e}"
        return None

    def receive(self, req: ExecuteRequest) -> dict[str, Any] | None:
        """The verdict of the oldest queued request (``req``); None when the server died or stalled (it is
        then stopped, and the requests queued after ``req`` must be sent again)."""
        proc = self.proc
        assert proc is not None
        # The server enforces the limits; this backstop only catches a server that stopped answering.
        line = self._readline(time.monotonic() + req.timeout + self.cfg.setup_allowance + 10.0)
        res = None
        if line is not None:
            try:
                res = json.loads(line)
            except ValueError:
                res = None
        if res is None or self.cfg.fresh:
            self.stop()
        return res

    def serve(self, take: Any, results: list[Any]) -> None:
        """Run requests from ``take()`` (``(index, request)`` or None when there are no more) into
        ``results[index]``, keeping the next request queued at the server while one runs (so the server
        never waits for the harness between programs)."""
        depth = 1 if self.cfg.fresh else 2
        pending: list[tuple[int, ExecuteRequest]] = []
        done = False
        while True:
            while not done and len(pending) < depth:
                job = take()
                if job is None:
                    done = True
                    break
                failure = self.send(job[1])
                if failure:
                    results[job[0]] = {"status": "error", "reason": failure}
                else:
                    pending.append(job)
            if not pending:
                return
            index, req = pending.pop(0)
            res = self.receive(req)
            if res is None:
                res = {"status": "error", "reason": "sandbox server gave no verdict (it died or stalled)"}
                retry, pending = pending, []
                for job in retry:  # queued behind the lost one: never started, send them to a new server
                    failure = self.send(job[1])
                    if failure:
                        results[job[0]] = {"status": "error", "reason": failure}
                    else:
                        pending.append(job)
            results[index] = res


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, 9)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.kill()
        proc.wait(timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        pass


def _default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class Sandbox:
    """Runs :class:`ExecuteRequest` programs in isolation, ``config.workers`` at a time.

    The scorer of the ``execute`` request kind: ``execute(requests)`` answers a list in order. Server
    processes start with the first call and stop at its end (``execute`` leaves no process behind); use
    the sandbox as a context manager to keep them across calls.

    >>> with Sandbox() as sb:                                          # doctest: +SKIP
    ...     sb.run("assert 1 + 1 == 2").status
    'passed'
    """

    def __init__(self, config: SandboxConfig | None = None, **options: Any) -> None:
        if sys.platform != "linux":
            raise ConfigError("the sandbox needs Linux (namespaces, memfd_create, pidfd_open, prctl)")
        cfg = config or SandboxConfig()
        if options:
            cfg = SandboxConfig(**{**asdict(cfg), **options})
        self.config = cfg
        self.workers = cfg.workers or _default_workers()
        self._pool: queue.Queue[_Worker] | None = None
        self._lock = threading.Lock()
        self._held = 0
        self._warned: set[tuple[str, ...]] = set()
        # On the server's command line (inherited by every process it forks): finds them in ``ps``.
        self.tag = f"camels-sandbox-{secrets.token_hex(4)}"

    # -- identity ----------------------------------------------------------------------------------------
    @property
    def info(self) -> BackendInfo:
        """Fingerprint: everything that can change a verdict (limits, protections, server code, Python)."""
        verdict_fields = {f.name: getattr(self.config, f.name) for f in fields(self.config)
                          if f.name not in ("workers", "tmp_base", "python")}
        material = json.dumps({"config": verdict_fields, "python": sys.version,
                               "server": hashlib.sha256(SERVER.read_bytes()).hexdigest(),
                               "root": os.geteuid() == 0}, sort_keys=True, default=list)
        fp = hashlib.sha256(material.encode()).hexdigest()[:16]
        return BackendInfo(name="sandbox", model=f"python{sys.version_info[0]}.{sys.version_info[1]}",
                           fingerprint=f"sandbox-{fp}",
                           details={"config": verdict_fields, "workers": self.workers})

    # -- pool --------------------------------------------------------------------------------------------
    def __enter__(self) -> Sandbox:
        with self._lock:
            self._held += 1
            if self._pool is None:
                self._pool = queue.Queue()
                for slot in range(self.workers):
                    self._pool.put(_Worker(self.config, slot, self.tag))
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(force=False)

    def close(self, force: bool = True) -> None:
        """Stop the server processes (``force``: even if other ``with`` blocks still hold the pool)."""
        with self._lock:
            self._held = 0 if force else max(0, self._held - 1)
            if self._held or self._pool is None:
                return
            pool, self._pool = self._pool, None
        while not pool.empty():
            pool.get_nowait().stop()

    # -- running -----------------------------------------------------------------------------------------
    def _result(self, raw: dict[str, Any]) -> ExecutionResult:
        status = raw.get("status")
        if status not in STATUSES:
            status, raw = "error", {**raw, "reason": f"unknown status {status!r}"}
        active, missing = _protections(raw, self.config)
        reason = raw.get("reason", "")
        if status == "passed" and any(r not in active for r in self.config.require):
            status = "error"
        if self.config.require and raw.get("setup"):
            absent = [r for r in self.config.require if r not in active]
            if absent:
                status, reason = "error", f"required protections not in force: {', '.join(absent)}"
        if missing:
            self._warn(missing)
        return ExecutionResult(status=status, exit_code=raw.get("exit_code"), signal=raw.get("signal"),
                               stdout=raw.get("stdout", ""), stderr=raw.get("stderr", ""), reason=reason,
                               wall_time=float(raw.get("wall_time") or 0.0), cpu_time=raw.get("cpu_time"),
                               protections=active, missing=missing)

    def _warn(self, missing: tuple[str, ...]) -> None:
        with self._lock:
            if missing in self._warned:
                return
            self._warned.add(missing)
        detail = "; ".join(f"{m} (instead: {_FALLBACKS[m]})" if m in _FALLBACKS else m for m in missing)
        warnings.warn(f"sandbox: running without {detail}", SandboxWarning, stacklevel=4)

    def execute(self, requests: Sequence[ExecuteRequest]) -> list[ExecutionResult]:
        """Run every program (``workers`` at a time); results in the order of ``requests``."""
        for r in requests:
            if not isinstance(r, ExecuteRequest):
                raise TypeError(f"the sandbox runs ExecuteRequest, not {type(r).__name__}")
        if not requests:
            return []
        raw: list[Any] = [None] * len(requests)
        jobs = iter(enumerate(requests))
        lock = threading.Lock()

        def take() -> tuple[int, ExecuteRequest] | None:
            with lock:
                return next(jobs, None)

        def serve(worker: _Worker) -> None:
            try:
                worker.serve(take, raw)
            except Exception as e:  # noqa: BLE001 - a harness fault is an error verdict, never a pass
                worker.stop()
                for i, r in enumerate(raw):
                    if r is None:
                        raw[i] = {"status": "error", "reason": f"sandbox harness: {type(e).__name__}: {e}"}

        with self:
            assert self._pool is not None
            pool = self._pool
            workers = [pool.get() for _ in range(min(self.workers, len(requests)))]
            try:
                threads = [threading.Thread(target=serve, args=(w,), daemon=True) for w in workers]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
            finally:
                for w in workers:
                    pool.put(w)
        return [self._result(r if r is not None else {"status": "error", "reason": "not run"}) for r in raw]

    def run(self, program: str, timeout: float = 3.0) -> ExecutionResult:
        """Run one program (convenience for :meth:`execute`)."""
        return self.execute([ExecuteRequest(program, timeout)])[0]

    def check(self) -> ExecutionResult:
        """Run an empty program: its result lists what this machine allows (``protections``/``missing``)."""
        return self.run("pass", timeout=5.0)


register_kind(ExecuteRequest, ExecutionResult)


def sandbox_for_task(task: Any) -> Sandbox:
    """The default scorer of ``execute`` requests: a :class:`Sandbox` configured from the task's config
    fields named ``sandbox_<field of SandboxConfig>`` (e.g. ``sandbox_workers``, ``sandbox_memory_mb``)."""
    cfg = getattr(task, "config", None)
    options = {}
    for f in fields(SandboxConfig):
        value = getattr(cfg, f"sandbox_{f.name}", None)
        if value is not None:
            options[f.name] = tuple(value) if isinstance(value, list) else value
    return Sandbox(**options)


register_scorer("execute", sandbox_for_task)
