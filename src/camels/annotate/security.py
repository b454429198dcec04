"""Passwords, one-time tokens, CSRF tokens and the response headers of the annotation app.

* Passwords: Argon2id (memory-hard) through argon2-cffi with its default RFC 9106 parameters (64 MiB,
  3 passes); a hash made with other parameters is redone at the next login. ``$CAMELS_ANNOTATE_ARGON2``
  (e.g. ``time_cost=1,memory_cost=8192,parallelism=1``) changes them: for tests, never for a real study.
* Invitation links carry a random token; only its SHA-256 is stored, so a copy of the database does not
  give working links. A token is usable once and until it expires.
* CSRF: a random token kept in the (signed) session; every state-changing request must send it back in
  the form field ``csrf_token`` or the ``X-CSRF-Token`` header, compared in constant time.
* Headers: a Content-Security-Policy allowing scripts and styles only from the app's own ``/static`` files
  (no inline script, no eval, no plugins, no framing), plus nosniff, no referrer (invitation links must not
  leak through it) and no caching of pages.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_PASSWORD_LENGTH = 10

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}

ARGON2_ENV = "CAMELS_ANNOTATE_ARGON2"


def _make_hasher() -> PasswordHasher:
    spec = os.environ.get(ARGON2_ENV, "").strip()
    if not spec:
        return PasswordHasher()
    try:
        params = {k.strip(): int(v) for k, v in (part.split("=") for part in spec.split(","))}
        return PasswordHasher(**params)
    except (ValueError, TypeError) as e:
        raise ValueError(f"${ARGON2_ENV}={spec!r}: expected time_cost=..,memory_cost=..,parallelism=.. ({e})") from None


_hasher = _make_hasher()


def check_password_rules(password: str) -> str | None:
    """The reason a new password is refused, or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"the password needs at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > 1024:
        return "the password is longer than 1024 characters"
    return None


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return _hasher.check_needs_rehash(stored_hash)


# A hash to verify against when the username is unknown, so both cases take the same time.
_DUMMY_HASH: str | None = None


def burn_password_check(password: str) -> None:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = _hasher.hash(secrets.token_hex(16))
    verify_password(_DUMMY_HASH, password)


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def tokens_equal(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))
