"""The web UI in a real headless Chromium (Debian's chromium, driven by Playwright without a
browser download): upload through the form, search with a spec file, the learnware page,
download, an admin deleting it, and a Hetero market's search with feature descriptions. A failing
test leaves a screenshot in build/ui-screenshots/."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from web_testing import hetero_web_market, http, running_web_market, upload, web_market  # noqa: F401 (fixtures)

from lwm.spec import RKMETableSpecification
from lwm.testing.hetero_world import HeteroTableWorld
from lwm.testing.synthetic import TableWorld

pytestmark = pytest.mark.integration
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "ui-screenshots"
CHROMIUM = shutil.which("chromium")
CHECK_TIMEOUT_MS = 240_000


@pytest.fixture
def page() -> Iterator[object]:
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (make test-deps installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
        yield context.new_page()
        browser.close()


def save_token(page, token: str) -> None:
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Save token").click()
    page.get_by_role("alert").filter(has_text="Token saved").wait_for()


def test_upload_search_download_delete_in_a_browser(web_market, page, tmp_path: Path) -> None:
    base, token = web_market
    world = TableWorld.make(tasks=2, seed=5)
    (other_zip, other_semantic), (zip_path, semantic) = (world.write_learnware(task, tmp_path) for task in range(2))
    assert upload(base, other_zip, other_semantic, token["alice"]).json()["learnware"]["status"] == "LEARNWARE_STATUS_USABLE"
    try:
        # The search form waits for the market's kind; the user goes to Upload before it comes.
        # The late answer must not replace the upload form.
        held: list = []
        page.route("**/v1/market", lambda route: held.append(route))
        page.goto(base)
        while not held:
            page.wait_for_timeout(50)
        save_token(page, token["alice"])
        page.get_by_role("link", name="Upload").click()
        page.get_by_role("heading", name="Upload a learnware").wait_for()
        with page.expect_response("**/v1/market"):
            held[0].continue_()
        page.unroute("**/v1/market")
        page.wait_for_timeout(200)  # the stale view's last step runs after the response
        assert page.get_by_role("heading", name="Search learnwares").count() == 0

        # Upload through the form; the page follows the check until the learnware is USABLE.
        page.get_by_label("Name").fill("browser table learnware")
        page.get_by_label("Description").fill("uploaded by the browser test")
        page.get_by_label("Data type").select_option("Table")
        page.get_by_label("Task type").select_option("Classification")
        page.get_by_label("Library").select_option("Scikit-learn")
        page.get_by_label("Scenario").select_option(["Business"])
        page.get_by_label("License").select_option("MIT")
        page.get_by_label("Input dimension").fill(str(world.dim))
        page.get_by_label("Output dimension").fill(str(world.n_classes))
        page.get_by_label("Learnware zip").set_input_files(str(zip_path))
        with page.expect_response(lambda response: response.url.endswith("/v1/learnwares") and response.request.method == "POST") as upload_response:
            page.get_by_role("button", name="Upload and check").click()
        upload_revision = int(upload_response.value.json()["revision"])
        page.locator("#upload-status").filter(has_text="USABLE").wait_for(timeout=CHECK_TIMEOUT_MS)
        assert page.get_by_role("table").filter(has_text="Check report").is_visible()
        uploaded = page.locator("#upload-result a").get_attribute("href")
        assert uploaded is not None and uploaded.startswith("#/learnware/")
        link = page.locator(f'a[href="{uploaded}"]')

        # Bad input: a file that is no specification gets a message, the page stays.
        page.get_by_role("link", name="Search").click()
        page.get_by_role("button", name="Search").wait_for()
        assert page.locator("#features").count() == 0  # feature descriptions are for Hetero markets
        bad = tmp_path / "bad.json"
        bad.write_text("not a specification")
        page.get_by_label("Statistical specification (JSON file)").set_input_files(str(bad))
        page.get_by_role("button", name="Search").click()
        page.get_by_role("alert").filter(has_text="not JSON").wait_for()

        # Search with the user's specification file: the form's learnware comes first.
        x, _ = world.sample(1, 300, np.random.default_rng(11))
        spec = RKMETableSpecification()
        spec.generate_stat_spec_from_data(x)
        spec_file = tmp_path / "user_spec.json"
        spec.save(str(spec_file))
        page.get_by_label("Data type").select_option("Table")
        page.get_by_label("Statistical specification (JSON file)").set_input_files(str(spec_file))
        with page.expect_request("**/v1/learnwares:search") as search_request:
            page.get_by_role("button", name="Search").click()
        # The page's own upload is searched for through any gateway replica: the search waits for its revision.
        assert int(search_request.value.post_data_json["minRevision"]) >= upload_revision > 0
        first = page.locator("ol.results li").first
        first.wait_for()
        assert first.get_by_role("link").get_attribute("href") == uploaded

        # Its page: status, check report, download.
        first.get_by_role("link").click()
        page.get_by_role("heading", name="browser table learnware").wait_for()
        assert page.locator("#status").inner_text() == "USABLE"
        with page.expect_download() as download:
            page.get_by_role("link", name="Download zip").click()
        assert Path(download.value.path()).read_bytes() == zip_path.read_bytes()
        learnware_url = page.url

        # An admin sees the totals and deletes it; its page then says it is gone.
        save_token(page, token["root"])
        page.get_by_role("link", name="Admin").click()
        page.locator("#totals").filter(has_text="USABLE").wait_for()
        link.wait_for()
        page.goto(learnware_url)
        page.get_by_role("heading", name="browser table learnware").wait_for()
        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="Delete").click()
        page.get_by_role("alert").filter(has_text="Deleted").wait_for()
        page.goto(learnware_url)
        page.get_by_role("alert").filter(has_text="NOT_FOUND").wait_for()
        page.get_by_role("link", name="Admin").click()
        page.locator("#totals").wait_for()
        page.get_by_role("table").wait_for()
        assert link.count() == 0
    except BaseException:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "test_upload_search_download_delete_in_a_browser.png"), full_page=True)
        raise


def test_hetero_search_form_in_a_browser(hetero_web_market, page, tmp_path: Path) -> None:
    """The tags come from the market's vocabulary; a Hetero market's form sends the described columns as the search's Input."""
    base, _ = hetero_web_market
    world = TableWorld.make(tasks=1, seed=3)
    x, _ = world.sample(0, 200, np.random.default_rng(4))
    spec = RKMETableSpecification()
    spec.generate_stat_spec_from_data(x)
    spec_file = tmp_path / "user_spec.json"
    spec.save(str(spec_file))
    try:
        page.goto(base)
        form = page.locator("#search-form")
        form.wait_for()
        assert "Text Generation" in page.get_by_label("Task type").inner_text()  # served by /ui/vocabulary.json
        page.get_by_role("group", name="Feature descriptions").wait_for()

        # Bad numbers get a message (the form's own, not only the browser's bubble); the form stays.
        page.get_by_label("Most results").fill("0")
        page.get_by_role("button", name="Search").click()
        page.get_by_role("alert").filter(has_text="Most results must be a whole number from 1 to 100").wait_for()
        page.get_by_label("Most results").fill("10")
        dimension = page.get_by_label("Input dimension")
        for bad in ("0", "2.5", "100000"):
            dimension.fill(bad)
            page.get_by_role("alert").filter(has_text="Input dimension must be a whole number").wait_for()
            assert page.locator("#feature-fields input").count() == 0
        page.get_by_role("button", name="Search").click()
        page.get_by_role("alert").filter(has_text="Input dimension must be a whole number").wait_for()
        assert form.is_visible()

        # One field per column; what was typed stays when the dimension changes.
        dimension.fill(str(world.dim + 1))
        assert page.locator("#feature-fields input").count() == world.dim + 1
        names = [f"column {i} of the user's table" for i in range(world.dim)]
        for i, name in enumerate(names):
            page.get_by_label(f"Feature {i}", exact=True).fill(name)
        dimension.fill(str(world.dim))
        assert page.locator("#feature-fields input").count() == world.dim
        assert page.get_by_label("Feature 0", exact=True).input_value() == names[0]
        page.get_by_label("Data type").select_option("Table")
        page.get_by_label("Task type").select_option("Classification")
        page.get_by_label("Statistical specification (JSON file)").set_input_files(str(spec_file))
        with page.expect_request(lambda request: request.url.endswith("/v1/learnwares:search")) as sent:
            page.get_by_role("button", name="Search").click()
        request = json.loads(sent.value.post_data or "{}")
        assert request["semanticSpec"]["input"] == {"dimension": world.dim, "descriptions": {str(i): name for i, name in enumerate(names)}}
        assert request["statSpecs"][0]["type"] == "RKMETableSpecification"
        # No learnware and no trained engine yet: an answer, with the market's notes about hetero search.
        page.locator("#results h3").wait_for()
        assert "hetero" in page.locator("#results").inner_text().lower()

        # A dimension the specification does not have: the market says why it searched homogeneously.
        page.get_by_label("Input dimension").fill(str(world.dim - 1))
        page.get_by_role("button", name="Search").click()
        page.locator("#results .note").filter(has_text=f"declares {world.dim - 1} features").wait_for()
        assert form.is_visible()
    except BaseException:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "test_hetero_search_form_in_a_browser.png"), full_page=True)
        raise


@pytest.mark.slow
def test_hetero_search_in_a_browser_finds_the_users_task(market_process, page, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In a Hetero market with a trained engine, a user whose columns differ from every learnware's
    describes them in the form and finds the learnware of their task first (a hetero search)."""
    tasks = 4
    monkeypatch.setenv("LWM_HETERO_MIN_LEARNWARES", str(tasks))
    world = HeteroTableWorld.make("diabetes", tasks=tasks, seed=0)
    with running_web_market(market_process, tmp_path, monkeypatch, kind="hetero") as (base, token):
        ids = []
        for task in range(tasks):
            zip_path, semantic = world.write_learnware(task, tmp_path)
            learnware = upload(base, zip_path, semantic, token["alice"]).json()["learnware"]
            assert learnware["status"] == "LEARNWARE_STATUS_USABLE", learnware
            ids.append(learnware["id"])
        deadline = time.monotonic() + 300
        while not (engine := http(f"{base}/v1/market").json().get("heteroEngine", {})).get("engineId") or engine.get("training"):
            assert time.monotonic() < deadline, f"no trained hetero engine: {engine}"
            time.sleep(1)

        task = 2
        columns = [int(c) for c in np.random.default_rng(task).permutation(world.learnware_columns[task])]
        user = world.user_table(task, columns=columns)
        spec = RKMETableSpecification()
        spec.generate_stat_spec_from_data(user.x)
        spec_file = tmp_path / "user_spec.json"
        spec.save(str(spec_file))
        try:
            page.goto(base)
            page.get_by_label("Data type").select_option("Table")
            page.get_by_label("Task type").select_option("Regression")
            page.get_by_label("Statistical specification (JSON file)").set_input_files(str(spec_file))
            page.get_by_label("Input dimension").fill(str(len(columns)))
            for i, description in enumerate(user.descriptions):
                page.get_by_label(f"Feature {i}", exact=True).fill(description)
            page.get_by_role("button", name="Search").click()
            page.locator("#results h3").filter(has_text="hetero search").wait_for()
            first = page.locator("ol.results li").first
            assert first.get_by_role("link").get_attribute("href") == f"#/learnware/{ids[task]}"
        except BaseException:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "test_hetero_search_in_a_browser_finds_the_users_task.png"), full_page=True)
            raise
