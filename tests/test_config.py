"""Every config composes, and what it composes builds."""
import pytest

from asr.config import compose_config, config_dir, feature_config, model_dims


def group_options(group):
    return sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))


CASES = [[]]
for group in ("data", "features", "model", "optim", "experiment"):
    CASES += [[f"{group}={option}"] for option in group_options(group)]


@pytest.mark.parametrize("overrides", CASES, ids=lambda o: o[0] if o else "defaults")
def test_every_config_composes_and_builds_its_parts(overrides):
    cfg = compose_config(overrides)
    dims = model_dims(cfg, n_tokens=29)
    assert dims.n_input == feature_config(cfg).n_features
    assert dims.subsampling in (2, 4)
    assert cfg.optim.lr > 0 and cfg.train.epochs > 0
    assert cfg.out_dir


def test_every_group_has_options():
    for group in ("data", "features", "model", "optim", "experiment", "decode"):
        assert group_options(group)
    assert {"compact", "ds2"} <= set(group_options("model"))
    assert {"an4_cpu", "an4_gpu"} <= set(group_options("experiment"))
    assert set(group_options("decode")) == {"greedy", "beam", "lm"}


def test_ds2_selects_the_linear_spectrogram():
    assert compose_config(["model=ds2"]).features.kind == "spectrogram"


@pytest.mark.parametrize("name", group_options("decode"))
def test_every_decode_config_gives_beam_options(name):
    from asr.decoding import decode_config

    options = decode_config(name)
    assert options.beam_size > 0 and options.lm is None


def test_the_readme_names_every_group_and_option_there_is():
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("## Configuration", 1)[1].split("\n**", 1)[0]
    groups = sorted(p.name for p in config_dir().iterdir() if p.is_dir() and p.name != "__pycache__")
    missing = [f"{group}/" for group in groups if f"{group}/`" not in section]
    missing += [f"{group}/{option}" for group in groups if group != "decode" for option in group_options(group)
                if f"`{option}`" not in section]
    assert not missing, f"README's Configuration section does not name {missing}"


def test_the_readme_layout_names_every_module():
    from pathlib import Path

    root = Path(__file__).parents[1]
    section = (root / "README.md").read_text().split("## Layout", 1)[1]
    modules = sorted(p.stem for p in (root / "asr").rglob("*.py") if not p.stem.startswith("__"))
    missing = [m for m in modules if f"`{m}`" not in section]
    assert not missing, f"README's Layout section does not name {missing}"
