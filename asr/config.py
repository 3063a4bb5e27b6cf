"""Hydra composition of the training configuration (conf/, shipped as package `asr.conf`)."""
from __future__ import annotations

import re
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from asr.augment import AugmentConfig
from asr.errors import ConfigError
from asr.features import FeatureConfig, SpecAugmentConfig, check_warp_features
from asr.model import ModelDims
from asr.tokenizer import KINDS, SUBWORD_KINDS

GROUPS = ("data", "features", "model", "optim", "tokenizer", "augment", "experiment")


def config_dir() -> Path:
    try:
        return Path(str(files("asr.conf")))
    except ModuleNotFoundError:  # run from a source tree that was not installed
        return Path(__file__).resolve().parent.parent / "conf"


def compose_config(overrides: Sequence[str] = (), name: str = "train") -> DictConfig:
    """The configuration `asr train` would run with these Hydra overrides, checked before any work:
    a typo, an unknown group option or a value of the wrong type is a `ConfigError` naming it."""
    cfg = _compose(overrides, name)
    # The same groups without the value overrides: the types every value should have.
    reference = _compose([o for o in overrides if "." not in o.split("=")[0].lstrip("+~")], name)
    _check_types(cfg, reference, "")
    check_config(cfg)
    return cfg


def _compose(overrides: Sequence[str], name: str) -> DictConfig:
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            return compose(config_name=name, overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else error.__class__.__name__
        cause = error.__cause__
        if cause is not None and str(cause).strip():  # e.g. "Key 'epoch' is not in struct"
            first += f" {str(cause).strip().splitlines()[0]}"
        missing = re.search(r"Could not find '(\w+)/", first)
        if missing and (config_dir() / missing.group(1)).is_dir():
            options = sorted(p.stem for p in (config_dir() / missing.group(1)).glob("*.yaml"))
            first += f"; {missing.group(1)} options: {', '.join(options)}"
        raise ConfigError(f"configuration: {first} (groups: {', '.join(GROUPS)}; "
                          "`asr train --print-config` shows every setting)") from None


def _check_types(cfg, reference, prefix: str) -> None:
    for key in cfg:
        path, value, expected = f"{prefix}{key}", cfg[key], reference.get(key) if key in reference else None
        if isinstance(expected, DictConfig) and isinstance(value, DictConfig):
            _check_types(value, expected, path + ".")
            continue
        if expected is None or isinstance(expected, str):
            continue
        kind = ("a list" if isinstance(expected, ListConfig) else "true or false" if isinstance(expected, bool)
                else "an integer" if isinstance(expected, int) else "a number" if isinstance(expected, float) else None)
        ok = (isinstance(value, ListConfig) if isinstance(expected, ListConfig)
              else isinstance(value, bool) if isinstance(expected, bool)
              else isinstance(value, int) and not isinstance(value, bool) if isinstance(expected, int)
              else isinstance(value, (int, float)) and not isinstance(value, bool) if isinstance(expected, float)
              else True)
        if not ok and value is not None:
            raise ConfigError(f"{path}={value!r}: expected {kind}")


def check_config(cfg: DictConfig) -> None:
    """Values that would fail later, after the model is built or hours into a run, fail now."""
    t = cfg.train
    for path, value in [("train.epochs", t.epochs), ("train.max_batch", t.max_batch),
                        ("train.max_batch_seconds", t.max_batch_seconds), ("train.check_every", t.check_every),
                        ("train.max_nonfinite_batches", t.max_nonfinite_batches), ("optim.lr", cfg.optim.lr)]:
        if value is None or value <= 0:
            raise ConfigError(f"{path}={value}: must be above 0")
    if t.distill_from and (t.distill_weight <= 0 or t.distill_shift < 0):
        raise ConfigError(f"train.distill_weight={t.distill_weight}, train.distill_shift={t.distill_shift}: the "
                          "weight must be above 0 and the shift 0 or more")
    if t.distill_clean and not t.distill_from:
        raise ConfigError("train.distill_clean=true: there is no teacher to hear the clean audio (train.distill_from)")
    if t.num_workers < 0 or t.threads < 0:
        raise ConfigError("train.num_workers and train.threads must be 0 or more")
    if t.precision not in ("bf16", "fp16", "fp32"):
        raise ConfigError(f"train.precision={t.precision!r}: expected bf16, fp16 or fp32")
    if cfg.tokenizer.kind not in KINDS:
        raise ConfigError(f"tokenizer.kind={cfg.tokenizer.kind!r}: expected one of {', '.join(KINDS)}")
    if cfg.tokenizer.kind in SUBWORD_KINDS and cfg.tokenizer.vocab_size < 2:
        raise ConfigError(f"tokenizer.vocab_size={cfg.tokenizer.vocab_size}: a subword tokenizer needs 2 or more")
    if not t.speeds or any(s <= 0 for s in t.speeds):
        raise ConfigError(f"train.speeds={list(t.speeds)}: expected a list of positive speeds, e.g. [0.9,1.0,1.1]")
    try:
        augment_config(cfg)
        model_dims(cfg, n_tokens=2)
        if specaugment_config(cfg) is not None and cfg.specaugment.warp:
            check_warp_features(cfg.features.kind)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"configuration: {error}") from None


def feature_config(cfg: DictConfig) -> FeatureConfig:
    return FeatureConfig(**cfg.features)


def model_dims(cfg: DictConfig, n_tokens: int) -> ModelDims:
    """The model's dimensions: `cfg.model` values plus the feature size and the vocabulary size."""
    values = {k: v for k, v in OmegaConf.to_container(cfg.model, resolve=True).items() if k != "name"}
    return ModelDims(n_input=feature_config(cfg).n_features, n_tokens=n_tokens, **values)


def augment_config(cfg: DictConfig) -> AugmentConfig | None:
    """The waveform augmentation of `cfg.augment`, or None when it does nothing."""
    values = OmegaConf.to_container(cfg.augment, resolve=True) if "augment" in cfg else {}
    config = AugmentConfig(**values)
    return config if config.active else None


def specaugment_config(cfg: DictConfig) -> SpecAugmentConfig | None:
    if not cfg.specaugment.enabled:
        return None
    return SpecAugmentConfig(**{k: v for k, v in cfg.specaugment.items() if k != "enabled"})
