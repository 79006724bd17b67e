"""A real browser (Debian's Chromium, driven by Playwright) against the running service: the
dashboard with data in it, and a page on another origin that embeds the feedback widget."""

from __future__ import annotations

import http.server
import shutil
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import likeloop
import pytest
from likeloop import _token

from likeloop_cli.stack import free_port
from likeloop_server import keys
from tests.support import likeloop_cli, make_key, run_worker_burst, stored_records

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
# As this machine needs them: no sandbox as root, and no background network (there is none).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed (make test installs it)")


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def data(live_service, conn):
    """Two models, several prompts, votes and comments, sent with the SDK."""
    key = make_key(conn, "acme")
    ll = likeloop.Client(api_key=key, url=live_service.url, flush_interval=0.05)
    rids = {}
    for model, good in (("gpt-small", 3), ("gpt-large", 1)):
        for i in range(4):
            rid = ll.log(prompt=f"Question {i}", response=f"{model} answer {i}", model=model)
            rids[(model, i)] = rid
            (ll.like if i < good else ll.dislike)(rid, user_id="u1")
    ll.comment(rids[("gpt-large", 3)], "far too long")
    assert ll.flush(10)
    ll.shutdown()
    return key, rids, ll


@pytest.fixture
def history(live_service, conn, settings, s3):
    """Six days of traffic on two models (one liked, one disliked more), paired by a real worker
    and exported once: what the dashboard draws over time."""
    key = make_key(conn, "acme")
    now = time.time()
    events = []
    for d in range(6):
        ts = now - (5 - d) * 86400
        for model, liked in (("gpt-small", 4), ("gpt-large", 1)):
            for i in range(5):
                rid = f"{model}-{d}-{i}"
                events.append(
                    {
                        "type": "response",
                        "response_id": rid,
                        "prompt": f"Question {i}",
                        "response": f"{model} answer {i} (day {d})",
                        "model": model,
                        "timestamp": ts,
                    }
                )
                vote = "like" if i < liked else "dislike"
                events.append({"type": vote, "response_id": rid, "user_id": f"u{d}", "timestamp": ts})
    events.append({"type": "comment", "response_id": "gpt-large-5-4", "user_id": "u5", "text": "far too long"})
    # People who saw both answers side by side mostly preferred gpt-small's.
    for i in range(5):
        winner, loser = ("gpt-small", "gpt-large") if i < 4 else ("gpt-large", "gpt-small")
        events.append(
            {
                "type": "comparison",
                "response_id": f"{winner}-5-{i}",
                "other_response_id": f"{loser}-5-{i}",
                "choice": "a",
                "user_id": "judge",
            }
        )
    post_events(live_service.url, key, events)
    run_worker_burst(settings)
    likeloop_cli("export", "--project", "acme", settings=settings)
    run_worker_burst(settings)
    return key


def post_events(url: str, key: str, events: list[dict]) -> None:
    import json

    for start in range(0, len(events), 200):
        body = json.dumps({"events": events[start : start + 200]}).encode()
        req = urllib.request.Request(
            f"{url}/v1/events",
            data=body,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        assert urllib.request.urlopen(req, timeout=10).status == 200


def attributes(page, selector: str, name: str) -> set[str]:
    found = page.locator(selector)
    return {found.nth(i).get_attribute(name) for i in range(found.count())}


def test_the_dashboard_shows_the_project_over_time(browser, live_service, history, settings):
    page = browser.new_page(viewport={"width": 1300, "height": 1400})
    page.goto(f"{live_service.url}/dashboard")
    page.fill("#key", history)
    page.click("#load")
    page.wait_for_selector("body[data-loaded=true]", timeout=15000)
    assert page.locator("#kpis").inner_text().split()[0] == "60"  # responses in the last 30 days
    # Like rate and volume per model, one point per model and day.
    assert attributes(page, "#like-rate-chart circle.point", "data-model") == {"gpt-small", "gpt-large"}
    assert len(attributes(page, "#like-rate-chart circle.point", "data-bucket")) == 6
    assert len(attributes(page, "#volume-chart circle.point", "data-bucket")) == 6
    assert "80.0%" in page.locator("#models").inner_text() and "20.0%" in page.locator("#models").inner_text()
    # The leaderboard puts the model people preferred first.
    board = page.locator("#leaderboard tr")
    assert "gpt-small" in board.nth(1).inner_text() and "gpt-large" in board.nth(2).inner_text()
    # Pairs made by the worker and exported by the export, today.
    assert attributes(page, "#pairs-chart rect", "data-kind") == {"made", "exported"}
    # Exports with their counts, size and manifest.
    exports_text = page.locator("#exports").inner_text()
    assert "succeeded" in exports_text and " KB" in exports_text and "manifests/" in exports_text
    # A disliked prompt opens its responses and their comments.
    assert "Question 4" in page.locator("#prompts").inner_text()
    page.locator("#prompts a.prompt-link", has_text="Question 4").click()
    page.wait_for_selector("#group .response", timeout=10000)
    assert page.locator("#group .response").count() == 12
    assert "far too long" in page.locator("#group").inner_text()
    assert "#prompt=" in page.url
    # A comment leads to its prompt group too.
    page.locator("#comments a.response-link").first.click()
    page.wait_for_function("document.querySelector('#group').innerText.includes('far too long')", timeout=10000)
    assert "groups waiting for pairing" in page.locator("#pipeline").inner_text()
    # Quality: the job the page queued is computed by a worker; the page asks again and shows it.
    assert page.locator("#quality").get_attribute("data-state") == "computing"
    run_worker_burst(settings)
    page.wait_for_selector("#quality[data-state=ready]", timeout=20000)
    page.wait_for_selector("#voters[data-state=ready]", timeout=20000)

    def figure(name: str) -> list[str]:
        return page.locator(f"#quality tr[data-figure={name}] td").all_inner_texts()

    # each response has one voter (no agreement to measure), "Question 0".."4" are no copies, nobody is a bot
    assert figure("vote_agreement")[1:] == ["–", "0 responses with 2+ voters"]
    assert figure("duplicate_prompts")[1:] == ["0.0%", "0 of 5 groups"]
    assert figure("suspect_voters")[1:] == ["0", "0 pairs rest on them alone"]
    assert int(figure("pairs_by_source")[1]) > 0 and "none found" in page.locator("#voters").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000

    # The last 24 hours: today's traffic only, by hour.
    page.evaluate("document.body.removeAttribute('data-loaded')")
    page.select_option("#range", "24h")
    page.wait_for_selector("body[data-loaded=true]", timeout=15000)
    assert page.locator("#kpis").inner_text().split()[0] == "10"
    assert all(len(b) == 13 for b in attributes(page, "#like-rate-chart circle.point", "data-bucket"))
    page.screenshot(path=str(ARTIFACTS / "dashboard-24h.png"), full_page=True)


def test_a_wrong_key_is_shown_not_crashed(browser, live_service, conn):
    page = browser.new_page()
    page.goto(f"{live_service.url}/dashboard")
    page.fill("#key", "llk_not_a_key")
    page.click("#load")
    page.wait_for_selector("#message .error", timeout=10000)
    assert "not known" in page.locator("#message").inner_text()


class PageServer:
    """Serves one HTML page from another origin than the service (so CORS is exercised)."""

    def __init__(self, html: str) -> None:
        body = html.encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (stdlib's name)
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.port = free_port()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.port}/"

    def close(self) -> None:
        self.server.shutdown()


def widget_page(service_url: str, widgets: list[tuple[str, str, str]]) -> str:
    divs = "".join(
        f'<div id="{name}" data-likeloop-token="{token}" data-likeloop-response="{rid}" '
        f'data-likeloop-url="{service_url}"></div>'
        for name, token, rid in widgets
    )
    script = f'<script src="{service_url}/static/likeloop.js"></script>'
    return f"<!doctype html><html><body><p>An app</p>{divs}{script}</body></html>"


def likes_of(service_url: str, key: str, rid: str) -> int:
    import json

    req = urllib.request.Request(f"{service_url}/v1/responses/{rid}", headers={"Authorization": f"Bearer {key}"})
    return json.loads(urllib.request.urlopen(req, timeout=5).read())["feedback"]["likes"]


def test_the_widget_posts_feedback_with_a_token_and_refuses_bad_ones(browser, live_service, data):
    key, rids, ll = data
    target = rids[("gpt-large", 3)]  # disliked by u1 so far
    other = rids[("gpt-large", 2)]
    good = ll.feedback_token(target, user_id="browser-user")
    expired = _token.mint(key, target, 60, now=time.time() - 3600)
    foreign = ll.feedback_token(other)  # a valid token, but for another response
    site = PageServer(
        widget_page(live_service.url, [("ok", good, target), ("old", expired, target), ("foreign", foreign, target)])
    )
    try:
        page = browser.new_page()
        page.goto(site.url)
        before = likes_of(live_service.url, key, target)
        page.click("#ok [data-likeloop-action=like]")
        page.wait_for_function("document.querySelector('#ok [data-likeloop-status]').textContent === 'Thanks!'")
        assert likes_of(live_service.url, key, target) == before + 1

        page.click("#old [data-likeloop-action=like]")
        page.wait_for_function("document.querySelector('#old [data-likeloop-status]').textContent.includes('expired')")
        page.click("#foreign [data-likeloop-action=like]")
        page.wait_for_function(
            "document.querySelector('#foreign [data-likeloop-status]').textContent.includes('another response')"
        )
        assert likes_of(live_service.url, key, target) == before + 1
        assert likes_of(live_service.url, key, other) == 0
    finally:
        site.close()


def test_the_widget_compares_two_answers_with_a_token_bound_to_both(browser, live_service, data, settings, conn):
    import json

    key, rids, ll = data
    a, b = rids[("gpt-small", 1)], rids[("gpt-large", 1)]  # both answer "Question 1"
    token = ll.feedback_token(a, compare_with=b)
    div = (
        f'<div id="cmp" data-likeloop-token="{token}" data-likeloop-response="{a}" '
        f'data-likeloop-compare="{b}" data-likeloop-url="{live_service.url}"></div>'
    )
    site = PageServer(
        f'<!doctype html><html><body>{div}<script src="{live_service.url}/static/likeloop.js"></script></body></html>'
    )
    try:
        page = browser.new_page()
        page.goto(site.url)
        assert page.locator("#cmp [data-likeloop-action]").count() == 4
        page.click("#cmp [data-likeloop-action=b]")
        page.wait_for_function("document.querySelector('#cmp [data-likeloop-status]').textContent === 'Thanks!'")
        req = urllib.request.Request(f"{live_service.url}/v1/stats", headers={"Authorization": f"Bearer {key}"})
        assert json.loads(urllib.request.urlopen(req, timeout=5).read())["totals"]["comparisons"] == 1
        # The click chose b: once paired, b is chosen over a (the comparison decides the pair,
        # though the votes had liked a and disliked b).
        run_worker_burst(settings)
        pk = keys.ProjectKeys("acme")
        (pair,) = stored_records(conn, pk, conn.hget(pk.response(a), "group").decode())
        assert (pair["chosen"], pair["rejected"]) == ("gpt-large answer 1", "gpt-small answer 1")
        assert json.loads(pair["metadata"])["source"] == "comparison"
        # The same token votes on neither answer, and compares no other answers.
        c = rids[("gpt-small", 2)]
        for body in (
            {"type": "like", "response_id": a},
            {"type": "comparison", "response_id": a, "other_response_id": c, "choice": "a"},
        ):
            assert post_with(live_service.url, token, body) == 403
        assert ll.feedback_token(a, compare_with=a) is None
    finally:
        site.close()


def post_with(service_url: str, token: str, body: dict) -> int:
    """A browser's POST /v1/feedback with a feedback token; its HTTP status."""
    import json

    req = urllib.request.Request(
        f"{service_url}/v1/feedback",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code
