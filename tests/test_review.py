"""``scenes review``: the decisions store, the queues, and the page in a real headless Chromium."""

import csv
import shutil
import time

import pytest

from scenes.cli import main
from scenes.errors import DataError, UsageError
from scenes.review.decisions import DECISION_COLUMNS, DecisionStore, file_digest
from scenes.review.queues import (
    load_queue,
    mistakes_queue,
    only_under,
    selection_queue,
)
from scenes.selection_file import COLUMNS
from scenes.serve.predictor import Predictor

from conftest import make_image
from test_app import CHROMEDRIVER, CHROMIUM, browser, free_port  # noqa: F401 (a fixture)


def write_csv(path, header, rows):
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_decisions(folder):
    with (folder / "decisions.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == DECISION_COLUMNS
        return list(reader)


# -- the decisions store --------------------------------------------------------------------
def test_decisions_are_saved_at_once_replaced_undone_and_read_back(tmp_path):
    a, b = make_image(tmp_path / "a.jpg", (1, 2, 3)), make_image(tmp_path / "b.jpg", (9, 8, 7))
    store = DecisionStore(tmp_path / "review")
    store.decide(a, file_digest(a), "cat_a", "cat_b", "issues", 1)
    assert [r["decision"] for r in read_decisions(tmp_path / "review")] == ["cat_b"]
    store.decide(b, file_digest(b), "cat_b", "exclude", "issues", 2)
    store.decide(a, file_digest(a), "cat_a", "keep", "issues", 1)  # decided again: replaced
    rows = read_decisions(tmp_path / "review")
    assert [(r["path"], r["decision"]) for r in rows] == [(str(b), "exclude"), (str(a), "keep")]
    assert rows[1]["sha256"] == file_digest(a) and rows[1]["decided_at"].endswith("+00:00")

    reopened = DecisionStore(tmp_path / "review")  # a new process resumes from the file
    assert reopened.decided(a, file_digest(a)).decision == "keep"
    assert reopened.undo().path == str(a)  # the last decision made
    assert reopened.decided(a) is None and reopened.decided(b).decision == "exclude"
    assert [r["path"] for r in read_decisions(tmp_path / "review")] == [str(b)]
    reopened.undo()
    assert reopened.undo() is None and read_decisions(tmp_path / "review") == []


def test_a_file_changed_since_its_decision_is_undecided_again(tmp_path):
    photo = make_image(tmp_path / "a.jpg", (1, 2, 3))
    store = DecisionStore(tmp_path / "review")
    store.decide(photo, file_digest(photo), "cat_a", "exclude", "issues", 1)
    make_image(photo, (200, 2, 3))  # the same name, other bytes
    assert store.decided(photo).decision == "exclude"  # still listed, with its old digest
    assert store.decided(photo, file_digest(photo)) is None  # but not in force


def test_a_decisions_file_scenes_did_not_write_is_refused(tmp_path):
    write_csv(tmp_path / "decisions.csv", ["path", "label"], [["a.jpg", "x"]])
    with pytest.raises(DataError, match="lacks the column"):
        DecisionStore(tmp_path)


# -- the queues -----------------------------------------------------------------------------
def test_mistakes_come_most_confident_first_and_selections_in_their_order(tmp_path):
    rows = [
        ["a.jpg", "cat_a", "cat_a", "0.99", ""],
        ["b.jpg", "cat_a", "cat_b", "0.6", ""],
        ["c.jpg", "cat_c", "cat_b", "0.9", ""],
    ]
    header = ["path", "true", "predicted", "confidence", "top3"]
    items = mistakes_queue(write_csv(tmp_path / "predictions.csv", header, rows))
    assert [(i.path.name, i.given, i.rank) for i in items] == [
        ("c.jpg", "cat_c", 1),
        ("b.jpg", "cat_a", 2),
    ]
    assert "answered cat_b with confidence 0.900" in items[0].why
    multilabel = [["a.jpg", "cat_a", "cat_a", "0.9"], ["b.jpg", "cat_a cat_c", "cat_b", "0.6"]]
    written = write_csv(
        tmp_path / "ml.csv", ["path", "true", "predicted", "prob_cat_a"], multilabel
    )
    assert [(i.path.name, i.given, i.score) for i in mistakes_queue(written)] == [
        ("b.jpg", "cat_a;cat_c", 3.0)
    ]

    picked = [
        ["2", str(tmp_path / "y.jpg"), "0.2", "margin", "cat_a", "0.5", "cat_b", "0.3"],
        ["1", str(tmp_path / "x.jpg"), "0.1", "margin", "cat_b", "0.5", "cat_a", "0.4"],
    ]
    items = selection_queue(write_csv(tmp_path / "sel.csv", list(COLUMNS), picked))
    assert [(i.path.name, i.given, i.rank) for i in items] == [("x.jpg", "", 1), ("y.jpg", "", 2)]
    assert [i.path.name for i in only_under(items, [str(tmp_path / "y.jpg")])] == ["y.jpg"]
    with pytest.raises(UsageError, match="none of the 2 queued photos"):
        only_under(items, [str(tmp_path / "elsewhere")])
    write_csv(tmp_path / "bad.csv", ["path", "score"], [["x.jpg", "0.1"]])
    with pytest.raises(DataError, match="a selection file has rank,path,score"):
        selection_queue(tmp_path / "bad.csv")


def test_queues_say_what_they_need(trained_run, tmp_path, capsys):
    with pytest.raises(UsageError, match="--selection FILE"):
        load_queue(trained_run, "uncertain")
    with pytest.raises(UsageError, match="scenes evaluate"):
        load_queue(tmp_path, "mistakes")
    with pytest.raises(UsageError, match="--predictions is for --queue mistakes"):
        load_queue(trained_run, "issues", predictions="p.csv")
    run = ["review", "--run", str(trained_run), "--queue", "uncertain"]
    assert main(run) == 2 and "--selection" in capsys.readouterr().err


def test_a_session_counts_reshows_changed_files_and_toggles_multilabel_classes(
    trained_run, tmp_path
):
    from scenes.review.queues import QueueItem
    from scenes.review.session import ReviewSession

    colours = [(220, 40, 40), (40, 200, 40), (40, 40, 220)]
    photos = [make_image(tmp_path / f"{i}.png", c) for i, c in enumerate(colours)]
    items = [QueueItem(p, "cat_a", "issues", i, 0.1, "") for i, p in enumerate(photos, 1)]
    predictor = Predictor.load(trained_run)
    session = ReviewSession(predictor, items, DecisionStore(tmp_path / "review"))
    session.decide(0, "exclude")
    session.choose_class(1, "cat_a")  # relabelled to its given label: not a change
    assert session.counts() == (2, 1, 1) and session.first_undecided() == 2
    before = session.show(0).photo
    make_image(photos[0], (20, 60, 200), size=(24, 24))  # changed since its decision: reshown
    assert session.counts() == (1, 2, 0) and session.first_undecided() == 0
    assert before.shape == (40, 40, 3) and session.show(0).photo.shape == (24, 24, 3)
    shown = session.show(2)
    assert list(shown.top) == [label for label, _ in predictor.predict(photos[2])]
    assert shown.photo.shape == (40, 40, 3) and shown.heatmap.shape == (32, 32, 3)
    (tmp_path / "broken.png").write_text("not a photo")
    session.items.append(QueueItem(tmp_path / "broken.png", "cat_a", "issues", 4, 0.1, ""))
    assert "cannot be read" in session.show(3).problem and session.show(3).photo is None

    session.multilabel = True  # as for a multi-label run: digits add or take off classes
    assert session.choose_class(2, "cat_c").decision == "cat_a;cat_c"  # added to its given one
    assert session.choose_class(2, "cat_a").decision == "cat_c"
    assert session.choose_class(2, "cat_b").decision == "cat_b;cat_c"  # in the model's order
    assert session.choose_class(2, "cat_b").decision == "cat_c"
    assert session.choose_class(2, "cat_c") is None and session.decision(2) is None


def test_scenes_review_computes_the_missing_ranking_and_serves_in_its_own_folder(
    trained_run, fresh_run, offline_weights, monkeypatch, capsys
):
    import os

    from scenes.review import command

    seen = []

    def serve(page, host, port, share, block=True):
        seen.append((os.environ.get("GRADIO_TEMP_DIR"), host, port))
        return ""

    monkeypatch.setattr(command, "serve_review", serve)
    data = trained_run.parent / "data"
    args = ["review", "--run", str(fresh_run), "--data", str(data), "--port", "7999"]
    assert main(args) == 0  # one colour a class: data issues flags none
    ranking = fresh_run / "label_issues" / data.name / "label_issues.csv"
    with ranking.open(newline="") as fh:
        assert list(csv.DictReader(fh)) == []  # computed and written where data issues puts it
    assert "queue of" in capsys.readouterr().out and not seen  # nothing to serve

    photos = sorted((data / "cat_a").iterdir())[:2]
    rows = [[str(p), "cat_b", "cat_a", "0.01"] for p in photos]
    write_csv(ranking, ["path", "given", "suggested", "score"], rows)  # now read, not recomputed
    assert main([*args, "--queue", "issues", str(photos[1])]) == 0
    ((folder, host, port),) = seen
    assert folder.rsplit("/", 1)[-1].startswith("scenes-app-") and port == 7999
    assert not os.path.exists(folder)  # removed when the page stops
    assert "1 photo in the issues queue, 0 decided, 1 left" in capsys.readouterr().out


# -- the page in a browser ------------------------------------------------------------------
@pytest.fixture(scope="module")
def review_run(trained_run, tmp_path_factory):
    """A copy of the tiny run with a label-issues ranking of four photos (one per row)."""
    root = tmp_path_factory.mktemp("review")
    run = shutil.copytree(trained_run, root / "run")
    colours = {"red": (220, 40, 40), "green": (40, 200, 40), "blue": (40, 40, 220)}
    photos = [make_image(root / "data" / f"{n}.png", c, size=(48, 48)) for n, c in colours.items()]
    photos.append(make_image(root / "data" / "red2.png", (210, 50, 30), size=(48, 48)))
    given = ["cat_c", "cat_b", "cat_a", "cat_a"]
    issues = run / "label_issues" / "data"
    issues.mkdir(parents=True)
    rows = [[str(p), g, "cat_a", f"0.{i}"] for i, (p, g) in enumerate(zip(photos, given), 1)]
    write_csv(issues / "label_issues.csv", ["path", "given", "suggested", "score"], rows)
    return run, photos


@pytest.fixture(scope="module")
def review_server(review_run):
    from scenes.review.command import review_folder, serve_review
    from scenes.review.page import build_review_page
    from scenes.review.session import ReviewSession
    from scenes.serve.app_files import own_upload_folder

    run, _ = review_run
    session = ReviewSession(
        Predictor.load(run), load_queue(run, "issues"), DecisionStore(review_folder(run))
    )
    with own_upload_folder():
        page = build_review_page(session)
        url = serve_review(page, "127.0.0.1", free_port(), share=False, block=False)
        yield url
        page.close()


def wait_for_text(driver, element_id, text, timeout=60.0):
    from selenium.webdriver.common.by import By

    deadline, shown = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        found = driver.find_elements(By.ID, element_id)
        shown = found[0].text if found else ""
        if text in shown:
            return shown
        time.sleep(0.2)
    raise AssertionError(f"{text!r} never appeared in #{element_id}; it shows {shown!r}")


def press(driver, key, counter):
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(key).perform()
    return wait_for_text(driver, "review-counter", counter)


def test_browser_relabels_excludes_undoes_from_the_keyboard_and_resumes(
    review_server,
    review_run,
    browser,  # noqa: F811 (the fixture imported above)
):
    import httpx
    from selenium.webdriver.common.keys import Keys

    run, photos = review_run
    browser.get(review_server)
    wait_for_text(browser, "review-counter", "done 0")
    wait_for_text(browser, "review-item", "red.png")
    # The model's top 3 as scenes predict gives them, and the heatmap, for the shown photo.
    expected = Predictor.load(run).predict(photos[0])
    wait_for_text(browser, "review-top", expected[0][0])
    assert browser.execute_script(
        "const img = document.querySelector('#review-heatmap img');"
        "return img && img.complete && img.naturalWidth;"
    )
    press(browser, "2", "done 1")  # red.png: cat_c -> cat_b
    wait_for_text(browser, "review-item", "green.png")
    press(browser, "x", "changed 2")  # green.png excluded
    wait_for_text(browser, "review-item", "blue.png")
    press(browser, Keys.SPACE, "done 3")  # blue.png kept
    assert "changed 2" in press(browser, "u", "done 2")  # the keep undone
    wait_for_text(browser, "review-item", "blue.png")
    press(browser, Keys.ARROW_LEFT, "done 2")
    wait_for_text(browser, "review-item", "decision: exclude")

    browser.refresh()  # reopening resumes at the first photo not decided
    wait_for_text(browser, "review-counter", "done 2")
    wait_for_text(browser, "review-item", "blue.png")
    wait_for_text(browser, "review-item", "given label: cat_a")

    rows = read_decisions(run / "review")
    assert [(r["path"], r["given"], r["decision"], r["rank"]) for r in rows] == [
        (str(photos[0]), "cat_c", "cat_b", "1"),
        (str(photos[1]), "cat_b", "exclude", "2"),
    ]
    assert all(r["queue"] == "issues" for r in rows)
    assert [r["sha256"] for r in rows] == [file_digest(p) for p in photos[:2]]
    # Only pixels the page made are served: never a file of the data folder.
    answer = httpx.get(f"{review_server}gradio_api/file={photos[0]}", timeout=30)
    assert answer.status_code >= 400
