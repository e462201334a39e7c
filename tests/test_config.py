import importlib
from pathlib import Path

import pytest

from scenes.cli import main
from scenes.config import Config, load_config
from scenes.errors import ConfigError
from scenes.overrides import parse_override

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_default_yaml_spells_out_the_real_defaults():
    assert load_config(CONFIGS / "default.yaml") == Config()


# configs/tune_space.yaml is a search space (test_tune checks it), not a recipe
RECIPES = sorted(p for p in CONFIGS.glob("*.yaml") if not p.stem.endswith("_space"))


def test_the_recipe_catalogue_is_found():
    assert {"default.yaml", "convnext_tiny_gpu.yaml"} <= {p.name for p in RECIPES}


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_every_recipe_is_valid(path):
    load_config(path)


def test_recipe_plus_overrides_resolve_in_documented_order():
    cfg = load_config(
        CONFIGS / "resnet50.yaml",
        overrides={"train.lr": 0.01, "data.batch_size": 8},
        sets=["train.lr=3e-4", "augment.preset=none", "data.num_workers=2"],
    )
    assert cfg.model.name == "resnet50" and cfg.data.image_size == 224  # from the file
    assert cfg.data.batch_size == 8  # flag override
    assert cfg.train.lr == pytest.approx(3e-4)  # --set wins over flags
    assert cfg.augment.preset == "none" and cfg.data.num_workers == 2
    assert cfg.train.epochs == 15  # untouched file value


@pytest.mark.parametrize(
    "item, field, hint",
    [
        ("train.lrr=1", "train.lrr", "allowed: epochs, lr"),
        ("bogus=1", "bogus", "allowed: seed, out, data"),
        ("train.epochs=abc", "train.epochs", "valid integer"),
        ("data.batch_size=2.5", "data.batch_size", "integer"),
        ("data.val_fraction=1.5", "data.val_fraction", "less than 1"),
        ("train.lr=-1", "train.lr", "greater than 0"),
        ("data.image_size=8", "data.image_size", "greater than or equal to 32"),
        ("train.scheduler=cosin", "train.scheduler", "'cosine', 'step', 'plateau' or 'none'"),
        ("augment.preset=heavy", "augment.preset", "'none', 'classic' or 'trivialaugment'"),
        ("data.num_workers=-1", "num_workers", "'auto' or an integer >= 0"),
        ("model.pretrained=maybe", "model.pretrained", "boolean"),
    ],
)
def test_bad_values_name_the_field_and_what_is_allowed(item, field, hint):
    with pytest.raises(ConfigError) as err:
        load_config(sets=[item])
    assert field in str(err.value)
    assert hint in str(err.value)


def test_setting_a_value_below_a_value_is_an_error():
    with pytest.raises(ConfigError, match="train.lr.*is a value"):
        load_config(sets=["train.lr=1", "train.lr.x=2"])


def test_malformed_set_and_missing_file_are_clear():
    with pytest.raises(ConfigError, match="key=value"):
        parse_override(Config, "train.lr")
    with pytest.raises(ConfigError, match="config file not found"):
        load_config("nope.yaml")


def test_yaml_that_is_not_a_mapping_is_rejected(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(bad)


def test_numbers_in_set_are_parsed():
    assert parse_override(Config, "train.lr=1e-3") == (["train", "lr"], 0.001)
    assert parse_override(Config, "data.num_workers=auto") == (["data", "num_workers"], "auto")
    assert parse_override(Config, "train.grad_clip=null") == (["train", "grad_clip"], None)


def test_set_values_are_read_as_their_fields_type():
    cfg = load_config(sets=["train.devices=0,2", "out=2024", "data.dir=0042", "data.num_workers=4"])
    assert cfg.train.devices == [0, 2]  # as --devices 0,2 reads it
    assert cfg.out == "2024" and cfg.data.dir == "0042"  # text fields keep the text
    assert cfg.data.num_workers == 4
    assert load_config(sets=["train.devices=3"]).train.devices == 3
    assert load_config(sets=["train.devices=auto"]).train.devices == "auto"
    assert load_config(sets=["model.weights_file=null"]).model.weights_file is None


def test_cli_rejects_bad_config_before_any_work(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "train",
            "--data",
            str(tmp_path / "missing"),
            "--out",
            str(out),
            "--set",
            "train.optimizer=adam",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "train.optimizer" in err and "'adamw' or 'sgd'" in err
    assert not out.exists()


def test_resolved_config_is_written_and_reloads(tmp_path):
    cfg = load_config(sets=["train.epochs=3", "model.name=resnet18"])
    saved = tmp_path / "config.yaml"
    saved.write_text(cfg.to_yaml())
    assert load_config(saved) == cfg


def test_cli_help_does_not_import_the_heavy_stack():
    import subprocess
    import sys

    code = "import sys, scenes.cli; scenes.cli.build_parser(); print(sorted(m for m in ('torch', 'lightning', 'matplotlib', 'gradio') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_public_name_resolves():
    import scenes

    assert sorted(scenes.__all__) == sorted(scenes._EXPORTS)
    for name in scenes.__all__:
        home = importlib.import_module(scenes._EXPORTS[name], "scenes")
        assert getattr(scenes, name) is getattr(home, name)  # the object its module defines
    with pytest.raises(AttributeError):
        scenes.not_a_thing  # noqa: B018
