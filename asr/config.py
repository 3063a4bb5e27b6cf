"""Hydra composition of the training configuration (conf/, shipped as package `asr.conf`)."""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Sequence

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig


def config_dir() -> Path:
    return Path(str(files("asr.conf")))


def compose_config(overrides: Sequence[str] = (), name: str = "train") -> DictConfig:
    """The configuration `asr train` would run with these Hydra overrides."""
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose(config_name=name, overrides=list(overrides))
