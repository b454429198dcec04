"""The store: migrations, the secret key, accounts, allocation of pairs and saving annotations once."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from sqlalchemy import func, select

from camels.annotate import security, service
from camels.annotate.db import Annotation, Assignment, Base, Invitation
from camels.annotate.store import current_revision, head_revision, open_store


def test_migrated_schema_equals_the_models(store):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    assert current_revision(store.engine) == head_revision() == "0002"


def test_an_old_database_upgrades_with_its_rows(tmp_path, make_user):
    """A store made at revision 0001 with an annotation in it: opening it migrates to head and keeps the
    data (the stored key becomes the annotation's first submission)."""
    from sqlalchemy import text

    from camels.annotate.db import Submission, make_engine
    from camels.annotate.store import upgrade

    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    engine = make_engine(url)
    upgrade(engine, "0001")
    assert current_revision(engine) == "0001"
    with engine.begin() as c:
        for sql in (
            "INSERT INTO users VALUES (1, 'ann', 'h', 0, 1, 0, '2026-01-01 00:00:00')",
            "INSERT INTO studies VALUES (1, 's', 'x', 'y', 'a', 'b', 1, '2026-01-01 00:00:00')",
            "INSERT INTO pairs VALUES (1, 1, 'q0', 0, 'p', 'oa', 'ob')",
            "INSERT INTO assignments VALUES (1, 1, 1, 0, 1, '2026-01-01 00:00:00')",
            "INSERT INTO annotations VALUES (1, 1, 1, 0, -1, 0, '', 'old-key', NULL, 3, "
            "'2026-01-01 00:00:00', '2026-01-02 00:00:00')",
        ):
            c.execute(text(sql))
    engine.dispose()
    store = open_store(tmp_path / "old.sqlite")
    assert current_revision(store.engine) == "0002"
    with store.Session() as s:
        sub = s.scalars(select(Submission)).one()
        assert (sub.idempotency_key, sub.annotation_id, sub.revision) == ("old-key", 1, 3)
        row, replayed = service.save_annotation(s, 1, 1, service.Answer(True, True, 5), "old-key")
        assert replayed and row.preference == -1  # the retry of the stored answer changes nothing


def test_secret_key_generated_once_and_kept_with_the_database(tmp_path):
    s1 = open_store(tmp_path / "db.sqlite")
    key = s1.secret_key()
    assert len(key) == 64 and int(key, 16) >= 0
    s2 = open_store(tmp_path / "db.sqlite")  # a restarted server
    assert s2.secret_key() == key
    assert open_store(tmp_path / "other.sqlite").secret_key() != key


def test_secret_key_from_environment_wins(store, monkeypatch):
    from camels.annotate.app import create_app

    monkeypatch.setenv("CAMELS_ANNOTATE_SECRET_KEY", "k" * 40)
    assert create_app(store).config["SECRET_KEY"] == "k" * 40
    monkeypatch.delenv("CAMELS_ANNOTATE_SECRET_KEY")
    assert create_app(store).config["SECRET_KEY"] == store.secret_key()


def test_passwords_are_argon2id_and_checked(store, make_user, monkeypatch):
    monkeypatch.delenv(security.ARGON2_ENV)
    default = security._make_hasher()
    assert (default.time_cost, default.memory_cost) == (3, 65536)  # RFC 9106 low-memory profile
    user = make_user("ann")
    assert user.password_hash.startswith("$argon2id$") and "correct" not in user.password_hash
    with store.Session() as s:
        assert service.authenticate(s, "ann", "correct horse battery").id == user.id
        assert service.authenticate(s, "ann", "wrong horse battery") is None
        assert service.authenticate(s, "nobody", "correct horse battery") is None
        with pytest.raises(service.AnnotateError, match="at least 10 characters"):
            service.create_user(s, "short", "123456789")
        with pytest.raises(service.AnnotateError, match="taken"):
            service.create_user(s, "ann", "another long password")


def test_invitations_are_one_time_and_expire(store):
    with store.Session() as s:
        token = service.create_invitation(s, note="for ann")
        stored = s.scalars(select(Invitation)).one()
        assert stored.token_hash == security.token_hash(token) and token not in stored.token_hash
        user = service.redeem_invitation(s, token, "ann", "a long password")
        assert not user.is_admin
        with pytest.raises(service.AnnotateError, match="invalid, used or expired"):
            service.redeem_invitation(s, token, "ann2", "a long password")
        old = service.create_invitation(s)
        s.scalars(select(Invitation).where(Invitation.used_at.is_(None))).one().expires_at = (
            service.utcnow() - dt.timedelta(seconds=1))
        s.commit()
        assert service.find_invitation(s, old) is None
        assert service.find_invitation(s, "made-up") is None


def test_each_pair_goes_to_k_annotators_and_order_is_recorded(store, make_study, make_user):
    make_study(n=5, k=2)
    users = [make_user(f"u{i}") for i in range(3)]
    with store.Session() as s:
        assert service.allocate(s, users[0].id, batch=3, rng=random.Random(0)) == 3
        assert service.allocate(s, users[1].id, batch=10, rng=random.Random(1)) == 5
        assert service.allocate(s, users[2].id, batch=10, rng=random.Random(2)) == 2  # 10 slots - 8 taken
        assert service.allocate(s, users[0].id, batch=10) == 0  # the rest are full or already theirs
        per_pair = dict(s.execute(select(Assignment.pair_id, func.count()).group_by(Assignment.pair_id)).all())
        assert sorted(per_pair.values()) == [2, 2, 2, 2, 2]
        firsts = [a.a_first for a in s.scalars(select(Assignment))]
        assert True in firsts and False in firsts  # both orders occur, each stored per assignment
        slots = s.execute(select(Assignment.pair_id, Assignment.slot)).all()
        assert len(set(slots)) == len(slots) == 10


def test_answers_are_stored_in_study_terms():
    yes_no = service.Answer(True, False, 1)  # first acceptable, second not, first clearly better
    assert service.to_study_terms(yes_no, a_first=True) == (True, False, -2)
    assert service.to_study_terms(yes_no, a_first=False) == (False, True, 2)
    assert service.to_study_terms(service.Answer(False, True, 4), a_first=False) == (True, False, -1)
    assert service.to_study_terms(service.Answer(True, True, 3), a_first=False) == (True, True, 0)


def test_save_is_idempotent_and_owned(store, make_study, make_user):
    make_study(n=2, k=1)
    ann, other = make_user("ann"), make_user("other")
    with store.Session() as s:
        service.allocate(s, ann.id, batch=1)
        service.allocate(s, other.id, batch=1)
        mine = service.next_pending(s, ann.id).id
        theirs = service.next_pending(s, other.id).id
        answer = service.Answer(True, False, 2, flagged=True, comment="typo")
        row, replayed = service.save_annotation(s, ann.id, mine, answer, "key-1")
        assert not replayed and row.revision == 1
        again, replayed = service.save_annotation(s, ann.id, mine, answer, "key-1")
        assert replayed and again.id == row.id
        changed, replayed = service.save_annotation(s, ann.id, mine, service.Answer(True, True, 3), "key-2")
        assert not replayed and changed.id == row.id and changed.revision == 2 and changed.preference == 0
        # A late retry of the first answer (key-1) is a replay: it does not undo the change.
        late, replayed = service.save_annotation(s, ann.id, mine, answer, "key-1")
        assert replayed and late.revision == 2 and late.preference == 0
        assert s.scalar(select(func.count()).select_from(Annotation)) == 1
        with pytest.raises(LookupError):
            service.save_annotation(s, ann.id, theirs, answer, "key-3")
        with pytest.raises(LookupError):
            service.own_assignment(s, ann.id, theirs)
        with pytest.raises(service.AnnotateError, match="used for another annotation"):
            service.save_annotation(s, other.id, theirs, answer, "key-2")
        assert s.scalar(select(func.count()).select_from(Annotation)) == 1


def test_parse_answer_names_the_bad_field():
    ok = service.parse_answer({"acceptable_first": "yes", "acceptable_second": "no", "preference": "5",
                               "flagged": "on", "comment": "c", "seconds": "3.5"})
    assert ok == service.Answer(True, False, 5, True, "c", 3.5)
    with pytest.raises(service.AnnotateError, match="acceptable_second"):
        service.parse_answer({"acceptable_first": "yes", "preference": "3"})
    with pytest.raises(service.AnnotateError, match="preference"):
        service.parse_answer({"acceptable_first": "yes", "acceptable_second": "no", "preference": "6"})
