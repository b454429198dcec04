"""The app in a real headless Chromium (Debian's chromium + chromium-driver, driven by Selenium).

One browser for the module; each test starts its own server (werkzeug, in a thread) on a fresh store.
Screenshots of the annotation page and the dashboard go to ``test-output/annotate/`` (or
``$CAMELS_TEST_OUTPUT/annotate``).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from pathlib import Path

import pytest
from sqlalchemy import select

from camels.annotate.db import Annotation, Assignment, Pair
from camels.annotate.service import create_user, import_study
from headless import require_chromium, start_chromium

from .annotate_helpers import PASSWORD, make_pairing

require_chromium()
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("CAMELS_TEST_OUTPUT", ROOT / "test-output")) / "annotate"

# Runs before any page script (CDP scripts are exempt from the page's CSP): records CSP violations, i.e.
# any script or handler the page tried to run that the policy had to stop, and traps alert().
WATCH = """
window.__violations = [];
document.addEventListener('securitypolicyviolation',
  function (e) { window.__violations.push(e.violatedDirective + ' ' + e.blockedURI); });
window.alert = function (m) { window.__xss = 'alert:' + m; };
"""

PROMPTS = ["Write a Python function that tells whether a string is a palindrome.",
           "Give three tips for staying healthy.", "What is the capital of Australia?",
           "Translate 'good morning' into French."]
OUTPUTS_A = ["Here is a short function that ignores case and spaces:\n\n```python\ndef is_palindrome(text):\n"
             "    cleaned = ''.join(c.lower() for c in text if c.isalnum())\n    return cleaned == cleaned[::-1]"
             "\n```\n\n`is_palindrome('Never odd or even')` returns `True`.",
             "1. **Eat** a balanced diet.\n2. **Move** every day.\n3. **Sleep** seven to nine hours.",
             "The capital of Australia is **Canberra**.", "*Bonjour.*"]
OUTPUTS_B = ["def palindrome(s): return s == s[::-1]",
             "Drink water, exercise and sleep well.", "Sydney.", "Bonjour."]

XSS = ("<script>window.__xss = 'script'</script>\n\n"
       "<img src=x onerror=\"window.__xss = 'img'\">\n\n"
       "<b onmouseover=\"window.__xss = 'handler'\" id=\"hover-me\">hover me</b>\n\n"
       "[click me](javascript:window.__xss='md-link')\n\n"
       "<a href=\"javascript:window.__xss='a-link'\">a link</a>\n\n"
       "```python\nprint('<b>kept</b>')\n```")


@pytest.fixture(scope="module")
def browser():
    driver = start_chromium(window="1280,1100")
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": WATCH})
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


@pytest.fixture
def live(store, browser):
    """A server on a free loopback port; yields its base URL."""
    from werkzeug.serving import make_server

    from camels.annotate.app import create_app

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = create_app(store, BATCH=4)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    browser.delete_all_cookies()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(10)


def wait(browser, condition, timeout=15):
    return WebDriverWait(browser, timeout).until(condition)


def ready(browser):
    """Wait until the page and its deferred script have loaded (keys are handled from then on)."""
    wait(browser, lambda d: d.execute_script("return document.readyState") == "complete")


def login(browser, base, username, password=PASSWORD):
    browser.delete_all_cookies()
    browser.get(base + "/login")
    browser.find_element(By.NAME, "username").send_keys(username)
    browser.find_element(By.NAME, "password").send_keys(password)
    browser.find_element(By.ID, "login").click()
    wait(browser, lambda d: "/login" not in d.current_url)
    ready(browser)


def progress_text(browser) -> str:
    return browser.find_element(By.ID, "progress-text").text


def goes_to_next(browser, before: str):
    wait(browser, lambda d: d.current_url != before)
    ready(browser)


def shot(browser, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    assert browser.save_screenshot(str(path)), f"screenshot {path} not written"
    assert path.stat().st_size > 10_000
    return path


def no_script_ran(browser):
    assert browser.execute_script("return window.__xss === undefined"), browser.execute_script(
        "return window.__xss")
    assert browser.execute_script("return window.__violations") == []


def test_invite_register_annotate_by_mouse_and_keyboard_resume_and_finish(store, live, browser):
    with store.Session() as s:
        import_study(s, make_pairing(4, prompts=PROMPTS, outputs_a=OUTPUTS_A, outputs_b=OUTPUTS_B,
                                     model_a="tulu-7b", model_b="llama-7b"),
                     name="tulu-vs-llama", sources=("a", "b"), k=1, seed=5)
        create_user(s, "boss", PASSWORD, is_admin=True)

    # The admin invites an annotator.
    login(browser, live, "boss")
    assert browser.current_url.endswith("/admin/")
    browser.find_element(By.NAME, "note").send_keys("for ann")
    browser.find_element(By.ID, "create-invite").click()
    link = wait(browser, EC.presence_of_element_located((By.ID, "invite-link"))).get_attribute("value")
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/invite/[\w-]{40,}", link)
    no_script_ran(browser)

    # The annotator registers through the link and lands on the first comparison.
    browser.delete_all_cookies()
    browser.get(link)
    browser.find_element(By.NAME, "username").send_keys("ann")
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.NAME, "password2").send_keys(PASSWORD)
    browser.find_element(By.ID, "register").click()
    wait(browser, EC.presence_of_element_located((By.ID, "annotation-form")))
    assert progress_text(browser).startswith("0 of 4 done")
    first_url = browser.current_url

    shot(browser, "annotation-page.png")

    # Comparison 1 with the mouse.
    browser.find_element(By.CSS_SELECTOR, "label:has(#acceptable_first-yes)").click()
    browser.find_element(By.CSS_SELECTOR, "label:has(#acceptable_second-no)").click()
    browser.find_element(By.CSS_SELECTOR, "label:has(#preference-2)").click()
    browser.find_element(By.ID, "flagged").click()
    browser.find_element(By.ID, "comment").send_keys("first one by mouse")
    browser.find_element(By.ID, "submit").click()
    goes_to_next(browser, first_url)
    assert progress_text(browser).startswith("1 of 4 done")

    # Comparison 2 with the keyboard only: Q (1 acceptable), S (2 not), 4 (2 slightly better), F, C + text,
    # Esc, Enter.
    second_url = browser.current_url
    keys = ActionChains(browser)
    keys.send_keys("q").send_keys("s").send_keys("4").send_keys("f").send_keys("c")
    keys.send_keys("typed by keyboard").send_keys(Keys.ESCAPE).send_keys(Keys.ENTER).perform()
    goes_to_next(browser, second_url)
    assert progress_text(browser).startswith("2 of 4 done")

    # A reload keeps the place and the progress; going back shows the saved answers.
    browser.refresh()
    assert progress_text(browser).startswith("2 of 4 done")
    browser.get(first_url)
    assert browser.find_element(By.ID, "acceptable_first-yes").is_selected()
    assert browser.find_element(By.ID, "acceptable_second-no").is_selected()
    assert browser.find_element(By.ID, "preference-2").is_selected()
    assert browser.find_element(By.ID, "flagged").is_selected()
    assert browser.find_element(By.ID, "comment").get_attribute("value") == "first one by mouse"
    browser.get(second_url)
    assert browser.find_element(By.ID, "preference-4").is_selected()
    assert browser.find_element(By.ID, "comment").get_attribute("value") == "typed by keyboard"

    # Finish the queue by keyboard.
    browser.get(live + "/annotate")
    ready(browser)
    for _ in range(2):
        here = browser.current_url
        ActionChains(browser).send_keys("w").send_keys("q").send_keys("3").send_keys(Keys.ENTER).perform()
        goes_to_next(browser, here)
    finished = wait(browser, EC.presence_of_element_located((By.ID, "finished")))
    assert "Queue finished" in finished.text and "4 of 4" in finished.text
    no_script_ran(browser)

    with store.Session() as s:
        rows = s.execute(select(Annotation, Assignment, Pair)
                         .join(Assignment, Assignment.id == Annotation.assignment_id)
                         .join(Pair, Pair.id == Assignment.pair_id).order_by(Assignment.id)).all()
    assert len(rows) == 4
    (a1, g1, _), (a2, g2, _) = rows[0], rows[1]
    # Stored in A/B terms through the order each was shown in.
    assert (a1.acceptable_a, a1.acceptable_b) == ((True, False) if g1.a_first else (False, True))
    assert a1.preference == (-1 if g1.a_first else 1) and a1.flagged and a1.comment == "first one by mouse"
    assert a2.preference == (1 if g2.a_first else -1) and a2.flagged and a2.comment == "typed by keyboard"
    assert all(r[0].acceptable_a and r[0].acceptable_b and r[0].preference == 0 for r in rows[2:])

    # The dashboard with the results.
    login(browser, live, "boss")
    assert "4 annotations of 4 pairs by 1 annotator(s), 2 flagged" in browser.find_element(By.ID, "results").text
    shot(browser, "dashboard.png")


def test_hostile_responses_are_inert_text(store, live, browser):
    with store.Session() as s:
        import_study(s, make_pairing(1, outputs_a=[XSS], outputs_b=[XSS]), name="xss", sources=("a", "b"), k=1)
        create_user(s, "ann", PASSWORD)
    login(browser, live, "ann")
    wait(browser, EC.presence_of_element_located((By.ID, "response-1")))
    for box in ("response-1", "response-2"):
        el = browser.find_element(By.ID, box)
        text = el.text
        assert "<script>window.__xss = 'script'</script>" in text
        assert "<img src=x onerror=\"window.__xss = 'img'\">" in text
        assert "[click me](javascript:window.__xss='md-link')" in text
        assert "print('<b>kept</b>')" in el.find_element(By.CSS_SELECTOR, "pre code").text
        assert el.find_elements(By.CSS_SELECTOR, "script, img, iframe, object, b") == []
        assert browser.execute_script(
            "return Array.from(arguments[0].querySelectorAll('*')).some(function (n) {"
            "  return Array.from(n.attributes).some(function (a) {"
            "    return a.name.startsWith('on') || /^\\s*javascript:/i.test(a.value); }); })", el) is False
    # Hover and click where the handlers and links would be.
    target = browser.find_element(By.XPATH, "//div[@id='response-1']//*[contains(text(), 'hover me')]")
    ActionChains(browser).move_to_element(target).click(target).perform()
    for link_text in ("click me", "a link"):
        node = browser.find_element(By.XPATH, f"//div[@id='response-1']//*[contains(text(), '{link_text}')]")
        node.click()
    assert browser.current_url.startswith(live + "/annotate/")
    no_script_ran(browser)
    shot(browser, "hostile-response.png")


def _fetch(browser, method: str, path: str, body=None, csrf: bool = True) -> tuple[int, str]:
    """Call an endpoint from inside the page (same origin, the user's cookies), like a curious user."""
    return tuple(browser.execute_async_script("""
        var done = arguments[arguments.length - 1];
        var input = document.querySelector('input[name=csrf_token]');
        var headers = {'Content-Type': 'application/json'};
        if (arguments[3] && input) { headers['X-CSRF-Token'] = input.value; }
        var init = {method: arguments[0], headers: headers, credentials: 'same-origin'};
        if (arguments[2] !== null) { init.body = JSON.stringify(arguments[2]); }
        fetch(arguments[1], init).then(function (r) {
          return r.text().then(function (t) { done([r.status, t]); }); });
    """, method, path, body, csrf))


def test_second_annotator_cannot_read_or_change_the_first(store, live, browser):
    with store.Session() as s:
        import_study(s, make_pairing(8), name="x-vs-y", sources=("a", "b"), k=1)
        create_user(s, "ann", PASSWORD)
        create_user(s, "eve", PASSWORD)
    login(browser, live, "ann")
    ann_url = browser.current_url
    ActionChains(browser).send_keys("q").send_keys("s").send_keys("1").send_keys("c").send_keys(
        "ann private note").send_keys(Keys.ESCAPE).send_keys(Keys.ENTER).perform()
    goes_to_next(browser, ann_url)
    ann_id = int(ann_url.rsplit("/", 1)[1])

    login(browser, live, "eve")
    assert "/annotate/" in browser.current_url
    queue_links = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "nav.queue a")]
    assert len(queue_links) == 4 and ann_url not in queue_links
    # Through the UI: the page is "not found".
    browser.get(ann_url)
    assert "Not Found" in browser.title and "ann private note" not in browser.page_source
    # Through the endpoints, with eve's valid session and CSRF token.
    browser.back()
    status, body = _fetch(browser, "GET", f"/api/assignments/{ann_id}")
    assert status == 404 and "ann private note" not in body
    answer = {"acceptable_first": "no", "acceptable_second": "no", "preference": 5, "comment": "eve"}
    assert _fetch(browser, "POST", f"/api/assignments/{ann_id}/annotation", answer)[0] == 404
    assert _fetch(browser, "PUT", f"/api/assignments/{ann_id}/annotation", answer)[0] == 404
    assert _fetch(browser, "GET", "/admin/export/annotations.csv")[0] == 403
    status, body = _fetch(browser, "GET", "/api/queue")
    assert status == 200 and f'"id":{ann_id},' not in body.replace(" ", "")
    with store.Session() as s:
        rows = s.scalars(select(Annotation)).all()
    assert [(r.comment, r.preference, r.revision) for r in rows] == [("ann private note", rows[0].preference, 1)]
    assert rows[0].preference in (-2, 2)
    no_script_ran(browser)


def test_forged_or_missing_csrf_token_is_refused(store, live, browser):
    with store.Session() as s:
        import_study(s, make_pairing(2), name="x-vs-y", sources=("a", "b"), k=1)
        create_user(s, "ann", PASSWORD)
    login(browser, live, "ann")
    page = browser.current_url
    assignment_id = int(page.rsplit("/", 1)[1])
    for how in ("forged", "missing"):
        browser.get(page)
        ready(browser)
        ActionChains(browser).send_keys("q").send_keys("q").send_keys("w").send_keys("3").perform()
        if how == "forged":
            browser.execute_script("document.querySelector('#annotation-form input[name=csrf_token]').value = 'forged-token'")
        else:
            browser.execute_script("document.querySelector('#annotation-form input[name=csrf_token]').remove()")
        browser.find_element(By.ID, "submit").click()
        wait(browser, lambda d: "CSRF" in d.page_source)
        assert "Bad Request" in browser.title
    browser.get(page)
    answer = {"acceptable_first": "yes", "acceptable_second": "yes", "preference": 3}
    assert _fetch(browser, "POST", f"/api/assignments/{assignment_id}/annotation", answer, csrf=False)[0] == 400
    with store.Session() as s:
        assert s.scalars(select(Annotation)).all() == []
    # The same submission with the page's token goes through.
    assert _fetch(browser, "POST", f"/api/assignments/{assignment_id}/annotation", answer)[0] == 200
    with store.Session() as s:
        assert len(s.scalars(select(Annotation)).all()) == 1
