"""The app's routes, one blueprint per audience: ``auth`` (login, invitations), ``annotator`` (the queue,
the annotation page and its JSON API), ``admin`` (dashboard, invitations, exports)."""

from __future__ import annotations

from functools import wraps

from flask import abort, g, jsonify, redirect, request, url_for


def wants_json() -> bool:
    return request.path.startswith("/api/")


def login_required(view):
    @wraps(view)
    def wrapped(*args, **kwargs):
        if g.user is None:
            if wants_json():
                return jsonify(error="log in first"), 401
            return redirect(url_for("auth.login", next=request.path))
        return view(*args, **kwargs)

    return wrapped


def admin_required(view):
    @wraps(view)
    @login_required
    def wrapped(*args, **kwargs):
        if not g.user.is_admin:
            abort(403)
        return view(*args, **kwargs)

    return wrapped
