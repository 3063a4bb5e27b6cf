"""Hydra composition of the training configuration (conf/, shipped as package `asr.conf`)."""
from __future__ import annotations

from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from asr.features import FeatureConfig, SpecAugmentConfig
from asr.model import ModelDims


def config_dir() -> Path:
    try:
        return Path(str(files("asr.conf")))
    except ModuleNotFoundError:  # run from a source tree that was not installed
        return Path(__file__).resolve().parent.parent / "conf"


def compose_config(overrides: Sequence[str] = (), name: str = "train") -> DictConfig:
    """The configuration `asr train` would run with these Hydra overrides."""
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose(config_name=name, overrides=list(overrides))


def feature_config(cfg: DictConfig) -> FeatureConfig:
    return FeatureConfig(**cfg.features)


def model_dims(cfg: DictConfig, n_tokens: int) -> ModelDims:
    """The model's dimensions: `cfg.model` values plus the feature size and the vocabulary size."""
    values = {k: v for k, v in OmegaConf.to_container(cfg.model, resolve=True).items() if k != "name"}
    return ModelDims(n_input=feature_config(cfg).n_features, n_tokens=n_tokens, **values)


def specaugment_config(cfg: DictConfig) -> SpecAugmentConfig | None:
    if not cfg.specaugment.enabled:
        return None
    return SpecAugmentConfig(**{k: v for k, v in cfg.specaugment.items() if k != "enabled"})
