"""``scenes data select``: the strategies' order, the selection file, the command end to end."""

import csv

import numpy as np
import pytest

from scenes.cli import main
from scenes.errors import DataError
from scenes.selection.ranking import (
    CANDIDATES_PER_PICK,
    entropies,
    k_center_greedy,
    margins,
    select,
)
from scenes.selection_file import COLUMNS, SelectionRow, read_selection, write_selection
from scenes.serve.predictor import Predictor

from conftest import make_folder, make_image

# Rows chosen so margin and entropy disagree: row 1 is a tie between two classes (margin 0)
# but certain about the third; row 3 spreads over all three (margin 0.01, highest entropy).
PROBS = np.array(
    [
        [0.90, 0.05, 0.05],  # 0: confident
        [0.45, 0.45, 0.10],  # 1: margin 0.00
        [0.60, 0.30, 0.10],  # 2: margin 0.30
        [0.34, 0.33, 0.33],  # 3: margin 0.01, entropy ~ln 3
        [0.70, 0.25, 0.05],  # 4: margin 0.45
    ]
)


def test_margin_puts_the_smallest_top1_minus_top2_first():
    chosen, scores = select("margin", PROBS, 5)
    assert chosen.tolist() == [1, 3, 2, 4, 0]
    assert scores == pytest.approx([0.0, 0.01, 0.30, 0.45, 0.85])


def test_entropy_puts_the_most_spread_out_first_and_scores_entropy():
    chosen, scores = select("entropy", PROBS, 3)
    assert chosen.tolist() == [3, 1, 2]
    assert scores == pytest.approx(entropies(PROBS)[[3, 1, 2]])
    assert scores[0] == pytest.approx(np.log(3), abs=1e-3)


def test_random_is_a_seeded_permutation_scored_by_margin():
    probs = np.random.default_rng(0).dirichlet(np.ones(4), size=50)
    first, scores = select("random", probs, 20, seed=3)
    again, _ = select("random", probs, 20, seed=3)
    other, _ = select("random", probs, 20, seed=4)
    assert first.tolist() == again.tolist() != other.tolist()
    assert len(set(first.tolist())) == 20
    assert scores == pytest.approx(margins(probs)[first])


def test_n_larger_than_the_pool_gives_every_row_once():
    chosen, _ = select("margin", PROBS, 99)
    assert sorted(chosen.tolist()) == [0, 1, 2, 3, 4]


def burst_and_others(rng):
    """40 near-identical photos with the smallest margins, then 20 distinct ones a little
    more certain: features (60, 16), probabilities (60, 2)."""
    burst = np.ones(16) + rng.normal(0, 1e-3, (40, 16))
    others = rng.normal(0, 1, (20, 16))
    margin = np.concatenate([np.linspace(0.00, 0.04, 40), np.linspace(0.05, 0.09, 20)])
    probs = np.stack([(1 + margin) / 2, (1 - margin) / 2], axis=1)
    return np.concatenate([burst, others]), probs


def test_diverse_takes_one_of_a_burst_of_near_identical_photos():
    features, probs = burst_and_others(np.random.default_rng(0))
    n = 10  # candidates: the 50 smallest margins, the burst and 10 distinct photos
    assert CANDIDATES_PER_PICK * n > 40
    chosen, scores = select("diverse", probs, n, features)
    assert chosen[0] == 0  # the most uncertain starts the list
    assert sum(i < 40 for i in chosen) == 1  # the other 9 are distinct photos
    assert scores == pytest.approx(margins(probs)[chosen])
    by_margin, _ = select("margin", probs, n)
    assert all(i < 40 for i in by_margin)  # what margin alone does: the burst


def test_diverse_looks_only_at_the_most_uncertain():
    features, probs = burst_and_others(np.random.default_rng(1))
    n = 4  # candidates: the 20 smallest margins, all of them in the burst
    assert CANDIDATES_PER_PICK * n <= 40
    chosen, _ = select("diverse", probs, n, features)
    assert all(i < 40 for i in chosen)


def test_k_center_greedy_picks_the_farthest_each_time():
    points = np.array([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0], [-1.0, 0.0]])
    assert k_center_greedy(points, 3).tolist() == [0, 3, 2]


def test_selection_file_round_trip_and_exact_columns(tmp_path):
    rows = [
        SelectionRow(1, tmp_path / "a b.jpg", 0.0123, "margin", "=sea", 0.5, "forest", 0.4877),
        SelectionRow(2, tmp_path / "c.jpg", 1 / 3, "margin", "sea", 0.6, "street", 0.2666),
    ]
    out = write_selection(tmp_path / "sel.csv", rows)
    with out.open(newline="") as fh:
        assert tuple(next(csv.reader(fh))) == COLUMNS
    assert COLUMNS == (
        "rank", "path", "score", "strategy", "label_1", "prob_1", "label_2", "prob_2"
    )  # fmt: skip
    assert read_selection(out) == rows


def test_read_selection_names_the_file_and_the_bad_cell(tmp_path):
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("path,label\nx.jpg,sea\n")
    with pytest.raises(DataError, match="wrong.csv: columns path,label"):
        read_selection(wrong)
    bad = tmp_path / "bad.csv"
    bad.write_text(",".join(COLUMNS) + "\n1,x.jpg,high,margin,sea,0.5,forest,0.4\n")
    with pytest.raises(DataError, match="bad.csv, line 2, column score"):
        read_selection(bad)


@pytest.fixture(scope="module")
def pool(trained_run, tmp_path_factory):
    """New photos of the run's colours (9), one unreadable file, and the run's own training
    folder (already labelled: skipped)."""
    root = tmp_path_factory.mktemp("pool")
    make_folder(root / "new", ["a", "b", "c"], 3, seed=7)
    (root / "new" / "broken.jpg").write_text("not a photo")
    return [root / "new", trained_run.parent / "data"]


def select_cli(run, pool, out, *options):
    return main(["data", "select", "--run", str(run), *map(str, pool), "--out", str(out), *options])


@pytest.mark.parametrize("strategy", ["margin", "diverse"])
def test_cli_writes_the_list_with_predict_probabilities(
    trained_run, pool, tmp_path, capsys, strategy
):
    out = tmp_path / "next.csv"
    assert select_cli(trained_run, pool, out, "--n", "4", "--strategy", strategy) == 1
    said = "".join(capsys.readouterr())
    assert "broken.jpg: UnidentifiedImageError" in said  # named, not dropped: exit code 1
    assert "skipped 36 photos that the run's split.csv lists" in said
    rows = read_selection(out)
    assert [r.rank for r in rows] == [1, 2, 3, 4]
    assert all(r.path.parent.parent == pool[0].resolve() for r in rows)  # not the labelled
    predicted = Predictor.load(trained_run).predict_many([r.path for r in rows], top_k=2)
    for row, answer in zip(rows, predicted):
        (label_1, prob_1), (label_2, prob_2) = answer.top
        assert (row.label_1, row.label_2) == (label_1, label_2)
        assert row.prob_1 == pytest.approx(prob_1, abs=1e-6)
        assert row.score == pytest.approx(prob_1 - prob_2, abs=1e-6)
    if strategy == "margin":
        assert [r.score for r in rows] == sorted(r.score for r in rows)


def test_cli_n_beyond_the_pool_lists_all_with_a_note(trained_run, pool, tmp_path, capsys):
    out = tmp_path / "all.csv"
    assert select_cli(trained_run, [pool[0] / "a"], out, "--n", "50", "--strategy", "random") == 0
    assert len(read_selection(out)) == 3
    assert "all of them are listed" in "".join(capsys.readouterr())


@pytest.mark.parametrize(
    "options, named",
    [
        (["--n", "0"], "--n"),
        (["--n", "3", "--strategy", "best"], "--strategy"),
        (["--n", "3", "--seed", "1"], "--seed"),
        (["--n", "3", "--out", "list.txt"], "--out"),
    ],
)
def test_cli_bad_arguments_exit_2_naming_them(trained_run, tmp_path, capsys, options, named):
    image = make_image(tmp_path / "p.png", (200, 40, 40))
    argv = ["data", "select", "--run", str(trained_run), str(image)]
    if "--out" not in options:
        argv += ["--out", str(tmp_path / "x.csv")]
    try:
        code = main(argv + options)
    except SystemExit as exit:  # argparse's own refusals
        code = exit.code
    assert code == 2 and named in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


def test_cli_missing_pool_or_only_labelled_photos_exit_2(trained_run, tmp_path, capsys):
    out = tmp_path / "x.csv"
    assert select_cli(trained_run, [tmp_path / "nowhere"], out, "--n", "2") == 2
    assert "nowhere" in capsys.readouterr().err
    assert select_cli(trained_run, [trained_run.parent / "data"], out, "--n", "2") == 2
    assert "split.csv" in capsys.readouterr().err
