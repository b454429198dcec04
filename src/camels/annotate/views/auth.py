"""Logging in and out, and registering through a one-time invitation link."""

from __future__ import annotations

import threading
import time

from flask import Blueprint, abort, g, redirect, render_template, request, session, url_for

from camels.annotate.app import db, login_session
from camels.annotate.service import AnnotateError, authenticate, find_invitation, redeem_invitation

bp = Blueprint("auth", __name__)

# Failed logins per username in this process: after LOCK_AFTER failures within LOCK_SECONDS, further
# attempts are refused until the window passes (slows password guessing; argon2 makes each guess costly).
LOCK_AFTER, LOCK_SECONDS = 10, 900
_failures: dict[str, list[float]] = {}
_failures_lock = threading.Lock()


def _locked(username: str) -> bool:
    now = time.monotonic()
    with _failures_lock:
        recent = [t for t in _failures.get(username, []) if now - t < LOCK_SECONDS]
        _failures[username] = recent
        return len(recent) >= LOCK_AFTER


def _record_failure(username: str) -> None:
    with _failures_lock:
        _failures.setdefault(username, []).append(time.monotonic())


def _safe_next(target: str | None) -> str:
    # Only same-site paths: never redirect to another host after login.
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("annotator.home")


@bp.route("/login", methods=["GET", "POST"])
def login():
    error = None
    if request.method == "POST":
        username = request.form.get("username", "").strip()
        password = request.form.get("password", "")
        if _locked(username):
            error = "too many failed logins for this user; try again later"
        else:
            user = authenticate(db(), username, password)
            if user is None:
                _record_failure(username)
                error = "wrong username or password"
            else:
                login_session(user)
                return redirect(_safe_next(request.args.get("next")))
    return render_template("login.html", error=error), 401 if error else 200


@bp.route("/logout", methods=["POST"])
def logout():
    session.clear()
    return redirect(url_for("auth.login"))


@bp.route("/invite/<token>", methods=["GET", "POST"])
def invite(token: str):
    if find_invitation(db(), token) is None:
        abort(404, description="this invitation link is invalid, used or expired")
    error = None
    if request.method == "POST":
        password = request.form.get("password", "")
        if password != request.form.get("password2", ""):
            error = "the two passwords differ"
        else:
            try:
                user = redeem_invitation(db(), token, request.form.get("username", ""), password)
            except AnnotateError as e:
                error = str(e)
            else:
                login_session(user)
                return redirect(url_for("annotator.home"))
    g.no_nav = True
    return render_template("register.html", error=error), 400 if error else 200
