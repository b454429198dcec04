"""Load on loopback: 20 annotators x 50 annotations against `camels annotate serve`, killed (SIGKILL) and
restarted in the middle; clients retry with an idempotency key. Every acknowledged annotation must be
stored exactly once: none lost, none applied twice."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from camels.annotate.db import Annotation, Assignment
from camels.annotate.service import allocate, create_user, import_study

from .annotate_helpers import PASSWORD, make_pairing

pytestmark = pytest.mark.slow
CLIENTS, PER_CLIENT, KILL_AFTER = 20, 50, 400
ROOT = Path(__file__).resolve().parents[2]


class Server:
    """`python -m camels annotate serve` in a child process; `start` waits until it listens."""

    def __init__(self, db: str):
        self.db, self.port, self.proc = db, 0, None

    def start(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "camels", "annotate", "serve", "--db", self.db, "--port", str(self.port),
             "--threads", "8"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        line = self.proc.stdout.readline()
        m = re.search(r"serving on http://127\.0\.0\.1:(\d+)", line)
        assert m, f"the server did not start: {line!r}"
        self.port = int(m.group(1))

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self.proc.stdout.close()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc and not self.proc.stdout.closed:
            self.proc.stdout.close()


class Client:
    """One annotator over plain HTTP (cookie session, CSRF header, idempotency keys, retries)."""

    def __init__(self, server: Server, username: str):
        self.server, self.username = server, username
        self.cookie, self.csrf = "", ""
        self.retries = 0

    def request(self, method, path, body=None, headers=None, form=False):
        """One attempt; raises OSError / http.client errors when the server is gone."""
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30)
        try:
            h = {"Cookie": self.cookie} if self.cookie else {}
            h.update(headers or {})
            data = None
            if body is not None:
                if form:
                    data = urllib.parse.urlencode(body)
                    h["Content-Type"] = "application/x-www-form-urlencoded"
                else:
                    data = json.dumps(body)
                    h["Content-Type"] = "application/json"
            conn.request(method, path, body=data, headers=h)
            resp = conn.getresponse()
            text = resp.read().decode("utf-8")
            cookie = resp.getheader("Set-Cookie")
            if cookie:
                self.cookie = cookie.split(";", 1)[0]
            return resp.status, text
        finally:
            conn.close()

    def retrying(self, *args, **kwargs):
        for _ in range(600):
            try:
                status, text = self.request(*args, **kwargs)
                if status < 500:
                    return status, text
            except (OSError, http.client.HTTPException):
                pass
            self.retries += 1
            time.sleep(0.05)
        raise AssertionError(f"{self.username}: the server never came back")

    def login(self) -> None:
        status, page = self.retrying("GET", "/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        status, _ = self.retrying("POST", "/login", {"username": self.username, "password": PASSWORD,
                                                     "csrf_token": token}, form=True)
        assert status == 302, status
        status, text = self.retrying("GET", "/api/session")
        assert status == 200, text
        self.csrf = json.loads(text)["csrf_token"]


def test_every_acknowledged_annotation_is_stored_exactly_once(tmp_path):
    from camels.annotate.store import open_store

    db = str(tmp_path / "load.sqlite")
    store = open_store(db)
    names = [f"annotator{i:02d}" for i in range(CLIENTS)]
    with store.Session() as s:
        import_study(s, make_pairing(CLIENTS * PER_CLIENT), name="load", sources=("a", "b"), k=1)
        for name in names:
            user = create_user(s, name, PASSWORD)
            assert allocate(s, user.id, batch=PER_CLIENT) == PER_CLIENT

    server = Server(db)
    server.start()
    acked: list[tuple[str, int, str, int, int]] = []  # user, assignment, key, annotation id, preference
    replays: list[bool] = []
    acked_lock = threading.Lock()
    errors: list[str] = []
    clients = [Client(server, name) for name in names]

    def work(client: Client):
        try:
            client.login()
            status, text = client.retrying("GET", "/api/queue")
            queue = [a["id"] for a in json.loads(text)["assignments"]]
            assert len(queue) == PER_CLIENT
            for n, assignment_id in enumerate(queue):
                key = uuid.uuid4().hex
                pref = 1 + (n % 5)
                answer = {"acceptable_first": n % 2 == 0, "acceptable_second": n % 3 == 0, "preference": pref,
                          "comment": f"{client.username} #{n}"}
                status, text = client.retrying("POST", f"/api/assignments/{assignment_id}/annotation", answer,
                                               headers={"X-CSRF-Token": client.csrf, "Idempotency-Key": key})
                assert status == 200, (status, text)
                reply = json.loads(text)
                assert reply["assignment_id"] == assignment_id
                with acked_lock:
                    acked.append((client.username, assignment_id, key, reply["annotation_id"], pref))
                    replays.append(reply["replayed"])
        except BaseException as e:  # reported by the main thread
            errors.append(f"{client.username}: {e!r}")

    threads = [threading.Thread(target=work, args=(c,), daemon=True) for c in clients]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 120
        while len(acked) < KILL_AFTER and time.monotonic() < deadline and not errors:
            time.sleep(0.01)
        acked_at_kill = len(acked)
        server.kill()
        time.sleep(0.3)  # clients meet a dead server for a moment
        server.start()  # same database, same port
        for t in threads:
            t.join(180)
    finally:
        server.stop()
    assert errors == []
    print(f"acknowledged={len(acked)} acknowledged_before_kill={acked_at_kill} "
          f"client_retries={sum(c.retries for c in clients)} replayed={sum(replays)}")
    assert KILL_AFTER <= acked_at_kill < CLIENTS * PER_CLIENT, "the kill did not land in the middle"
    assert sum(c.retries for c in clients) > 0, "no client met the dead server"

    assert len(acked) == CLIENTS * PER_CLIENT
    with store.Session() as s:
        assert s.scalar(select(func.count()).select_from(Annotation)) == CLIENTS * PER_CLIENT
        rows = {a.assignment_id: (a, g) for a, g in s.execute(select(Annotation, Assignment).join(Assignment))}
    assert len({a for _, a, _, _, _ in acked}) == CLIENTS * PER_CLIENT
    for _user, assignment_id, key, annotation_id, pref in acked:
        ann, asg = rows[assignment_id]
        # Stored once, by this very submission, never applied a second time.
        assert (ann.id, ann.idempotency_key, ann.revision) == (annotation_id, key, 1)
        assert ann.preference == (pref - 3 if asg.a_first else 3 - pref)
    store.engine.dispose()
