"""deepspeech.pytorch (SeanNaren) Lightning checkpoints -> our self-describing checkpoint.

Their DeepSpeech2 is our `model=ds2`: two masked convolutions with batch norm and hardtanh, a stack
of bidirectional LSTMs (or GRUs) whose directions are summed, batch norm before every recurrent
layer but the first, and batch norm then a bias-free linear layer at the output. Their
unidirectional model (`UniDirectionalConfig`) has forward-only layers and, before the output, a
lookahead convolution over `lookahead_context` frames and hardtanh: our `lookahead`, one less. Their features are
a log1p magnitude spectrogram (librosa's centred STFT, Hamming window of `window_size` seconds)
normalised per utterance by its own mean and standard deviation; ours say so in `FeatureConfig`
(`window=hamming`, `center=true`, `normalize=utterance`).

The checkpoint is read with `torch.load(weights_only=True)`: their configuration objects are
rebuilt from an allow-list of stand-ins (plain dictionaries, strings), never by importing or
running their code. The conversion goes by key names and shapes.
"""
from __future__ import annotations

import collections
import enum
import re
from pathlib import Path

import torch

from asr.errors import AsrError
from asr.features import FeatureConfig
from asr.model import ModelDims
from asr.recognizer import FORMAT_VERSION, CheckpointError, save_atomic
from asr.tokenizer import BLANK


class DS2ImportError(AsrError):
    """A checkpoint that is not a deepspeech.pytorch model we can convert; names file and reason."""


class _Config(dict):
    """Stands in for their config dataclasses (and Lightning's AttributeDict): the fields are
    restored as dictionary items."""

    def __setstate__(self, state):
        self.update(state if isinstance(state, dict) else {})


def _enum_value(value):
    """Stands in for their enums (`RNNType.lstm`, `SpectrogramWindow.hamming`): the value."""
    return value


def _named(name: str) -> type:
    """Stands in for a class pickled by reference (the `nn.LSTM` inside `RNNType.lstm`); its
    name still says which it was."""
    return type(name.rsplit(".", 1)[1], (), {})


def allow_list() -> list:
    """What `weights_only` must accept to read their checkpoints: omegaconf's containers (in
    which Hydra handed them their configuration), and stand-ins for their own classes."""
    import typing

    from omegaconf import DictConfig, ListConfig, nodes
    from omegaconf.base import ContainerMetadata, Metadata

    plain = [DictConfig, ListConfig, ContainerMetadata, Metadata, typing.Any, dict, list, enum.Enum,
             collections.defaultdict, str, int, float, bool,
             *(getattr(nodes, n) for n in ("AnyNode", "StringNode", "IntegerNode", "FloatNode", "BooleanNode",
                                           "EnumNode", "ValueNode") if hasattr(nodes, n))]
    stand_ins = [(_Config, f"deepspeech_pytorch.configs.train_config.{n}")
                 for n in ("SpectConfig", "BiDirectionalConfig", "UniDirectionalConfig", "AdamConfig", "SGDConfig",
                           "OptimConfig", "DataConfig", "AugmentationConfig")]
    stand_ins += [(_enum_value, f"deepspeech_pytorch.enums.{n}") for n in ("RNNType", "SpectrogramWindow", "DecoderType")]
    stand_ins += [(_Config, n) for n in ("pytorch_lightning.utilities.parsing.AttributeDict",
                                         "lightning.fabric.utilities.data.AttributeDict",
                                         "lightning_fabric.utilities.data.AttributeDict")]
    stand_ins += [(_named(f"torch.nn.modules.rnn.{n}"), f"torch.nn.modules.rnn.{n}") for n in ("LSTM", "GRU", "RNN")]
    return plain + stand_ins


def read_lightning_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        with torch.serialization.safe_globals(allow_list()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises many types for a foreign or damaged file
        reason = str(error).strip().splitlines()[0] if str(error).strip() else error.__class__.__name__
        raise DS2ImportError(f"{path}: not a readable deepspeech.pytorch checkpoint ({reason})") from None


def _plain(value):
    """omegaconf containers, stand-ins and enums -> plain Python values."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(value, (DictConfig, ListConfig)):
        return _plain(OmegaConf.to_container(value, resolve=True, enum_to_str=False))
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    return value


def _rnn_kind(value, gates: int) -> str:
    text = str(value).lower()
    for kind in ("lstm", "gru"):
        if kind in text:
            return kind
    return {4: "lstm", 3: "gru"}.get(gates, "rnn")


def convert(checkpoint: dict, source: str = "<checkpoint>") -> dict:
    """Their checkpoint dictionary -> ours (see `Recognizer.checkpoint`)."""
    if "state_dict" not in checkpoint or "hyper_parameters" not in checkpoint:
        raise DS2ImportError(f"{source}: no state_dict and hyper_parameters: not a deepspeech.pytorch Lightning checkpoint")
    state = {k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items()}
    hp = _plain(dict(checkpoint["hyper_parameters"]))
    labels, spect, model_cfg = list(hp.get("labels") or []), hp.get("spect_cfg") or {}, hp.get("model_cfg") or {}
    if not labels or "_" not in labels:
        raise DS2ImportError(f"{source}: hyper_parameters.labels holds no '_' (the CTC blank) label")
    layers = sorted({int(m.group(1)) for k in state if (m := re.match(r"rnns\.(\d+)\.rnn\.weight_ih_l0$", k))})
    if not layers or "conv.seq_module.0.weight" not in state or "fc.0.module.1.weight" not in state:
        raise DS2ImportError(f"{source}: the weights are not DeepSpeech2's (conv.seq_module, rnns, fc keys missing)")
    bidirectional = "rnns.0.rnn.weight_ih_l0_reverse" in state
    lookahead = state.get("lookahead.0.conv.weight")  # (hidden, 1, context): unidirectional models only
    if not bidirectional and (lookahead is None or lookahead.shape[-1] < 2):
        raise DS2ImportError(f"{source}: a unidirectional model without a lookahead.0.conv.weight of 2 frames or more")
    hidden = state["rnns.0.rnn.weight_hh_l0"].shape[1]
    rnn_type = _rnn_kind(model_cfg.get("rnn_type"), state["rnns.0.rnn.weight_ih_l0"].shape[0] // hidden)
    if rnn_type not in ("lstm", "gru"):
        raise DS2ImportError(f"{source}: rnn_type {model_cfg.get('rnn_type')}: only LSTM and GRU models convert")
    window = str(spect.get("window", "hamming")).lower().rsplit(".", 1)[-1]
    features = FeatureConfig(kind="spectrogram", sample_rate=int(spect.get("sample_rate", 16000)),
                             win_ms=float(spect.get("window_size", 0.02)) * 1000,
                             hop_ms=float(spect.get("window_stride", 0.01)) * 1000,
                             window=window, center=True, normalize="utterance")
    convs = [state[f"conv.seq_module.{i}.weight"] for i in (0, 3)]
    dims = ModelDims(
        n_input=features.n_features, n_tokens=len(labels), conv_channels=[c.shape[0] for c in convs],
        conv_kernels=[list(c.shape[2:]) for c in convs], conv_strides=[[2, 2], [2, 1]],  # fixed in their model
        conv_activation="hardtanh", conv_norm=True, rnn_type=rnn_type, n_layers=len(layers), hidden=hidden,
        bidirectional=bidirectional, sum_directions=bidirectional, projection=0, layer_norm="batch", dropout=0.0,
        output_norm="batch", output_bias=False, lookahead=0 if bidirectional else lookahead.shape[-1] - 1)
    if int(model_cfg.get("hidden_size", hidden)) != hidden or int(model_cfg.get("hidden_layers", len(layers))) != len(layers):
        raise DS2ImportError(f"{source}: model_cfg says {model_cfg.get('hidden_layers')} x {model_cfg.get('hidden_size')}, "
                           f"the weights {len(layers)} x {hidden}")

    renamed = {}
    for ours, theirs in (("front_end.blocks.0.0", "conv.seq_module.0"), ("front_end.blocks.0.1", "conv.seq_module.1"),
                         ("front_end.blocks.1.0", "conv.seq_module.3"), ("front_end.blocks.1.1", "conv.seq_module.4"),
                         ("output_norm", "fc.0.module.0"), ("output", "fc.0.module.1")):
        renamed.update({ours + k[len(theirs):]: v for k, v in state.items() if k.startswith(theirs + ".")})
    for i in layers:
        renamed.update({f"layers.{i}.rnn" + k[len(f"rnns.{i}.rnn"):]: v for k, v in state.items()
                        if k.startswith(f"rnns.{i}.rnn.")})
        renamed.update({f"layers.{i}.norm" + k[len(f"rnns.{i}.batch_norm.module"):]: v for k, v in state.items()
                        if k.startswith(f"rnns.{i}.batch_norm.module.")})
    if lookahead is not None:
        renamed["lookahead.conv.weight"] = lookahead
    # their blank '_' can sit anywhere in the labels; ours is id 0
    blank = labels.index("_")
    order = [blank] + [i for i in range(len(labels)) if i != blank]
    renamed["output.weight"] = renamed["output.weight"][order]
    vocab = [BLANK] + [labels[i] for i in order[1:]]
    return {
        "format_version": FORMAT_VERSION, "dims": dims.to_dict(), "features": features.to_dict(), "vocab": vocab,
        "tokenizer": {"kind": "char"}, "norm_mean": torch.zeros(features.n_features),
        "norm_std": torch.ones(features.n_features), "model": renamed,
        "imported_from": {"format": "deepspeech.pytorch", "file": str(source), "labels": labels,
                          "epoch": checkpoint.get("epoch")},
    }


def import_checkpoint(src: str | Path, out: str | Path) -> Path:
    """Convert and save; the result loads with `load_recognizer` and checks its weights fit."""
    from asr.recognizer import Recognizer

    converted = convert(read_lightning_checkpoint(src), str(src))
    try:
        Recognizer.from_checkpoint(converted)
    except RuntimeError as error:
        raise DS2ImportError(f"{src}: the weights do not fit DeepSpeech2 ({str(error).splitlines()[0]})") from None
    return save_atomic(converted, out)
