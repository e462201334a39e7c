import csv

import pytest

from scenes.config import load_config
from scenes.data.check import check_folder, format_report
from scenes.data.exclude import read_path_list
from scenes.data.loaders import prepare_data, training_files
from scenes.errors import DataError
from scenes.training import train

from conftest import make_folder, tiny_train_config


@pytest.fixture
def data(tmp_path):
    return make_folder(tmp_path / "data", ["cat_a", "cat_b", "cat_c"], 12)


def config(data, **extra):
    return load_config(
        overrides={"data.dir": str(data), "data.image_size": 32, "data.val_fraction": 0.25, **extra}
    )


def sides(prepared):
    return {**{p: "train" for p in prepared.train_paths}, **{p: "val" for p in prepared.val_paths}}


def write_csv(path, rows):
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "given", "suggested", "score"])
        writer.writerows([str(p), "x", "y", "0.1"] for p in rows)
    return path


def test_excluded_images_leave_both_sides_and_the_others_stay_put(data, tmp_path):
    cfg = config(data)
    before = sides(prepare_data(cfg, *training_files(cfg), progress=False))
    # Some from validation, some from training, and one path that is not in the data.
    val = sorted(p for p, side in before.items() if side == "val")[:2]
    trn = sorted(p for p, side in before.items() if side == "train")[:3]
    listed = write_csv(tmp_path / "label_issues.csv", [*val, *trn, tmp_path / "gone.jpg"])
    cfg = config(data, **{"data.exclude": str(listed)})
    with pytest.warns(UserWarning, match=r"1 of the 6 paths listed .*gone\.jpg"):
        prepared = prepare_data(cfg, *training_files(cfg), progress=False)
    after = sides(prepared)
    assert set(after) == set(before) - {*val, *trn}
    assert all(before[p] == side for p, side in after.items())  # nobody changed sides
    assert sorted(p for p, _ in prepared.excluded) == sorted([*val, *trn])
    assert len(prepared.train) + len(prepared.val) == 36 - 5


def test_plain_list_relative_to_the_training_folder(data, tmp_path):
    listed = tmp_path / "bad.txt"
    listed.write_text("# suspected label errors\ncat_a/000.jpg\n\n" + f"{data / 'cat_b/001.jpg'}\n")
    assert read_path_list(listed) == ["cat_a/000.jpg", str(data / "cat_b/001.jpg")]
    cfg = config(data, **{"data.exclude": str(listed)})
    prepared = prepare_data(cfg, *training_files(cfg), progress=False)
    assert {p.name for p, _ in prepared.excluded} == {"000.jpg", "001.jpg"}
    assert {label for _, label in prepared.excluded} == {"cat_a", "cat_b"}


def test_symlinked_copies_match_their_targets(data, tmp_path):
    """A listed symlink (e.g. a real_subset-style copy) excludes the file it points to."""
    link = tmp_path / "elsewhere.jpg"
    link.symlink_to(data / "cat_c" / "005.jpg")
    cfg = config(data, **{"data.exclude": str(write_csv(tmp_path / "x.csv", [link]))})
    prepared = prepare_data(cfg, *training_files(cfg), progress=False)
    assert [p for p, _ in prepared.excluded] == [data / "cat_c" / "005.jpg"]


def test_bad_exclusion_lists_are_refused_with_the_field_name(data, tmp_path):
    cfg = config(data, **{"data.exclude": str(tmp_path / "missing.csv")})
    with pytest.raises(DataError, match="data.exclude: file not found: .*missing.csv"):
        prepare_data(cfg, *training_files(cfg), progress=False)
    everything = write_csv(tmp_path / "all_a.csv", sorted((data / "cat_a").iterdir()))
    cfg = config(data, **{"data.exclude": str(everything)})
    with pytest.raises(DataError, match="removes every training image of: cat_a"):
        prepare_data(cfg, *training_files(cfg), progress=False)


def test_training_records_excluded_images_in_split_csv(data, tmp_path):
    listed = write_csv(
        tmp_path / "label_issues.csv", [data / "cat_a/003.jpg", data / "cat_b/007.jpg"]
    )
    cfg = tiny_train_config(
        data, tmp_path / "run", **{"train.epochs": 1, "data.exclude": str(listed)}
    )
    result = train(cfg)
    with (result.run_dir / "split.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    excluded = [(r["path"], r["label"]) for r in rows if r["split"] == "excluded"]
    assert sorted(excluded) == [
        (str(data / "cat_a/003.jpg"), "cat_a"),
        (str(data / "cat_b/007.jpg"), "cat_b"),
    ]
    assert len(rows) == 36 and sum(r["split"] in ("train", "val") for r in rows) == 34
    assert load_config(result.run_dir / "config.yaml").data.exclude == str(listed)


def test_data_check_points_to_data_issues(data):
    text = format_report(check_folder(data, progress=False))
    assert f"scenes data issues {data}" in text


def test_a_resumed_run_keeps_its_excluded_images_out(tmp_path):
    """reuse_split (resume) takes the excluded rows of split.csv as they are, even for an
    image that is gone or relabelled since: it was left out on purpose."""
    import numpy as np

    from scenes.data.split_sides import reuse_split
    from scenes.rundir import SplitRow

    paths = [tmp_path / f"{i}.jpg" for i in range(4)]
    labels = np.array([0, 0, 1, 1])
    saved = [
        SplitRow(paths[0], "a", "train"),
        SplitRow(paths[1], "a", "excluded"),
        SplitRow(paths[2], "b", "val"),
        SplitRow(paths[3], "a", "excluded"),  # relabelled since: still just excluded
        SplitRow(tmp_path / "gone.jpg", "b", "excluded"),
    ]
    train, val, excluded = reuse_split(saved, paths, labels, ["a", "b"])
    assert train.tolist() == [0] and val.tolist() == [2] and excluded.tolist() == [1, 3]
