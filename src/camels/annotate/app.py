"""The Flask app factory: ``create_app(db)`` builds an app on a store; nothing happens at import time.

Configuration (keyword arguments or ``config`` mapping): ``db`` (a file path or SQLAlchemy URL),
``SECRET_KEY`` (else ``$CAMELS_ANNOTATE_SECRET_KEY``, else generated on first run and kept in the
database), ``SESSION_COOKIE_SECURE`` (set it when serving over https), ``BATCH`` (pairs handed to an
annotator at a time, default 50).

Every request runs through three hooks: the session's user is loaded (a session whose user was
deactivated or whose ``session_epoch`` moved on is dropped); a state-changing request must carry the
session's CSRF token; every response gets the security headers of :mod:`camels.annotate.security`.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from pathlib import Path
from typing import Any

from flask import Flask, abort, g, request, session

from camels.annotate import security
from camels.annotate.db import User
from camels.annotate.store import SECRET_KEY_ENV, Store, open_store

STATE_CHANGING = ("POST", "PUT", "PATCH", "DELETE")


def create_app(db: str | Path | Store | None = None, config: dict[str, Any] | None = None, **overrides) -> Flask:
    app = Flask(__name__, static_folder="static", template_folder="templates")
    settings = dict(config or {})
    settings.update(overrides)
    if db is None:
        db = settings.pop("db", None) or os.environ.get("CAMELS_ANNOTATE_DB")
    if db is None:
        raise ValueError("create_app needs a database: a file path or a SQLAlchemy URL")
    store = db if isinstance(db, Store) else open_store(db)
    app.extensions["camels_store"] = store

    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=False,
        SESSION_COOKIE_NAME="camels_annotate",
        PERMANENT_SESSION_LIFETIME=dt.timedelta(hours=12),
        MAX_CONTENT_LENGTH=1 << 20,
        BATCH=50,
        TEMPLATES_AUTO_RELOAD=False,
    )
    app.config.update(settings)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = os.environ.get(SECRET_KEY_ENV) or store.secret_key()

    app.before_request(_load_user)
    app.before_request(_check_csrf)
    app.after_request(_security_headers)
    app.teardown_appcontext(_close_db)
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.jinja_env.filters["pct"] = _pct

    from camels.annotate.views import admin, annotator, auth

    app.register_blueprint(auth.bp)
    app.register_blueprint(annotator.bp)
    app.register_blueprint(admin.bp)
    return app


def store() -> Store:
    from flask import current_app

    return current_app.extensions["camels_store"]


def db():
    """The request's database session (opened on first use, closed when the request ends)."""
    if "db" not in g:
        g.db = store().Session()
    return g.db


def _close_db(_exc) -> None:
    s = g.pop("db", None)
    if s is not None:
        s.close()


def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def login_session(user: User) -> None:
    """Start a fresh session for ``user`` (a new session and CSRF token: no fixation)."""
    session.clear()
    session.permanent = True
    session["uid"] = user.id
    session["epoch"] = user.session_epoch
    session["csrf"] = secrets.token_urlsafe(32)


def _load_user() -> None:
    g.user = None
    uid = session.get("uid")
    if uid is None:
        return
    user = db().get(User, uid)
    if user is None or not user.active or session.get("epoch") != user.session_epoch:
        session.clear()
        return
    g.user = user


def _check_csrf() -> None:
    if request.method not in STATE_CHANGING:
        return
    sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token")
    if not security.tokens_equal(sent, session.get("csrf")):
        abort(400, description="missing or wrong CSRF token: reload the page and try again")


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _security_headers(response):
    for name, value in security.SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if not request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-store"
    return response
