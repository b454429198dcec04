"""The app over HTTP (Flask's test client): accounts, CSRF, headers, the annotation flow, ownership."""

from __future__ import annotations

import re

from sqlalchemy import select

from camels.annotate import service
from camels.annotate.db import Annotation, Assignment, User

from .annotate_helpers import PASSWORD, csrf_of


def _answer(client, path, **fields):
    page = client.get(path)
    data = {"csrf_token": csrf_of(page.text), "idempotency_key": re.search(
        r'name="idempotency_key" value="([^"]+)"', page.text).group(1),
        "acceptable_first": "yes", "acceptable_second": "no", "preference": "2"}
    data.update(fields)
    return client.post(path, data=data)


def test_security_headers_and_cookie_flags(app, make_user, login):
    make_user("ann")
    r = app.test_client().get("/login")
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] == "no-referrer"
    assert r.headers["Cache-Control"] == "no-store"
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "<script>" not in r.text and 'src="/static/annotate.js"' in r.text  # no inline script


def test_login_needs_csrf_and_right_password(app, make_user):
    make_user("ann")
    c = app.test_client()
    assert c.post("/login", data={"username": "ann", "password": PASSWORD}).status_code == 400
    token = csrf_of(c.get("/login").text)
    r = c.post("/login", data={"username": "ann", "password": "not the password", "csrf_token": token})
    assert r.status_code == 401 and "wrong username or password" in r.text
    r = c.post("/login?next=//evil.example/x", data={"username": "ann", "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 302 and r.headers["Location"] == "/"  # no redirect off the site


def test_missing_or_forged_csrf_is_refused(store, make_study, make_user, login):
    make_study(n=2)
    make_user("ann")
    c = login("ann")
    path = c.get("/annotate").headers["Location"]
    answer = {"acceptable_first": "yes", "acceptable_second": "yes", "preference": "3"}
    assert c.post(path, data=answer).status_code == 400
    assert c.post(path, data={**answer, "csrf_token": "forged" * 8}).status_code == 400
    api = path.replace("/annotate/", "/api/assignments/") + "/annotation"
    assert c.post(api, json=answer).status_code == 400
    assert c.post(api, json=answer, headers={"X-CSRF-Token": "forged"}).status_code == 400
    with store.Session() as s:
        assert s.scalars(select(Annotation)).all() == []
    token = csrf_of(c.get(path).text)
    r = c.post(api, json=answer, headers={"X-CSRF-Token": token, "Idempotency-Key": "k1"})
    assert r.status_code == 200 and r.json["replayed"] is False


def test_annotate_resume_and_finish(store, make_study, make_user, login):
    make_study(n=3)
    make_user("ann")
    c = login("ann")
    first = c.get("/annotate").headers["Location"]
    page = c.get(first)
    assert "0 of 3 done" in page.text and 'value="0" max="3"' in page.text
    r = _answer(c, first, flagged="yes", comment="odd prompt")
    assert r.status_code == 302 and r.headers["Location"] == "/annotate"
    second = c.get("/annotate").headers["Location"]
    assert second != first
    # Coming back (a reload, a new login) shows the saved answer and the progress.
    again = login("ann").get(first).text
    assert "1 of 3 done" in again
    assert re.search(r'id="acceptable_first-yes" value="yes" required\s+checked', again)
    assert re.search(r'id="preference-2" value="2" required\s+checked', again)
    assert re.search(r'id="flagged" value="yes"\s+checked', again) and ">odd prompt</textarea>" in again
    _answer(c, second)
    _answer(c, c.get("/annotate").headers["Location"])
    done = c.get("/annotate")
    assert done.status_code == 200 and "Queue finished" in done.text and "3 of 3" in done.text
    with store.Session() as s:
        rows = s.execute(select(Annotation, Assignment).join(Assignment)).all()
        assert len(rows) == 3
        for ann, asg in rows:  # "response 1 slightly better" stored in A/B terms by the shown order
            assert ann.preference == (-1 if asg.a_first else 1)
            assert (ann.acceptable_a, ann.acceptable_b) == ((True, False) if asg.a_first else (False, True))


def test_annotator_sees_and_changes_only_their_own(app, store, make_study, make_user, login):
    make_study(n=4)
    app.config["BATCH"] = 2
    make_user("ann")
    make_user("eve")
    ann, eve = login("ann"), login("eve")
    ann_path = ann.get("/annotate").headers["Location"]
    _answer(ann, ann_path, comment="ann's secret")
    eve_path = eve.get("/annotate").headers["Location"]
    assert eve_path != ann_path
    ann_id = int(ann_path.rsplit("/", 1)[1])
    token = csrf_of(eve.get(eve_path).text)
    assert eve.get(ann_path).status_code == 404
    assert eve.get(f"/api/assignments/{ann_id}").status_code == 404
    answer = {"acceptable_first": "no", "acceptable_second": "no", "preference": "5", "comment": "eve was here"}
    assert eve.post(ann_path, data={**answer, "csrf_token": token}).status_code == 404
    r = eve.post(f"/api/assignments/{ann_id}/annotation", json=answer, headers={"X-CSRF-Token": token})
    assert r.status_code == 404
    listed = eve.get("/api/queue").json
    assert int(eve_path.rsplit("/", 1)[1]) in [a["id"] for a in listed["assignments"]]
    assert ann_id not in [a["id"] for a in listed["assignments"]] and len(listed["assignments"]) == 2
    assert "ann's secret" not in eve.get(eve_path).text
    assert eve.get("/admin/").status_code == 403
    assert eve.post("/admin/invitations", data={"csrf_token": token}).status_code == 403
    with store.Session() as s:
        assert [a.comment for a in s.scalars(select(Annotation))] == ["ann's secret"]
    assert app_anonymous(ann).get(f"/api/assignments/{ann_id}").status_code == 401


def app_anonymous(client):
    return client.application.test_client()


def test_invitation_flow_and_admin_dashboard(store, make_study, make_user, login):
    make_study(n=2)
    make_user("boss", admin=True)
    admin = login("boss")
    dash = admin.get("/admin/")
    assert dash.status_code == 200 and "x-vs-y" in dash.text
    page = admin.post("/admin/invitations", data={"csrf_token": csrf_of(dash.text), "note": "for ann"})
    link = re.search(r'id="invite-link" value="http://localhost(/invite/[^"]+)"', page.text).group(1)
    new = admin.application.test_client()
    form = new.get(link)
    assert form.status_code == 200
    bad = new.post(link, data={"username": "ann", "password": "short", "password2": "short",
                               "csrf_token": csrf_of(form.text)})
    assert bad.status_code == 400 and "at least 10 characters" in bad.text
    ok = new.post(link, data={"username": "ann", "password": PASSWORD, "password2": PASSWORD,
                              "csrf_token": csrf_of(form.text)})
    assert ok.status_code == 302
    assert new.get("/annotate").status_code == 302  # logged in, work allocated
    assert new.application.test_client().get(link).status_code == 404  # used: gone
    with store.Session() as s:
        assert s.scalar(select(User).where(User.username == "ann")).is_admin is False


def test_deactivated_user_loses_their_session(store, make_study, make_user, login):
    make_study(n=1)
    make_user("ann")
    c = login("ann")
    assert c.get("/api/queue").status_code == 200
    with store.Session() as s:
        s.scalar(select(User).where(User.username == "ann")).session_epoch += 1
        s.commit()
    assert c.get("/api/queue").status_code == 401


def test_responses_render_as_inert_text(store, make_study, make_user, login):
    payload = ('<script>window.pwned=1</script> <img src=x onerror="window.pwned=2"> '
               '<b onmouseover="window.pwned=3">hover</b> [click](javascript:window.pwned=4) '
               '<a href="javascript:window.pwned=5">link</a>\n\n```python\nprint("<tag>")\n```')
    make_study(n=1, outputs_a=[payload], outputs_b=[payload])
    make_user("ann")
    c = login("ann")
    html = c.get(c.get("/annotate").headers["Location"]).text
    body = html.split('id="response-1">', 1)[1].split("</section>", 1)[0]
    assert "<script" not in body and "<img" not in body and "<b " not in body and "href=\"javascript" not in body
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in body
    assert 'onerror=&quot;window.pwned=2&quot;' in body
    assert '<code class="language-python">print(&quot;&lt;tag&gt;&quot;)' in body


def test_api_submission_replays_by_idempotency_key(store, make_study, make_user, login):
    make_study(n=1)
    make_user("ann")
    c = login("ann")
    path = c.get("/annotate").headers["Location"]
    token = csrf_of(c.get(path).text)
    api = path.replace("/annotate/", "/api/assignments/") + "/annotation"
    answer = {"acceptable_first": True, "acceptable_second": False, "preference": 1}
    h = {"X-CSRF-Token": token, "Idempotency-Key": "abc"}
    r1, r2 = c.post(api, json=answer, headers=h).json, c.post(api, json=answer, headers=h).json
    assert (r1["replayed"], r2["replayed"], r1["annotation_id"]) == (False, True, r2["annotation_id"])
    assert c.get(api.rsplit("/", 1)[0]).json["annotation"]["preference"] == 1
    assert c.post(api, json={"preference": 9}, headers=h).status_code == 400
    with store.Session() as s:
        assert len(s.scalars(select(Annotation)).all()) == 1
        ann = s.scalar(select(User).where(User.username == "ann"))
        assert (service.progress(s, ann.id).done, service.progress(s, ann.id).total) == (1, 1)


def test_every_route_is_guarded(app, store, make_study, make_user, login):
    """Walk the app's URL map: every route but login, logout, invitations and static files needs a login;
    every admin route refuses an annotator; every route on an assignment hides another annotator's."""
    make_study(n=4)
    app.config["BATCH"] = 2
    make_user("ann")
    make_user("eve")
    ann = login("ann")
    ann_path = ann.get("/annotate").headers["Location"]
    ann_id = int(ann_path.rsplit("/", 1)[1])
    eve = login("eve")
    eve_page = eve.get(eve.get("/annotate").headers["Location"])
    token = csrf_of(eve_page.text)
    anonymous = app.test_client()
    public = {"auth.login", "auth.logout", "auth.invite", "static"}
    checked = 0
    for rule in app.url_map.iter_rules():
        if rule.endpoint in public:
            continue
        path = rule.build({"assignment_id": ann_id} if "assignment_id" in rule.arguments else {})[1]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            kw = {"headers": {"X-CSRF-Token": token}, "json": {"preference": 3}} if method != "GET" else {}
            anon = anonymous.open(path, method=method, **kw).status_code
            assert anon in (302, 401) or (anon == 400 and method != "GET"), (rule, method, anon)
            got = eve.open(path, method=method, **kw).status_code
            if rule.endpoint.startswith("admin."):
                assert got == 403, (rule, method, got)
            elif "assignment_id" in rule.arguments:
                assert got == 404, (rule, method, got)
            checked += 1
    assert checked >= 10
    with store.Session() as s:
        assert s.scalars(select(Annotation)).all() == []  # nothing of ann's was written by eve
