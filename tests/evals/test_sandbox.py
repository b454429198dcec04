"""The sandbox against hostile completions: each is scored failed (or timeout), the harness is unharmed,
the machine is clean afterwards and no process is left behind.

Every hostile program is a HumanEval-shaped program (prompt + completion + tests + check call) whose
completion attacks instead of solving. They run together, in parallel, in one ``execute`` call (the
slow ones are bounded by a 1 s limit), so the battery costs a few seconds.
"""

from __future__ import annotations

import os
import secrets
import socket
import textwrap
import threading
import warnings
from pathlib import Path

import pytest

from camels.evals.sandbox import (
    PROTECTIONS,
    ExecuteRequest,
    ExecutionResult,
    Sandbox,
    SandboxConfig,
    SandboxWarning,
)

pytestmark = pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="the sandbox needs Linux >= 5.3")

PROMPT = 'def add(a: int, b: int) -> int:\n    """Return the sum of a and b."""\n'
TEST = "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n"
ROOT = os.geteuid() == 0
SECRET_VAR = "CAMELS_SANDBOX_TEST_SECRET"


def program(completion: str) -> str:
    """prompt + completion + tests + check call, as HumanEval builds it."""
    return PROMPT + textwrap.indent(textwrap.dedent(completion).strip("\n"), "    ") + "\n\n" + TEST + "\ncheck(add)\n"


def sandbox_pids(sb: Sandbox) -> list[int]:
    """Live processes of this sandbox: running as one of its uids (when root) or forked from its servers."""
    found = []
    uids = range(sb.config.uid_base, sb.config.uid_base + sb.workers)
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            status = Path(f"/proc/{name}/status").read_text()
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields["State"].split()[0] == "Z":
            continue
        if (ROOT and int(fields["Uid"].split()[0]) in uids) or sb.tag.encode() in cmdline:
            found.append(int(name))
    return found


def unique_uids() -> int:
    """A uid range of its own for each sandbox of the tests (tests may run in parallel processes)."""
    return 0x70000000 + secrets.randbelow(1 << 20) * 16


# --- the world the hostile programs attack --------------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Canaries (next to this file: visible inside the sandbox; under /tmp; in the real home), a loopback
    TCP listener and a UDP socket, and a secret in the harness's environment."""
    tag = secrets.token_hex(6)
    visible = Path(__file__).resolve().parent / f".canary-{tag}"
    visible.mkdir()
    visible.chmod(0o777)  # world-writable: only the read-only file system view protects it
    canaries = {visible / "canary.txt": "visible", Path(f"/tmp/camels-canary-{tag}"): "tmp",
                tmp_path_factory.mktemp("outside") / "canary.txt": "outside"}
    home = Path.home()
    if os.access(home, os.W_OK):
        canaries[home / f".camels-canary-{tag}"] = "home"
    for path, text in canaries.items():
        path.write_text(text)
        path.chmod(0o666)
    new_files = [visible / "new.txt", Path(f"/tmp/camels-new-{tag}"), home / f".camels-new-{tag}"]
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(8)
    tcp.setblocking(False)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.setblocking(False)
    secret = f"s3cret-{tag}"
    old = os.environ.get(SECRET_VAR)
    os.environ[SECRET_VAR] = secret
    yield {"canaries": canaries, "new_files": new_files, "tcp": tcp, "udp": udp, "secret": secret,
           "tcp_port": tcp.getsockname()[1], "udp_port": udp.getsockname()[1], "tag": tag}
    if old is None:
        os.environ.pop(SECRET_VAR, None)
    else:
        os.environ[SECRET_VAR] = old
    tcp.close()
    udp.close()
    for path in list(canaries) + new_files:
        path.unlink(missing_ok=True)
    visible.rmdir()


def hostile(world) -> dict[str, str]:
    """name -> completion. None of them returns a + b."""
    paths = [str(p) for p in world["canaries"]]
    new = [str(p) for p in world["new_files"]]
    harness = os.getpid()
    return {
        "infinite_loop": "while True:\n    pass",
        "loop_ignoring_signals": """
            import signal
            for s in signal.valid_signals():
                try:
                    signal.signal(s, signal.SIG_IGN)
                except (OSError, ValueError, RuntimeError):
                    pass
            while True:
                pass""",
        "fork_bomb": """
            import os
            while True:
                try:
                    os.fork()
                except OSError:
                    pass""",
        "detached_daemon": """
            import os, time
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    for _ in range(600):
                        time.sleep(0.1)
                os._exit(0)
            return a - b""",
        "thread_bomb": """
            import threading, time
            while True:
                threading.Thread(target=time.sleep, args=(60,), daemon=True).start()""",
        "memory_bomb": """
            import resource
            for lim in (resource.RLIMIT_AS, resource.RLIMIT_DATA, resource.RLIMIT_NPROC):
                try:
                    resource.setrlimit(lim, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
                    print("raised", lim)
                except (ValueError, OSError) as e:
                    print("refused", type(e).__name__)
            blocks = []
            while True:
                blocks.append(bytearray(1 << 27))""",
        "output_flood": """
            import sys
            chunk = "y" * (1 << 20)
            while True:
                sys.stdout.write(chunk)
                sys.stderr.write(chunk)""",
        "files_outside": f"""
            import os, shutil
            for p in {paths!r}:
                for attempt in (lambda: open(p, "w").write("pwned"), lambda: os.remove(p),
                                lambda: shutil.rmtree(os.path.dirname(p)), lambda: os.chmod(p, 0)):
                    try:
                        attempt()
                        print("did", p)
                    except OSError as e:
                        print("refused", p, type(e).__name__)
            for p in {new!r}:
                try:
                    open(p, "w").write("pwned")
                    print("created", p)
                except OSError as e:
                    print("refused", p, type(e).__name__)
            return None""",
        "loopback": f"""
            import socket
            for attempt in (lambda: socket.create_connection(("127.0.0.1", {world['tcp_port']}), timeout=0.5)
                                              .sendall(b"leak"),
                            lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                                          .sendto(b"leak", ("127.0.0.1", {world['udp_port']})),
                            lambda: socket.create_connection(("1.1.1.1", 53), timeout=0.5)):
                try:
                    attempt()
                    print("sent")
                except OSError as e:
                    print("refused", type(e).__name__, e)
            return None""",
        "secret_from_environment": f"""
            import os, glob
            found = [v for v in os.environ.values()]
            for path in glob.glob("/proc/*/environ") + ["/proc/{harness}/environ", "/proc/1/environ"]:
                try:
                    found.append(open(path, "rb").read().decode(errors="replace"))
                except OSError:
                    pass
            print("\\n".join(found))
            return found""",
        "kill_parent": f"""
            import os, signal
            for attempt in (lambda: os.kill(os.getppid(), signal.SIGKILL), lambda: os.kill({harness}, 9),
                            lambda: os.kill(-1, signal.SIGKILL)):
                try:
                    attempt()
                except (OSError, PermissionError) as e:
                    print("refused", type(e).__name__)
            for pid in [int(p) for p in os.listdir("/proc") if p.isdigit()]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            return a - b""",
        "forged_print_and_exit_0": """
            import sys
            print("passed")
            print('{"status": "passed"}')
            sys.exit(0)""",
        "forged_os_exit_0": "import os\nos._exit(0)",
        "forged_exit_hooks": """
            import atexit, os, sys
            atexit.register(lambda: print("passed"))
            atexit.register(lambda: os._exit(0))
            sys.excepthook = lambda *a: print("passed")
            raise ValueError("not implemented")""",
        "forged_verdict_on_every_fd": """
            import os
            fake = b'{"status":"passed"}\\n' + b"0" * 32 + b"\\n" + os.urandom(16).hex().encode() + b"\\n"
            for fd in range(1024):
                try:
                    os.write(fd, fake)
                except OSError:
                    pass
            os._exit(0)""",
        "forged_system_exit_in_call": "raise SystemExit(0)",
        "forged_keyboard_interrupt": "raise KeyboardInterrupt",
    }


@pytest.fixture(scope="module")
def battery(world):
    completions = hostile(world)
    reqs = [ExecuteRequest(program(c), timeout=1.0) for c in completions.values()]
    reqs.append(ExecuteRequest(program("return a + b"), timeout=1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SandboxWarning)
        with Sandbox(workers=2, uid_base=unique_uids(), memory_mb=256) as sb:
            results = sb.execute(reqs)
            after = sb.run(program("return a + b"), timeout=1.0)  # the pool still works after the attacks
            servers = [p for p in sandbox_pids(sb) if Path(f"/proc/{p}/status").exists()]
            running_as_sandbox = [p for p in servers if _uid(p) != os.geteuid()]
        leftovers = sandbox_pids(sb)
    named = dict(zip(completions, results))
    return {"results": named, "control": results[-1], "after": after, "servers": servers,
            "leftovers_open": running_as_sandbox, "leftovers_closed": leftovers}


def _uid(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return -1
    return int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])


NAMES = list(hostile({"canaries": {}, "new_files": [], "tcp_port": 1, "udp_port": 1}))


def test_correct_and_wrong_completions():
    with Sandbox(workers=2, uid_base=unique_uids()) as sb:
        ok, wrong, syntax = sb.execute([ExecuteRequest(program("return a + b")),
                                        ExecuteRequest(program("return a - b")),
                                        ExecuteRequest(program("return a +"))])
    assert (ok.status, ok.exit_code) == ("passed", 0)
    assert (wrong.status, wrong.exit_code) == ("failed", 1)
    assert wrong.reason == "AssertionError" and "assert candidate(2, 3) == 5" in wrong.stderr
    assert syntax.status == "failed" and syntax.reason.startswith("SyntaxError")


@pytest.mark.parametrize("name", NAMES)
def test_hostile_completion_is_not_a_pass(battery, name):
    res: ExecutionResult = battery["results"][name]
    assert res.status in ("failed", "timeout"), (name, res)
    assert res.status != "error", res.reason


def test_control_program_passes_among_the_hostile_ones(battery):
    assert battery["control"].status == "passed"
    assert battery["after"].status == "passed"


def test_limits_stop_what_they_should(battery):
    r = battery["results"]
    for name in ("infinite_loop", "loop_ignoring_signals"):
        assert r[name].status == "timeout", r[name]
    mem = r["memory_bomb"]
    assert mem.status == "failed" and mem.reason == "MemoryError", mem
    assert "raised" not in mem.stdout and mem.stdout.count("refused") == 3, mem.stdout
    # The thread limit stops the bomb; on a heavily loaded machine the 3 s budget may run out first.
    bomb = r["thread_bomb"]
    assert bomb.status == "timeout" or (bomb.status == "failed" and "can't start new thread" in bomb.reason), bomb
    flood = r["output_flood"]
    assert flood.status == "failed" and flood.reason == "output or file size limit"
    assert 0 < len(flood.stdout) <= 4096 and set(flood.stdout) == {"y"}


def test_no_process_left_behind(battery):
    assert len(battery["servers"]) == 2  # while the pool is open: only its two servers, ...
    assert battery["leftovers_open"] == []  # ... nothing of the programs
    assert battery["leftovers_closed"] == []  # and after it closed, nothing at all


def test_canaries_intact_and_nothing_written_outside(battery, world):
    files = battery["results"]["files_outside"]
    assert files.status == "failed"
    lines = files.stdout.splitlines()
    # Writes to "/tmp/..." land in the program's own private /tmp; every other attempt must be refused.
    done = [line for line in lines if line.startswith(("did", "created")) and " /tmp/" not in line]
    assert done == [] and any(line.startswith("refused") for line in lines), files.stdout
    for path, text in world["canaries"].items():
        assert path.read_text() == text, path
        assert path.stat().st_mode & 0o777 == 0o666
    for path in world["new_files"]:
        assert not path.exists(), path


def test_loopback_listener_receives_nothing(battery, world):
    res = battery["results"]["loopback"]
    assert "sent" not in res.stdout.split(), res.stdout
    with pytest.raises(BlockingIOError):
        world["tcp"].accept()
    with pytest.raises(BlockingIOError):
        world["udp"].recvfrom(16)


def test_secrets_do_not_reach_the_program(battery, world):
    res = battery["results"]["secret_from_environment"]
    assert res.stdout  # it did print the environments it could read ...
    assert world["secret"] not in res.stdout + res.stderr  # ... and the secret was in none of them
    assert "PATH=" not in res.stdout or SECRET_VAR not in res.stdout


def test_forged_passes_read_as_failures(battery):
    r = battery["results"]
    assert r["forged_print_and_exit_0"].reason == "SystemExit: 0"
    assert "passed" in r["forged_print_and_exit_0"].stdout
    assert r["forged_os_exit_0"].exit_code == 0 and r["forged_os_exit_0"].status == "failed"
    assert r["forged_verdict_on_every_fd"].exit_code == 0 and r["forged_verdict_on_every_fd"].status == "failed"
    assert r["forged_exit_hooks"].reason == "ValueError: not implemented"
    assert r["forged_system_exit_in_call"].reason == "SystemExit: 0"


def test_harness_unharmed(battery):
    r = battery["results"]["kill_parent"]
    assert r.status == "failed"
    assert os.environ.get(SECRET_VAR)  # this process and its environment are intact


@pytest.mark.skipif(not ROOT, reason="namespaces and the uid switch need root on this path")
def test_protections_claimed_are_real(tmp_path):
    """The program checks its own isolation: it is PID 1, not root, has no network, sees only its own
    empty /tmp, cannot write elsewhere and got nothing of the parent's environment."""
    host_net = os.readlink("/proc/self/ns/net")
    host_mnt = os.readlink("/proc/self/ns/mnt")
    check = f"""
import os, socket
assert os.getpid() == 1
assert os.getuid() != 0 and os.geteuid() != 0 and os.getgroups() == []
assert os.readlink("/proc/self/ns/net") != {host_net!r}
assert os.readlink("/proc/self/ns/mnt") != {host_mnt!r}
assert os.getcwd() == os.environ["HOME"] == os.environ["TMPDIR"] == "/tmp"
assert os.listdir("/tmp") == []
assert sorted(os.environ) == sorted(["PATH", "LANG", "HOME", "TMPDIR", "PYTHONHASHSEED", "OMP_NUM_THREADS",
                                     "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"])
assert sorted(int(p) for p in os.listdir("/proc") if p.isdigit()) == [1]
assert [n for _, n in socket.if_nameindex()] == ["lo"]
open("/tmp/mine.txt", "w").write("x" * 1000)
try:
    open({str(tmp_path / 'x')!r}, "w")
    raise SystemExit("wrote outside")
except OSError:
    pass
"""
    with Sandbox(workers=1, uid_base=unique_uids()) as sb:
        res = sb.run(check, timeout=5)
    assert res.status == "passed", res.stderr
    assert res.protections == PROTECTIONS and res.missing == ()
    assert not (tmp_path / "x").exists()


def test_fallback_without_namespaces_is_recorded_warned_and_guarded(world):
    """Kernel protections off: the result says so, a warning is emitted, and the in-interpreter guard
    refuses sockets and signals; the server still sweeps a detached daemon."""
    cfg = SandboxConfig(workers=1, disable=("net_namespace", "pid_namespace"), uid_base=unique_uids())
    daemon = program("""
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(60)
            os._exit(0)
        return a - b""")
    sock = program(f"""
        import socket
        socket.create_connection(("127.0.0.1", {world['tcp_port']}), timeout=0.5).sendall(b"leak")""")
    kill = program("import os\nos.kill(os.getppid(), 9)")
    with pytest.warns(SandboxWarning, match="net_namespace.*pid_namespace"):
        with Sandbox(cfg) as sb:
            res_daemon, res_sock, res_kill, ok = sb.execute(
                [ExecuteRequest(p, timeout=2.0) for p in (daemon, sock, kill, program("return a + b"))])
            during = [p for p in sandbox_pids(sb) if _uid(p) != os.geteuid()]
        after = sandbox_pids(sb)
    for res in (res_daemon, res_sock, res_kill, ok):
        assert "net_namespace" in res.missing and "pid_namespace" in res.missing
        assert "net_namespace" not in res.protections and "own_proc" not in res.protections
    assert res_sock.status == "failed" and res_sock.reason.startswith("PermissionError: sandbox: socket.")
    assert res_kill.status == "failed" and "os.kill is not allowed" in res_kill.reason
    assert res_daemon.status == "failed"
    assert ok.status == "passed"
    assert during == [] and after == []  # the daemon was swept without a PID namespace
    with pytest.raises(BlockingIOError):
        world["tcp"].accept()


def test_fallback_without_mount_namespace_uses_a_host_directory_removed_afterwards(tmp_path):
    cfg = SandboxConfig(workers=1, disable=("mount_namespace", "unprivileged_user"), tmp_base=str(tmp_path))
    with pytest.warns(SandboxWarning, match="mount_namespace"):
        with Sandbox(cfg) as sb:
            res = sb.run("import os\nopen('f.txt', 'w').write('x')\nprint(os.getcwd())", timeout=2.0)
    assert res.status == "passed"
    cwd = Path(res.stdout.strip())
    assert cwd.parent == tmp_path and cwd.name.startswith("camels-sbx-")
    assert not cwd.exists() and list(tmp_path.iterdir()) == []
    assert {"mount_namespace", "private_tmp", "read_only_fs", "unprivileged_user"} <= set(res.missing)
    assert "private_dir" in res.protections


def test_required_protection_missing_is_an_error():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SandboxWarning)
        with Sandbox(workers=1, disable=("net_namespace",), require=("net_namespace",)) as sb:
            res = sb.run("pass")
    assert res.status == "error" and "net_namespace" in res.reason


def test_config_is_checked():
    with pytest.raises(Exception, match="unknown protection"):
        SandboxConfig(disable=("firewall",))
    with pytest.raises(ValueError):
        ExecuteRequest("pass", timeout=0)


def test_fresh_interpreter_mode_and_a_lost_server():
    """``fresh=True`` starts a server per program; a server killed from outside gives an error verdict
    (never a pass) and the next program gets a new server."""
    with Sandbox(workers=1, fresh=True, uid_base=unique_uids()) as sb:
        a, b = sb.execute([ExecuteRequest(program("return a + b")), ExecuteRequest(program("return 0"))])
    assert (a.status, b.status) == ("passed", "failed")
    with Sandbox(workers=1, uid_base=unique_uids()) as sb:
        assert sb.run("pass").status == "passed"
        (server,) = [p for p in sandbox_pids(sb) if _uid(p) == os.geteuid()]
        threading.Timer(0.3, os.kill, (server, 9)).start()
        lost = sb.run("import time\ntime.sleep(3)", timeout=5)
        again = sb.run(program("return a + b"))
    assert lost.status == "error" and "no verdict" in lost.reason
    assert again.status == "passed"
    assert sandbox_pids(sb) == []


def test_execute_kind_is_registered_and_round_trips():
    from camels.core.requests import (
        REQUEST_TYPES,
        request_from_dict,
        request_to_dict,
        result_from_dict,
        result_to_dict,
    )
    from camels.evals.scoring import SCORERS

    assert REQUEST_TYPES["execute"] is ExecuteRequest and "execute" in SCORERS
    req = ExecuteRequest("print(1)", timeout=2.5)
    assert request_from_dict(request_to_dict(req)) == req
    res = ExecutionResult("passed", exit_code=0, protections=("session", "rlimits"), missing=("pid_namespace",))
    assert result_from_dict("execute", result_to_dict(res)) == res
    a, b = Sandbox(memory_mb=512), Sandbox(memory_mb=256)
    assert a.info.fingerprint != b.info.fingerprint and a.info.fingerprint == Sandbox(memory_mb=512).info.fingerprint
