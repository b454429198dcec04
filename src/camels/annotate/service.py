"""What the app and the CLI do to the store, without any web framework: accounts, invitations, studies,
handing out pairs, and saving annotations exactly once.

Every function takes an open SQLAlchemy session and commits what it changed. Functions that act for an
annotator take the annotator's id and only ever read or write that annotator's rows: the web layer has no
other way to reach annotations, so "an annotator sees only their own" holds for every endpoint.
"""

from __future__ import annotations

import datetime as dt
import random
import secrets
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from camels.annotate import security
from camels.annotate.db import (
    Annotation,
    Assignment,
    Invitation,
    JudgeVerdictRow,
    Pair,
    Study,
    Submission,
    User,
    utcnow,
)
from camels.annotate.sources import JudgeVerdict, Pairing
from camels.core.errors import CamelsError

DEFAULT_BATCH = 50
INVITATION_DAYS = 7
PREFERENCES = {
    -2: "A is clearly better",
    -1: "A is slightly better",
    0: "tie",
    1: "B is slightly better",
    2: "B is clearly better",
}


class AnnotateError(CamelsError):
    """A refused action (bad input, a used invitation ...): the message is safe to show to the user."""


# --- accounts ---------------------------------------------------------------------------------------------
def _check_username(username: str) -> str:
    name = username.strip()
    if not name or len(name) > 64 or not all(c.isalnum() or c in "._-@" for c in name):
        raise AnnotateError("a username is 1-64 letters, digits or . _ - @")
    return name


def create_user(s: Session, username: str, password: str, *, is_admin: bool = False) -> User:
    name = _check_username(username)
    problem = security.check_password_rules(password)
    if problem:
        raise AnnotateError(problem)
    if s.scalar(select(User.id).where(User.username == name)) is not None:
        raise AnnotateError(f"the username {name!r} is taken")
    user = User(username=name, password_hash=security.hash_password(password), is_admin=is_admin)
    s.add(user)
    try:
        s.commit()
    except IntegrityError:
        s.rollback()
        raise AnnotateError(f"the username {name!r} is taken") from None
    return user


def authenticate(s: Session, username: str, password: str) -> User | None:
    user = s.scalar(select(User).where(User.username == username.strip()))
    if user is None or not user.active:
        security.burn_password_check(password)
        return None
    if not security.verify_password(user.password_hash, password):
        return None
    if security.needs_rehash(user.password_hash):
        user.password_hash = security.hash_password(password)
        s.commit()
    return user


def create_invitation(s: Session, *, created_by: int | None = None, note: str = "",
                      days: int = INVITATION_DAYS) -> str:
    """A new one-time invitation; returns the token (shown once, only its hash is kept)."""
    token = security.new_token()
    s.add(Invitation(token_hash=security.token_hash(token), note=note[:200], created_by=created_by,
                     expires_at=utcnow() + dt.timedelta(days=days)))
    s.commit()
    return token


def find_invitation(s: Session, token: str) -> Invitation | None:
    """The invitation of ``token`` if it is unused and unexpired."""
    inv = s.scalar(select(Invitation).where(Invitation.token_hash == security.token_hash(token)))
    if inv is None or inv.used_at is not None or inv.expires_at < utcnow():
        return None
    return inv


def redeem_invitation(s: Session, token: str, username: str, password: str) -> User:
    inv = find_invitation(s, token)
    if inv is None:
        raise AnnotateError("this invitation link is invalid, used or expired")
    user = create_user(s, username, password)
    # Mark it used with a guarded UPDATE, so two registrations racing on one link cannot both succeed.
    from sqlalchemy import update

    done = s.execute(update(Invitation).where(Invitation.id == inv.id, Invitation.used_at.is_(None))
                     .values(used_at=utcnow(), used_by=user.id))
    if done.rowcount != 1:
        s.delete(user)
        s.commit()
        raise AnnotateError("this invitation link is invalid, used or expired")
    s.commit()
    return user


# --- studies ----------------------------------------------------------------------------------------------
def import_study(s: Session, pairing: Pairing, *, name: str, sources: tuple[str, str], k: int,
                 seed: int = 0, limit: int | None = None) -> Study:
    """Store a pairing as a study; pairs are handed out in a seeded shuffle of the input order (so the
    first annotations already cover the data evenly), the first ``limit`` of that order only if given."""
    if k < 1:
        raise AnnotateError("annotators per pair must be at least 1")
    if not pairing.items:
        raise AnnotateError("the two inputs have no item in common")
    if s.scalar(select(Study.id).where(Study.name == name)) is not None:
        raise AnnotateError(f"a study named {name!r} exists already")
    order = list(range(len(pairing.items)))
    random.Random(seed).shuffle(order)
    if limit is not None:
        order = order[:limit]
    study = Study(name=name, model_a=pairing.model_a, model_b=pairing.model_b, source_a=sources[0],
                  source_b=sources[1], annotators_per_pair=k)
    s.add(study)
    s.flush()
    s.add_all(Pair(study_id=study.id, item_key=pairing.items[i].key, position=pos,
                   prompt=pairing.items[i].prompt, output_a=pairing.items[i].output_a,
                   output_b=pairing.items[i].output_b) for pos, i in enumerate(order))
    s.commit()
    return study


def import_judge(s: Session, study: Study, verdicts: list[JudgeVerdict], *, judge: str, source: str) -> dict:
    """Attach judge verdicts to the study's pairs (matched by prompt and the two models' outputs).

    Returns counts: ``matched``, and skips by reason (``other_models``, ``no_pair``, ``output_mismatch``).
    """
    pairs = {p.prompt: p for p in s.scalars(select(Pair).where(Pair.study_id == study.id))}
    counts: dict[str, int] = {"matched": 0}
    models = {study.model_a, study.model_b}
    for v in verdicts:
        if {v.model_1, v.model_2} != models:
            counts["other_models"] = counts.get("other_models", 0) + 1
            continue
        pair = pairs.get(v.instruction)
        if pair is None:
            counts["no_pair"] = counts.get("no_pair", 0) + 1
            continue
        out_a, out_b = (v.output_1, v.output_2) if v.model_1 == study.model_a else (v.output_2, v.output_1)
        if (out_a, out_b) != (pair.output_a, pair.output_b):
            counts["output_mismatch"] = counts.get("output_mismatch", 0) + 1
            continue
        winner = 0 if v.winner is None else (-1 if v.winner == study.model_a else 1)
        row = s.scalar(select(JudgeVerdictRow).where(JudgeVerdictRow.pair_id == pair.id,
                                                     JudgeVerdictRow.judge == judge))
        if row is None:
            s.add(JudgeVerdictRow(pair_id=pair.id, judge=judge, winner=winner, source=source))
        else:
            row.winner, row.source = winner, source
        counts["matched"] += 1
    s.commit()
    return counts


# --- the annotator's queue --------------------------------------------------------------------------------
@dataclass
class Progress:
    done: int
    total: int
    more_available: bool


def allocate(s: Session, user_id: int, batch: int = DEFAULT_BATCH, *, rng: random.Random | None = None) -> int:
    """Give the annotator up to ``batch`` new pairs that still need annotators; returns how many.

    Pairs are taken by study, then by fewest annotators so far, then by position. Each pair has
    ``annotators_per_pair`` slots; an assignment takes the next free slot, and the unique (pair, slot) and
    (pair, user) constraints make two concurrent allocations of the same slot fail and retry, so no pair
    ever gets more than k annotators. The shown order (A first or B first) is drawn per assignment.
    """
    rng = rng or random.SystemRandom()
    given = 0
    for _attempt in range(batch * 4 + 10):
        if given >= batch:
            break
        taken = select(Assignment.pair_id).where(Assignment.user_id == user_id)
        counts = (select(Assignment.pair_id, func.count().label("n")).group_by(Assignment.pair_id).subquery())
        n = func.coalesce(counts.c.n, 0)
        rows = s.execute(
            select(Pair.id, n, Study.annotators_per_pair)
            .join(Study, Study.id == Pair.study_id)
            .outerjoin(counts, counts.c.pair_id == Pair.id)
            .where(Pair.id.not_in(taken), n < Study.annotators_per_pair)
            .order_by(Study.id, n, Pair.position)
            .limit(batch - given)
        ).all()
        if not rows:
            break
        for pair_id, count, _k in rows:
            s.add(Assignment(pair_id=pair_id, user_id=user_id, slot=count, a_first=bool(rng.getrandbits(1))))
            try:
                s.commit()
                given += 1
            except IntegrityError:  # someone took that slot meanwhile: look again
                s.rollback()
                break
    return given


def queue(s: Session, user_id: int) -> list[tuple[Assignment, Annotation | None]]:
    """The annotator's assignments in the order given, each with its annotation if any."""
    rows = s.execute(
        select(Assignment, Annotation)
        .outerjoin(Annotation, Annotation.assignment_id == Assignment.id)
        .where(Assignment.user_id == user_id)
        .order_by(Assignment.id)
    ).all()
    return [(a, ann) for a, ann in rows]


def more_available(s: Session, user_id: int) -> bool:
    taken = select(Assignment.pair_id).where(Assignment.user_id == user_id)
    counts = select(Assignment.pair_id, func.count().label("n")).group_by(Assignment.pair_id).subquery()
    n = func.coalesce(counts.c.n, 0)
    return s.execute(
        select(Pair.id).join(Study, Study.id == Pair.study_id).outerjoin(counts, counts.c.pair_id == Pair.id)
        .where(Pair.id.not_in(taken), n < Study.annotators_per_pair).limit(1)
    ).first() is not None


def progress(s: Session, user_id: int) -> Progress:
    total = s.scalar(select(func.count()).select_from(Assignment).where(Assignment.user_id == user_id)) or 0
    done = s.scalar(select(func.count()).select_from(Annotation).join(Assignment)
                    .where(Assignment.user_id == user_id)) or 0
    return Progress(done=done, total=total, more_available=more_available(s, user_id) if done == total else False)


def next_pending(s: Session, user_id: int) -> Assignment | None:
    return s.scalar(
        select(Assignment).outerjoin(Annotation, Annotation.assignment_id == Assignment.id)
        .where(Assignment.user_id == user_id, Annotation.id.is_(None)).order_by(Assignment.id).limit(1)
    )


def own_assignment(s: Session, user_id: int, assignment_id: int) -> tuple[Assignment, Pair, Annotation | None]:
    """The assignment if it belongs to the annotator; otherwise the same "not found" as a missing one."""
    row = s.execute(
        select(Assignment, Pair, Annotation).join(Pair, Pair.id == Assignment.pair_id)
        .outerjoin(Annotation, Annotation.assignment_id == Assignment.id)
        .where(Assignment.id == assignment_id, Assignment.user_id == user_id)
    ).first()
    if row is None:
        raise LookupError(assignment_id)
    return row[0], row[1], row[2]


# --- saving an annotation ---------------------------------------------------------------------------------
@dataclass
class Answer:
    """An annotator's answer in screen terms: the first (left) and second (right) response as shown."""

    acceptable_first: bool
    acceptable_second: bool
    # 1 = first clearly better, 2 = first slightly better, 3 = tie, 4 = second slightly, 5 = second clearly.
    preference: int
    flagged: bool = False
    comment: str = ""
    seconds: float | None = None


def parse_answer(data: dict) -> Answer:
    """Check a submitted answer (form fields or JSON); raise AnnotateError naming the bad field."""

    def yes_no(name: str) -> bool:
        value = str(data.get(name, "")).lower()
        if value in ("yes", "true", "1"):
            return True
        if value in ("no", "false", "0"):
            return False
        raise AnnotateError(f"{name}: answer yes or no")

    try:
        pref = int(str(data.get("preference", "")))
    except ValueError:
        raise AnnotateError("preference: choose one of the five options") from None
    if not 1 <= pref <= 5:
        raise AnnotateError("preference: choose one of the five options")
    comment = str(data.get("comment") or "")
    if len(comment) > 5000:
        raise AnnotateError("comment: at most 5000 characters")
    seconds = data.get("seconds")
    try:
        seconds = float(seconds) if seconds not in (None, "") else None
    except ValueError:
        seconds = None
    flagged = str(data.get("flagged", "")).lower() in ("yes", "true", "1", "on")
    return Answer(yes_no("acceptable_first"), yes_no("acceptable_second"), pref, flagged, comment, seconds)


def to_study_terms(answer: Answer, a_first: bool) -> tuple[bool, bool, int]:
    """Screen terms -> (acceptable_a, acceptable_b, preference on -2..2 with negative = A better).

    >>> to_study_terms(Answer(True, False, 1), a_first=True)
    (True, False, -2)
    >>> to_study_terms(Answer(True, False, 2), a_first=False)
    (False, True, 1)
    """
    first_better = answer.preference - 3  # -2 first clearly better ... 2 second clearly better
    if a_first:
        return answer.acceptable_first, answer.acceptable_second, first_better
    return answer.acceptable_second, answer.acceptable_first, -first_better


def to_screen_terms(ann: Annotation, a_first: bool) -> dict:
    """The stored annotation as the annotator saw it (to pre-fill the form when they come back)."""
    pref = ann.preference if a_first else -ann.preference
    first, second = (ann.acceptable_a, ann.acceptable_b) if a_first else (ann.acceptable_b, ann.acceptable_a)
    return {"acceptable_first": first, "acceptable_second": second, "preference": pref + 3,
            "flagged": ann.flagged, "comment": ann.comment}


def save_annotation(s: Session, user_id: int, assignment_id: int, answer: Answer,
                    idempotency_key: str | None) -> tuple[Annotation, bool]:
    """Store the annotator's answer; returns ``(annotation, replayed)``.

    A submission carries an idempotency key (the page or client makes one per submission), and every
    accepted submission's key is kept (``submissions``). A key seen before on this assignment means the
    submission was applied already (its answer got lost on the way back, or it is a late retry): it is
    answered from the stored row and nothing is written. A new key on an annotated assignment is a change of
    answer and updates the one row (``revision`` counts changes), so an assignment never has two
    annotations. A key used on another assignment is refused.
    """
    key = (idempotency_key or "").strip() or secrets.token_urlsafe(16)
    if len(key) > 100:
        raise AnnotateError("the idempotency key is longer than 100 characters")
    assignment, _pair, existing = own_assignment(s, user_id, assignment_id)
    acc_a, acc_b, pref = to_study_terms(answer, assignment.a_first)
    values = dict(acceptable_a=acc_a, acceptable_b=acc_b, preference=pref, flagged=answer.flagged,
                  comment=answer.comment, seconds=answer.seconds)
    for _attempt in range(3):
        seen = s.get(Submission, key)
        if seen is not None:
            if existing is not None and seen.annotation_id == existing.id:
                return existing, True
            raise AnnotateError("this idempotency key was used for another annotation")
        if existing is None:
            row = Annotation(assignment_id=assignment.id, idempotency_key=key, **values)
            s.add(row)
        else:
            row = existing
            for name, value in values.items():
                setattr(row, name, value)
            row.idempotency_key, row.revision, row.updated_at = key, row.revision + 1, utcnow()
        try:
            s.flush()
            s.add(Submission(idempotency_key=key, annotation_id=row.id, revision=row.revision))
            s.commit()
            return row, False
        except IntegrityError:
            # A concurrent submission (a retry of this one, or another answer) got in first: look again.
            s.rollback()
            existing = s.scalar(select(Annotation).where(Annotation.assignment_id == assignment.id))
    raise AnnotateError("could not save the annotation; try again")
