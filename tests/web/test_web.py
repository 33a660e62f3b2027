"""The web page (sr_keras.web, web.py): HTTP-level tests of its messages, queue and cancelling on a server
bound to 127.0.0.1 port 0 in this process, and, in the slow tier, the page itself in headless Chromium
(Debian's chromium and chromium-driver) driven by selenium. The browser run writes docs/figures/web.png."""
import concurrent.futures
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest
import skimage.data
from PIL import Image

from sr_keras.cli.web import wide_open_warning
from sr_keras.infer.pictures import Tiling
from sr_keras.web import jobs
from sr_keras.web.jobs import Worker
from sr_keras.web.server import address, make_server
import sr_keras

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WAIT = 60  # seconds any one step may take on a loaded 2-core machine; every wait ends on a condition


@contextlib.contextmanager
def serving(worker):
    """worker's page on 127.0.0.1, any free port, in this process; yields its URL."""
    server = make_server(worker, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    worker.start()
    try:
        yield address(server)
    finally:
        server.shutdown()
        server.server_close()
        worker.stop()


def request(url, data=None, headers=None):
    """(status, body) of a GET (or a POST of `data`), JSON bodies decoded."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers or {},
                                                           method="POST" if data is not None else "GET"),
                                    timeout=WAIT) as r:
            status, body, kind = r.status, r.read(), r.headers.get_content_type()
    except urllib.error.HTTPError as e:
        status, body, kind = e.code, e.read(), e.headers.get_content_type()
    return status, json.loads(body) if kind == "application/json" else body


def png_bytes(pixels):
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def finished(url, status):
    """Long-poll a job until it is done, failed or cancelled; returns its last status."""
    while status["state"] in ("queued", "running"):
        code, status = request(f"{url}api/jobs/{status['id']}?wait={WAIT}&state={status['state']}"
                               f"&tiles={status['tiles']}")
        assert code == 200
    return status


class Gate:
    """A stand-in x2 upscaler (nearest neighbour) whose tiles wait for the test's `go`, counting how
    many model calls run at once."""

    scale, radius, act_bytes, whole_image = 2, 0, None, False

    def __init__(self):
        self.entered, self.go, self.lock = threading.Event(), threading.Event(), threading.Lock()
        self.active = self.most = self.calls = 0

    def batch(self, lrs):
        with self.lock:
            self.active += 1
            self.calls += 1
            self.most = max(self.most, self.active)
        self.entered.set()
        assert self.go.wait(WAIT)
        with self.lock:
            self.active -= 1
        return lrs.repeat(2, axis=1).repeat(2, axis=2)


@pytest.fixture
def gate(monkeypatch):
    gate = Gate()
    monkeypatch.setattr(jobs, "_load", lambda name: gate)
    return gate


def picture(h=20, w=24, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_bad_uploads_get_one_line_messages_and_the_server_keeps_serving(gate):
    gate.go.set()
    with serving(Worker("demo_x4", max_megapixels=0.001)) as url:  # 1,000 pixels
        cases = [(b"just some notes\n", "notes.txt", "", "cannot read image 'notes.txt': not an image"),
                 (b"", "empty.png", "", "'empty.png' is empty"),
                 (png_bytes(picture(40, 40)), "big.png", "", "'big.png' is 40x40, 0.0016 megapixels: over this "
                                                            "server's limit of 0.001 (--max-megapixels)"),
                 (png_bytes(picture()), "a.png", "&model=nonesuch", "model 'nonesuch' is not one of"),
                 (png_bytes(picture()), "a.png", "&strength=0.5", "model 'demo_x4' has no interpolation strength")]
        for data, name, extra, message in cases:
            status, body = request(f"{url}api/jobs?name={name}{extra}", data)
            assert status == 400 and body["error"].startswith(message), (name, body)
        status, body = request(f"{url}api/jobs?name=small.png", png_bytes(picture(20, 24)))
        assert status == 202 and finished(url, body)["state"] == "done"
        assert request(url)[0] == 200


def test_other_sites_pages_are_refused(gate):
    gate.go.set()
    worker = Worker("demo_x4", max_megapixels=1)
    with serving(worker) as url:
        posted = request(f"{url}api/jobs?name=a.png", png_bytes(picture()), {"Origin": "http://evil.example"})
        rebound = request(f"{url}api/models", headers={"Host": "evil.example:8000"})
        own = request(f"{url}api/jobs?name=a.png", png_bytes(picture()), {"Origin": url.rstrip("/")})
    assert posted[0] == rebound[0] == 403 and posted[1]["error"] == "this page answers only its own address"
    assert own[0] == 202 and len(worker.jobs) == 1  # the refused upload queued nothing


def test_a_model_error_is_shown_on_its_job_and_the_next_picture_equals_the_python_api_output():
    lr = picture(14, 18)
    with serving(Worker("demo_x4", max_megapixels=1)) as url:
        _, thin = request(f"{url}api/jobs?name=thin.png", png_bytes(picture(8, 1)))
        thin = finished(url, thin)  # demo_x4's bicubic skip pads 2 pixels: a 1-pixel-wide picture fails
        assert thin["state"] == "error" and thin["error"].startswith("'thin.png': the model cannot upscale this 1x8")
        _, ok = request(f"{url}api/jobs?name=ok.png", png_bytes(lr))
        assert finished(url, ok)["state"] == "done"
        status, body = request(f"{url}api/jobs/{ok['id']}/result.png")
    assert status == 200
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(body))), sr_keras.upscale(lr, model="demo_x4"))


def test_two_browsers_are_served_in_turn_one_model_call_at_a_time(gate):
    pictures = [picture(seed=1), picture(seed=2)]
    with serving(Worker("demo_x4", max_megapixels=1)) as url:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:  # two pages upload at the same moment
            posted = list(pool.map(lambda i: request(f"{url}api/jobs?name={i}.png", png_bytes(pictures[i])), (0, 1)))
        assert [status for status, _ in posted] == [202, 202]
        assert gate.entered.wait(WAIT)
        states = sorted((request(f"{url}api/jobs/{body['id']}")[1]["state"], request(
            f"{url}api/jobs/{body['id']}")[1]["ahead"]) for _, body in posted)
        assert states == [("queued", 1), ("running", 0)]
        gate.go.set()
        done = [finished(url, body) for _, body in posted]
        results = [request(f"{url}api/jobs/{body['id']}/result.png")[1] for _, body in posted]
    assert [d["state"] for d in done] == ["done", "done"] and gate.most == 1
    for lr, png in zip(pictures, results):
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png))), lr.repeat(2, 0).repeat(2, 1))


def test_cancel_stops_a_running_job_after_its_tile_and_a_queued_one_before_it_starts(gate):
    with serving(Worker("demo_x4", max_megapixels=1, tiling=Tiling(tile=16, overlap=0))) as url:
        _, running = request(f"{url}api/jobs?name=a.png", png_bytes(picture(32, 32)))  # 4 tiles
        _, queued = request(f"{url}api/jobs?name=b.png", png_bytes(picture(32, 32)))
        assert gate.entered.wait(WAIT)
        for job in (running, queued):
            assert request(f"{url}api/jobs/{job['id']}/cancel", b"")[0] == 200
        gate.go.set()
        running, queued = finished(url, running), finished(url, queued)
        assert request(f"{url}api/jobs/{running['id']}/result.png")[0] == 409
    assert (running["state"], running["tiles"], running["total"]) == ("cancelled", 1, 4)
    assert queued["state"] == "cancelled" and gate.calls == 1


def test_downloads_come_in_every_format_the_picture_fits(gate):
    gate.go.set()
    rgba = np.dstack([picture(), np.full((20, 24), 200, np.uint8)])
    with serving(Worker("demo_x4", max_megapixels=1)) as url:
        jobs_ = [finished(url, request(f"{url}api/jobs?name=p{i}.png", png_bytes(p))[1])
                 for i, p in enumerate((picture(), rgba))]
        got = {ext: request(f"{url}api/jobs/{jobs_[0]['id']}/result.{ext}?download=1") for ext in ("png", "jpg", "webp")}
        refused = request(f"{url}api/jobs/{jobs_[1]['id']}/result.jpg")
        kept = request(f"{url}api/jobs/{jobs_[1]['id']}/result.webp")
    for ext, fmt in (("png", "PNG"), ("jpg", "JPEG"), ("webp", "WEBP")):
        with Image.open(io.BytesIO(got[ext][1])) as im:
            assert got[ext][0] == 200 and (im.format, im.size) == (fmt, (48, 40))
    assert refused[0] == 400 and "alpha channel, which JPEG cannot hold" in refused[1]["error"]
    with Image.open(io.BytesIO(kept[1])) as im:
        assert im.mode == "RGBA"


def test_old_results_give_way_to_new_ones_beyond_the_budget(gate, monkeypatch):
    gate.go.set()
    monkeypatch.setattr(jobs, "RESULT_BUDGET", 1)  # bytes: only the newest result stays
    with serving(Worker("demo_x4", max_megapixels=1)) as url:
        old, new = (finished(url, request(f"{url}api/jobs?name={n}.png", png_bytes(picture()))[1]) for n in "ab")
        assert request(f"{url}api/jobs/{new['id']}/result.png")[0] == 200
        status, body = request(f"{url}api/jobs/{old['id']}/result.png")
    assert status == 400 and body["error"] == "the result of 'a.png' is no longer kept: upscale it again"


def test_the_interpolation_slider_blends_the_pair_cached_per_strength(tmp_path, monkeypatch):
    import keras

    model = keras.saving.load_model(os.path.join(ROOT, "saved_models", "demo_x4", "model.keras"), compile=False,
                                    safe_mode=True)
    for w in model.weights:
        w.assign(w * 0.8)  # another "training" of the same generator
    model.save(tmp_path / "demo_b.keras")
    monkeypatch.setenv("SR_KERAS_MODELS", str(tmp_path))
    lr = picture(12, 12)
    worker = Worker("demo_x4", max_megapixels=1, pair=("demo_x4", "demo_b"))
    with serving(worker) as url:
        assert request(f"{url}api/models")[1]["interpolation"] == {"a": "demo_x4", "b": "demo_b"}
        out = {}
        for strength in ("0", "0.5", "1", "0.5"):
            _, job = request(f"{url}api/jobs?name=p.png&model=demo_b&strength={strength}", png_bytes(lr))
            assert finished(url, job)["state"] == "done"
            out.setdefault(strength, []).append(np.asarray(Image.open(io.BytesIO(
                request(f"{url}api/jobs/{job['id']}/result.png")[1]))))
    assert list(worker._blends) == [0.5]  # one blend, made once, used twice
    np.testing.assert_array_equal(out["0"][0], sr_keras.upscale(lr, model="demo_x4"))
    np.testing.assert_array_equal(out["1"][0], sr_keras.upscale(lr, model=str(tmp_path / "demo_b.keras")))
    np.testing.assert_array_equal(out["0.5"][0], out["0.5"][1])
    assert not np.array_equal(out["0.5"][0], out["0"][0]) and not np.array_equal(out["0.5"][0], out["1"][0])


def test_only_loopback_addresses_pass_without_a_warning():
    assert [wide_open_warning(h) for h in ("127.0.0.1", "localhost", "::1")] == [None] * 3
    assert "opens the page to other machines" in wide_open_warning("0.0.0.0")
    assert "opens the page to other machines" in wide_open_warning("myhost.example")


def test_web_py_serves_127_0_0_1_by_default_and_prints_the_address():
    help_text = subprocess.run([sys.executable, "web.py", "--help"], cwd=ROOT, capture_output=True, text=True).stdout
    assert "(default: 127.0.0.1)" in help_text and "(default: 16.0)" in help_text
    proc = subprocess.Popen([sys.executable, "web.py", "--port", "0", "--model", "demo_x4"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("serving http://127.0.0.1:"), line
        status, page = request(line.split()[1])
        assert status == 200 and b'type="file"' in page
    finally:
        proc.terminate()
        proc.wait(WAIT)


# ---- in a real browser -------------------------------------------------------------------------------

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.fail("the browser tests need Debian's chromium and chromium-driver (apt-get install -y chromium "
                    "chromium-driver); deselect them with -m 'not slow'")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--window-size=1280,860", "--disable-dev-shm-usage",
                 "--disable-gpu"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        with serving(Worker("demo_x4", max_megapixels=1)) as url:
            driver.get(url)
            yield driver, url
    finally:
        driver.quit()


def _upload(driver, path):
    from selenium.webdriver.common.by import By

    driver.find_elements(By.CSS_SELECTOR, "input[type=file]")[0].send_keys(str(path))


@pytest.mark.slow
def test_the_page_upscales_a_picture_to_the_project_output_and_zooms_to_pixels(browser, tmp_path):
    from selenium.webdriver.support.ui import Select, WebDriverWait

    driver, url = browser
    lr = np.asarray(Image.fromarray(skimage.data.chelsea()).resize((150, 100), Image.LANCZOS))  # a small photo
    Image.fromarray(lr).save(tmp_path / "cat.png")
    WebDriverWait(driver, WAIT).until(lambda d: d.execute_script("return document.querySelector('#model').value"))
    _upload(driver, tmp_path / "cat.png")
    found = "return Array.from(document.querySelectorAll('img.result')).find(i => i.complete && i.naturalWidth == 600 " \
            "&& i.naturalHeight == 400 && !i.closest('.job').querySelector('.tools').hidden) || null"
    result = WebDriverWait(driver, WAIT).until(lambda d: d.execute_script(found))
    driver.save_screenshot(os.path.join(ROOT, "docs", "figures", "web.png"))
    _, shown = request(result.get_attribute("src"))
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(shown))), sr_keras.upscale(lr, model="demo_x4"))
    card = driver.execute_script("return arguments[0].closest('.job')", result)
    Select(card.find_element("css selector", "select.zoom")).select_by_value("4")
    style = driver.execute_script("const s = getComputedStyle(arguments[0]); return [s.imageRendering, s.width]", result)
    assert style == ["pixelated", "2400px"]  # 4 screen pixels per result pixel
    Select(card.find_element("css selector", "select.mode")).select_by_value("slider")
    assert card.find_element("css selector", ".compare").is_displayed()
    assert not card.find_element("css selector", "figure.after").is_displayed()


@pytest.mark.slow
def test_the_page_shows_a_message_for_a_text_file_and_keeps_working(browser, tmp_path):
    from selenium.webdriver.support.ui import WebDriverWait

    driver, url = browser
    (tmp_path / "notes.png").write_text("not a picture\n")
    _upload(driver, tmp_path / "notes.png")
    shown = "return Array.from(document.querySelectorAll('.job .error')).filter(e => !e.hidden)" \
            ".map(e => e.textContent).join('|')"
    message = WebDriverWait(driver, WAIT).until(lambda d: d.execute_script(shown))
    assert message.startswith("cannot read image 'notes.png': not an image, or its header is corrupt")
    assert request(url)[0] == 200 and request(f"{url}api/models")[0] == 200
