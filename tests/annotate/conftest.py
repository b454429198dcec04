"""Fixtures of the annotation app's tests: a store in a temp folder, a small study, logged-in clients."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("flask", reason="the annotation app needs the [web] extra (flask, sqlalchemy, ...)")
pytest.importorskip("sqlalchemy", reason="the annotation app needs the [web] extra")
pytest.importorskip("argon2", reason="the annotation app needs the [web] extra")

from camels.annotate import security  # noqa: E402

# Cheap Argon2 parameters for tests (the default costs ~0.5 s a hash on a shared CPU); servers started by
# the tests inherit them through the environment.
FAST_ARGON2 = "time_cost=1,memory_cost=8192,parallelism=1"
os.environ[security.ARGON2_ENV] = FAST_ARGON2
security._hasher = security._make_hasher()

from .annotate_helpers import PASSWORD, csrf_of, make_pairing  # noqa: E402


@pytest.fixture
def store(tmp_path):
    from camels.annotate.store import open_store

    st = open_store(tmp_path / "annotate.sqlite")
    yield st
    st.engine.dispose()


@pytest.fixture
def make_study(store):
    from camels.annotate.service import import_study

    def make(n: int = 4, k: int = 1, name: str = "x-vs-y", **kw):
        with store.Session() as s:
            return import_study(s, make_pairing(n, **kw), name=name, sources=("a", "b"), k=k)

    return make


@pytest.fixture
def make_user(store):
    from camels.annotate.service import create_user

    def make(name: str, *, admin: bool = False):
        with store.Session() as s:
            return create_user(s, name, PASSWORD, is_admin=admin)

    return make


@pytest.fixture
def app(store):
    from camels.annotate.app import create_app

    return create_app(store, TESTING=True, BATCH=50)


@pytest.fixture
def login(app):
    def do(username: str, password: str = PASSWORD):
        client = app.test_client()
        token = csrf_of(client.get("/login").text)
        r = client.post("/login", data={"username": username, "password": password, "csrf_token": token})
        assert r.status_code == 302, r.text
        return client

    return do
