import warnings
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image

from scenes.config import load_config
from scenes.data import cache as cache_module
from scenes.data.cache import decode_images
from scenes.data.discover import find_layout, list_labelled_files
from scenes.data.images import load_image
from scenes.data.samplers import DecodedDataset, EpochShuffleSampler
from scenes.data.split import split_train_val
from scenes.errors import DataError

from conftest import make_folder, make_image


# -- layouts -------------------------------------------------------------------------------
def test_train_test_layout(tmp_path):
    make_folder(tmp_path / "train", ["b", "a"], 2)
    make_folder(tmp_path / "test", ["a", "b"], 1)
    layout = find_layout(tmp_path)
    assert layout.name == "train"
    assert layout.train_dir == tmp_path / "train" and layout.test_dir == tmp_path / "test"
    files = list_labelled_files(layout.train_dir)
    assert files.class_names == ["a", "b"]  # sorted, whatever the creation order
    assert Counter(files.labels) == {0: 2, 1: 2}


def test_kaggle_nested_layout(tmp_path):
    make_folder(tmp_path / "seg_train" / "seg_train", ["sea", "forest"], 2)
    make_folder(tmp_path / "seg_test" / "seg_test", ["sea", "forest"], 1)
    (tmp_path / "seg_pred" / "seg_pred").mkdir(parents=True)
    layout = find_layout(tmp_path)
    assert layout.name == "kaggle"
    assert layout.train_dir == tmp_path / "seg_train" / "seg_train"
    assert layout.test_dir == tmp_path / "seg_test" / "seg_test"


def test_bare_layout(synthetic_folder):
    layout = find_layout(synthetic_folder)
    assert layout.name == "bare" and layout.test_dir is None
    files = list_labelled_files(layout.train_dir)
    assert files.class_names == ["cat_a", "cat_b", "cat_c"] and len(files.paths) == 36


def test_empty_class_and_empty_dir_are_clear_errors(tmp_path):
    make_folder(tmp_path / "d", ["a"], 2)
    (tmp_path / "d" / "empty_class").mkdir()
    (tmp_path / "d" / "empty_class" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match="empty_class"):
        list_labelled_files(tmp_path / "d")
    (tmp_path / "nothing").mkdir()
    with pytest.raises(DataError, match="no class folders"):
        list_labelled_files(tmp_path / "nothing")
    with pytest.raises(DataError, match="not found"):
        find_layout(tmp_path / "missing")


def test_known_class_order_is_kept_and_unknown_classes_rejected(tmp_path):
    make_folder(tmp_path / "d", ["b", "c"], 1)
    files = list_labelled_files(tmp_path / "d", class_names=["a", "b", "c"])
    assert files.labels == [1, 2]
    with pytest.raises(DataError, match="does not know: c"):
        list_labelled_files(tmp_path / "d", class_names=["a", "b"])


# -- split ---------------------------------------------------------------------------------
def test_split_is_stratified_disjoint_and_reproducible():
    labels = np.repeat([0, 1, 2], [100, 50, 30])
    train, val = split_train_val(labels, 0.2, seed=7)
    assert set(train).isdisjoint(val) and len(train) + len(val) == len(labels)
    assert Counter(labels[val].tolist()) == {0: 20, 1: 10, 2: 6}
    again_train, again_val = split_train_val(labels, 0.2, seed=7)
    assert np.array_equal(val, again_val) and np.array_equal(train, again_train)
    _, other_val = split_train_val(labels, 0.2, seed=8)
    assert not np.array_equal(val, other_val)


def test_exact_duplicates_never_straddle_train_and_val():
    labels = np.repeat([0, 1], 50)
    groups = [f"img{i}" for i in range(100)]
    _, plain_val = split_train_val(labels, 0.2, seed=1)
    for i in plain_val[:5]:  # give five val images an identical twin that lands in train
        groups[i] = groups[(i + 1) % 100] if (i + 1) % 100 not in plain_val else groups[i]
    train, val = split_train_val(labels, 0.2, seed=1, groups=groups)
    assert set(train).isdisjoint(val) and len(train) + len(val) == 100
    assert not {groups[i] for i in val} & {groups[i] for i in train}
    assert len(val) < len(plain_val)


def test_planted_duplicate_files_stay_on_one_side(tmp_path):
    from scenes.data.loaders import prepare_data, training_files

    make_folder(tmp_path / "d", ["a", "b"], 20)
    for i in range(10):  # exact copies of the same photo, some labelled differently
        (tmp_path / "d" / ("a" if i % 2 else "b") / f"dup{i}.jpg").write_bytes(
            (tmp_path / "d" / "a" / "000.jpg").read_bytes()
        )
    cfg = load_config(
        overrides={"data.dir": str(tmp_path / "d"), "data.image_size": 32, "data.val_fraction": 0.3}
    )
    data = prepare_data(cfg, *training_files(cfg), progress=False)
    copies = {"000.jpg"} | {f"dup{i}.jpg" for i in range(10)}
    sides = {
        "train" if p in data.train_paths else "val"
        for p in data.train_paths + data.val_paths
        if p.name in copies
    }
    assert len(sides) == 1  # all copies on one side, whichever it is


def test_the_split_has_its_own_seed(tmp_path):
    """Changing `seed` (a seed comparison) keeps the validation images; split_seed moves them."""
    from scenes.data.loaders import prepare_data, training_files

    make_folder(tmp_path / "d", ["a", "b"], 20)

    def val_paths(**overrides):
        cfg = load_config(
            overrides={"data.dir": str(tmp_path / "d"), "data.image_size": 32, **overrides}
        )
        return prepare_data(cfg, *training_files(cfg), progress=False).val_paths

    assert val_paths(seed=1) == val_paths(seed=2)
    assert val_paths(**{"data.split_seed": 1}) != val_paths(**{"data.split_seed": 2})


def test_split_needs_two_images_per_class():
    with pytest.raises(DataError, match="fewer than 2"):
        split_train_val([0, 0, 1], 0.3, seed=0)


# -- decoding ------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["L", "RGBA", "CMYK", "P", "LA", "I;16"])
def test_any_mode_loads_as_rgb(tmp_path, mode):
    path = make_image(tmp_path / f"x_{mode.replace(';', '')}.png", (200, 30, 30), mode="RGB")
    image = Image.open(path).convert(mode if mode != "I;16" else "I")
    if mode == "I;16":
        image = Image.fromarray(np.asarray(Image.open(path).convert("L"), np.uint16) * 257)
    target = tmp_path / (
        path.stem + (".jpg" if mode == "CMYK" else ".tiff" if mode == "I;16" else ".png")
    )
    image.save(target)
    array = load_image(target, 24)
    assert array.shape == (24, 24, 3) and array.dtype == np.uint8
    assert array.mean() > 20  # 16-bit images are scaled, not clipped to white or black


def test_transparency_is_composited_on_white(tmp_path):
    rgba = Image.new("RGBA", (10, 10), (255, 0, 0, 0))
    rgba.save(tmp_path / "clear.png")
    assert (load_image(tmp_path / "clear.png", 10) == 255).all()


def test_exif_rotation_is_applied(tmp_path):
    image = Image.new("RGB", (40, 20), (0, 0, 0))
    image.paste((255, 255, 255), (0, 0, 20, 20))  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    image.save(tmp_path / "rot.jpg", exif=exif.tobytes(), quality=95)
    array = load_image(tmp_path / "rot.jpg", 40).astype(int)
    top, bottom = array[:20].mean(), array[20:].mean()
    assert top > 200 and bottom < 50  # the white half is now on top


def _plant_corrupt_files(folder):
    good = make_image(folder / "good.jpg", (10, 200, 10))
    truncated = folder / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[:300])
    (folder / "zero.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("this is not an image")
    return {"truncated.jpg", "zero.jpg", "text.jpg"}


def test_corrupt_files_are_skipped_with_one_warning_naming_them(tmp_path):
    bad = _plant_corrupt_files(tmp_path)
    paths = sorted(tmp_path.glob("*.jpg"))
    with pytest.warns(UserWarning) as record:
        decoded = decode_images(paths, 32, cache_dir=None, workers=1, progress=False)
    assert len(record) == 1
    message = str(record[0].message)
    assert "3 unreadable" in message and all(name in message for name in bad)
    assert [paths[i].name for i in decoded.kept] == ["good.jpg"]
    assert decoded.pixels.shape == (1, 32, 32, 3)


def test_cache_is_built_once_and_reused(tmp_path, monkeypatch):
    make_folder(tmp_path / "d", ["a", "b"], 3)
    paths = sorted((tmp_path / "d").rglob("*.jpg"))
    first = decode_images(paths, 16, tmp_path / "cache", workers=2, progress=False)

    def no_decoding(*args):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(cache_module, "_decode", no_decoding)
    second = decode_images(paths, 16, tmp_path / "cache", workers=1, progress=False)
    assert np.array_equal(np.asarray(first.pixels), np.asarray(second.pixels))
    assert np.array_equal(first.kept, second.kept)
    with pytest.raises(AssertionError):  # another size is another cache entry
        decode_images(paths, 20, tmp_path / "cache", workers=1, progress=False)


def test_a_new_decoder_invalidates_the_cache(tmp_path, monkeypatch):
    """Pixels depend on Pillow and on our decoding code: either changing is a cache miss."""
    make_folder(tmp_path / "d", ["a", "b"], 2)
    paths = sorted((tmp_path / "d").rglob("*.jpg"))
    decode_images(paths, 16, tmp_path / "cache", workers=1, progress=False)
    calls = []
    real_decode = cache_module._decode

    def counting(args):
        calls.append(args)
        return real_decode(args)

    monkeypatch.setattr(cache_module, "_decode", counting)
    decode_images(paths, 16, tmp_path / "cache", workers=1, progress=False)
    assert calls == []  # same decoder: cache hit
    monkeypatch.setattr(cache_module, "PREPROCESS_VERSION", cache_module.PREPROCESS_VERSION + 1)
    decode_images(paths, 16, tmp_path / "cache", workers=1, progress=False)
    assert len(calls) == len(paths)
    monkeypatch.setattr(cache_module.PIL, "__version__", "0.0.1")
    decode_images(paths, 16, tmp_path / "cache", workers=1, progress=False)
    assert len(calls) == 2 * len(paths)


def test_concurrent_builders_share_one_cache(tmp_path):
    """Two processes asking for the same cache at once (two DDP ranks): one decodes, both
    read the same complete array, and no temporary file is left behind."""
    import json
    import subprocess
    import sys

    make_folder(tmp_path / "d", ["a", "b"], 20, size=(64, 64))
    code = (
        "import json, sys, numpy as np\n"
        "from pathlib import Path\n"
        "from scenes.data import cache\n"
        "decoded = []\n"
        "real = cache._decode\n"
        "cache._decode = lambda a: decoded.append(1) or real(a)\n"
        f"paths = sorted(Path({str(tmp_path / 'd')!r}).rglob('*.jpg'))\n"
        f"out = cache.decode_images(paths, 48, Path({str(tmp_path / 'cache')!r}), workers=1, progress=False)\n"
        "print(json.dumps([len(decoded), int(np.asarray(out.pixels, np.int64).sum()), len(out.kept)]))\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    assert sorted(r[0] for r in results) == [0, 40]  # one decoded everything, one waited
    assert results[0][1:] == results[1][1:] and results[0][2] == 40
    leftovers = [p.name for p in (tmp_path / "cache").iterdir() if ".tmp" in p.name]
    assert leftovers == []


def test_a_build_killed_mid_way_leaves_no_entry_and_a_listed_leftover(tmp_path, capsys):
    """SIGKILL while decoding: no .npy/.json a later run would trust, only a hidden temporary
    file that `scenes data cache` lists as a leftover and clears; the next build is whole."""
    import signal
    import subprocess
    import sys
    import time

    from scenes.cli import main

    make_folder(tmp_path / "d", ["a", "b"], 6)
    cache, started = tmp_path / "cache", tmp_path / "started"
    code = (
        "import time\n"
        "from pathlib import Path\n"
        "from scenes.data import cache\n"
        "real = cache._decode\n"
        "def slow(args, seen=[]):\n"
        "    seen.append(1)\n"
        f"    if len(seen) == 5: Path({str(started)!r}).touch(); time.sleep(120)\n"
        "    return real(args)\n"
        "cache._decode = slow\n"
        f"paths = sorted(Path({str(tmp_path / 'd')!r}).rglob('*.jpg'))\n"
        f"cache.decode_images(paths, 16, Path({str(cache)!r}), workers=1, progress=False)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 60
        while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started.exists(), "the builder never reached its 5th image"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    names = sorted(p.name for p in cache.iterdir())
    assert not [n for n in names if n.endswith((".npy", ".json")) and not n.startswith(".")]
    assert [n for n in names if n.startswith(".") and ".tmp" in n], names
    assert main(["data", "cache", "--dir", str(cache)]) == 0
    assert "leftovers" in capsys.readouterr().out
    assert main(["data", "cache", "--dir", str(cache), "--clear"]) == 0
    assert not list(cache.iterdir())
    paths = sorted((tmp_path / "d").rglob("*.jpg"))
    decoded = decode_images(paths, 16, cache, workers=1, progress=False)
    fresh = decode_images(paths, 16, None, workers=1, progress=False)
    assert np.array_equal(np.asarray(decoded.pixels), fresh.pixels)


def test_an_unreadable_file_is_named_by_its_path_not_a_buffer(tmp_path):
    (tmp_path / "text.jpg").write_text("this is not an image")
    with pytest.warns(UserWarning) as record:
        decode_images([tmp_path / "text.jpg"], 16, cache_dir=None, workers=1, progress=False)
    message = str(record[0].message)
    assert str(tmp_path / "text.jpg") in message and "BytesIO" not in message


def test_real_small_images_are_resized(tmp_path):
    make_image(tmp_path / "small.jpg", (50, 50, 50), size=(150, 113))
    assert load_image(tmp_path / "small.jpg", 150).shape == (150, 150, 3)


# -- loading -------------------------------------------------------------------------------
def test_dataset_gives_decoded_images_as_they_are():
    pixels = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    ds = DecodedDataset(pixels, np.arange(4))
    image, label = ds[2]
    assert label == 2 and image.dtype == torch.uint8
    assert torch.equal(image, torch.from_numpy(pixels[2]).permute(2, 0, 1))


def test_sampler_order_is_seeded_per_epoch():
    sampler = EpochShuffleSampler(50, seed=1)
    first = list(sampler)
    assert sorted(first) == list(range(50))
    assert list(sampler) == first
    sampler.set_epoch(1)
    second = list(sampler)
    assert second != first and sorted(second) == list(range(50))


def test_training_never_reads_the_test_split(tmp_path, monkeypatch):
    from scenes.data.loaders import prepare_data, training_files

    make_folder(tmp_path / "train", ["a", "b"], 6)
    make_folder(tmp_path / "test", ["a", "b", "zzz_unknown"], 2)
    (tmp_path / "test" / "a" / "broken.jpg").write_text("not an image")
    from scenes.data import loaders

    seen = []
    real = loaders.decode_images

    def recording(paths, *args, **kwargs):
        seen.extend(str(p) for p in paths)
        return real(paths, *args, **kwargs)

    monkeypatch.setattr(loaders, "decode_images", recording)
    cfg = load_config(overrides={"data.dir": str(tmp_path), "data.image_size": 32})
    layout, files = training_files(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning about the broken test file would fail here
        data = prepare_data(cfg, layout, files, progress=False)
    assert seen and all("/train/" in p for p in seen)
    assert data.class_names == ["a", "b"]
    assert all("/test/" not in str(p) for p in data.train_paths + data.val_paths)


# -- download ------------------------------------------------------------------------------
def test_download_offline_gives_the_manual_steps(tmp_path, monkeypatch, capsys):
    import kagglehub

    from scenes.cli import main

    def offline(handle, *args, **kwargs):
        raise ConnectionError("Failed to resolve 'api.kaggle.com'")

    monkeypatch.setattr(kagglehub, "dataset_download", offline)
    dest = tmp_path / "intel"
    assert main(["data", "download", "--dest", str(dest)]) == 2
    err = capsys.readouterr().err
    assert "puneet6060/intel-image-classification" in err and "ConnectionError" in err
    assert f"{dest}/train/<class>/" in err and "--data" in err
    # scenes train on the missing default data folder tries the download, then stops the same way
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SCENES_DATA", raising=False)
    assert main(["train", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "kaggle.com/datasets" in err and "data/intel/train/<class>/" in err
    assert not (tmp_path / "run").exists()


def test_kaggle_archive_is_laid_out_as_train_test_pred(tmp_path, monkeypatch):
    import kagglehub

    from scenes.data.download import download_intel

    archive = tmp_path / "kaggle_cache"
    make_folder(archive / "seg_train" / "seg_train", ["sea", "street"], 2)
    make_folder(archive / "seg_test" / "seg_test", ["sea", "street"], 1)
    make_image(archive / "seg_pred" / "seg_pred" / "1.jpg", (1, 2, 3))
    monkeypatch.setattr(kagglehub, "dataset_download", lambda handle, **kw: str(archive))
    dest = download_intel(tmp_path / "intel")
    layout = find_layout(dest)
    assert layout.name == "train" and layout.test_dir == dest / "test"
    assert len(list_labelled_files(layout.train_dir).paths) == 4
    assert (dest / "pred" / "1.jpg").is_file()
