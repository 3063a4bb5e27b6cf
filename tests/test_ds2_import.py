"""deepspeech.pytorch checkpoints: a checkpoint built in their published format (their module and
class names, key names, shapes and hyper-parameters; random weights) converts into ours, and our
model's output equals a reference forward pass written here from plain torch layers, following
their published architecture (SeanNaren/deepspeech.pytorch, deepspeech_pytorch/model.py and
loader/data_loader.py): spectrogram -> per-utterance normalisation -> masked convolutions ->
LSTMs with summed directions (or forward LSTMs and the lookahead convolution of their
unidirectional model) -> sequence-wise batch norm -> output. Neither their code nor ours is used
for the expected values."""
import dataclasses
import enum
import sys
import types

import pytest
import torch
from torch import nn

LABELS = ["_", "'", *"ABCDEFGHIJKLMNOPQRSTUVWXYZ", " "]
HIDDEN, LAYERS, RATE, CONTEXT = 24, 2, 16000, 5


def their_modules():
    """Modules named as theirs, so that the pickle refers to their classes by their real names."""
    enums = types.ModuleType("deepspeech_pytorch.enums")
    enums.RNNType = enum.Enum("RNNType", {"lstm": nn.LSTM, "rnn": nn.RNN, "gru": nn.GRU}, module=enums.__name__)
    enums.SpectrogramWindow = enum.Enum("SpectrogramWindow", {"hamming": "hamming", "hann": "hann"},
                                        module=enums.__name__)
    config = types.ModuleType("deepspeech_pytorch.configs.train_config")

    def dataclass(name, fields):
        cls = dataclasses.make_dataclass(name, fields)
        cls.__module__ = config.__name__
        setattr(config, name, cls)
        return cls

    dataclass("SpectConfig", [("sample_rate", int, 16000), ("window_size", float, 0.02),
                              ("window_stride", float, 0.01),
                              ("window", enums.SpectrogramWindow, enums.SpectrogramWindow.hamming)])
    dataclass("BiDirectionalConfig", [("rnn_type", enums.RNNType, enums.RNNType.lstm), ("hidden_size", int, 1024),
                                      ("hidden_layers", int, 5)])
    dataclass("UniDirectionalConfig", [("rnn_type", enums.RNNType, enums.RNNType.lstm), ("hidden_size", int, 1024),
                                       ("hidden_layers", int, 5), ("lookahead_context", int, 20)])
    dataclass("AdamConfig", [("learning_rate", float, 1.5e-4), ("learning_anneal", float, 0.99),
                             ("weight_decay", float, 1e-5), ("eps", float, 1e-8)])
    package = types.ModuleType("deepspeech_pytorch")
    configs = types.ModuleType("deepspeech_pytorch.configs")
    return {"deepspeech_pytorch": package, "deepspeech_pytorch.configs": configs,
            "deepspeech_pytorch.configs.train_config": config, "deepspeech_pytorch.enums": enums}


def their_state_dict(generator, bidirectional=True):
    """Key names and shapes of their DeepSpeech (LSTM) for HIDDEN x LAYERS."""
    def rand(*shape, scale=0.1):
        return torch.randn(*shape, generator=generator) * scale

    def batch_norm(prefix, n):
        return {f"{prefix}.weight": 1 + rand(n), f"{prefix}.bias": rand(n), f"{prefix}.running_mean": rand(n),
                f"{prefix}.running_var": 1 + rand(n).abs(), f"{prefix}.num_batches_tracked": torch.tensor(7)}

    state = {"conv.seq_module.0.weight": rand(32, 1, 41, 11, scale=0.02), "conv.seq_module.0.bias": rand(32),
             **batch_norm("conv.seq_module.1", 32),
             "conv.seq_module.3.weight": rand(32, 32, 21, 11, scale=0.01), "conv.seq_module.3.bias": rand(32),
             **batch_norm("conv.seq_module.4", 32)}
    n_input = 32 * 41  # 161 bins -> 81 -> 41, times 32 channels
    for i in range(LAYERS):
        size = n_input if i == 0 else HIDDEN
        for suffix in ("", "_reverse") if bidirectional else ("",):
            state[f"rnns.{i}.rnn.weight_ih_l0{suffix}"] = rand(4 * HIDDEN, size)
            state[f"rnns.{i}.rnn.weight_hh_l0{suffix}"] = rand(4 * HIDDEN, HIDDEN)
            state[f"rnns.{i}.rnn.bias_ih_l0{suffix}"] = rand(4 * HIDDEN)
            state[f"rnns.{i}.rnn.bias_hh_l0{suffix}"] = rand(4 * HIDDEN)
        if i > 0:
            state.update(batch_norm(f"rnns.{i}.batch_norm.module", HIDDEN))
    if not bidirectional:
        state["lookahead.0.conv.weight"] = rand(HIDDEN, 1, CONTEXT, scale=0.5)
    state.update(batch_norm("fc.0.module.0", HIDDEN))
    state["fc.0.module.1.weight"] = rand(len(LABELS), HIDDEN, scale=0.5)
    return state


@pytest.fixture(params=["bidirectional", "unidirectional"])
def their_checkpoint(tmp_path, monkeypatch, request):
    from omegaconf import OmegaConf

    modules = their_modules()
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    config, enums = modules["deepspeech_pytorch.configs.train_config"], modules["deepspeech_pytorch.enums"]
    bidirectional = request.param == "bidirectional"
    state = their_state_dict(torch.Generator().manual_seed(0), bidirectional)
    model_cfg = (config.BiDirectionalConfig(enums.RNNType.lstm, HIDDEN, LAYERS) if bidirectional
                 else config.UniDirectionalConfig(enums.RNNType.lstm, HIDDEN, LAYERS, CONTEXT))
    checkpoint = {
        "epoch": 69, "global_step": 1000, "pytorch-lightning_version": "1.4.0",
        "state_dict": state,
        "hyper_parameters": {
            "labels": LABELS,
            "model_cfg": OmegaConf.structured(model_cfg),
            "precision": 32,
            "optim_cfg": OmegaConf.structured(config.AdamConfig()),
            "spect_cfg": OmegaConf.structured(config.SpectConfig()),
        },
    }
    path = tmp_path / "an4_pretrained.ckpt"
    torch.save(checkpoint, path)
    for name in modules:  # their code is gone before we read the file
        monkeypatch.delitem(sys.modules, name)
    return path, state


def reference_log_probs(audio: torch.Tensor, state: dict) -> torch.Tensor:
    """Their forward pass for one utterance, from plain torch layers; log of their eval softmax."""
    window = torch.hamming_window(320, periodic=True, dtype=torch.float64)
    stft = torch.stft(audio.double(), 320, 160, 320, window, center=True, pad_mode="reflect", return_complex=True)
    spect = torch.log1p(stft.abs()).float()  # (161, frames)
    spect = (spect - spect.mean()) / spect.std()
    x = spect[None, None]  # (batch, channel, freq, time)

    def bn(prefix, n, two_d):
        layer = (nn.BatchNorm2d if two_d else nn.BatchNorm1d)(n).eval()
        layer.load_state_dict({k[len(prefix) + 1:]: v for k, v in state.items() if k.startswith(prefix + ".")})
        return layer

    conv1, conv2 = nn.Conv2d(1, 32, (41, 11), (2, 2), (20, 5)), nn.Conv2d(32, 32, (21, 11), (2, 1), (10, 5))
    for conv, prefix in ((conv1, "conv.seq_module.0"), (conv2, "conv.seq_module.3")):
        conv.load_state_dict({"weight": state[prefix + ".weight"], "bias": state[prefix + ".bias"]})
    with torch.no_grad():
        x = nn.functional.hardtanh(bn("conv.seq_module.1", 32, True)(conv1(x)), 0, 20)
        x = nn.functional.hardtanh(bn("conv.seq_module.4", 32, True)(conv2(x)), 0, 20)
        x = x.reshape(1, -1, x.shape[-1]).permute(2, 0, 1)  # (time, batch, features)
        for i in range(LAYERS):
            if i > 0:
                x = bn(f"rnns.{i}.batch_norm.module", HIDDEN, False)(x[:, 0])[:, None]
            bidirectional = "rnns.0.rnn.weight_ih_l0_reverse" in state
            lstm = nn.LSTM(x.shape[-1], HIDDEN, bidirectional=bidirectional)
            lstm.load_state_dict({k[len(f"rnns.{i}.rnn."):]: v for k, v in state.items()
                                  if k.startswith(f"rnns.{i}.rnn.")})
            x, _ = lstm(x)
            if bidirectional:
                x = x.view(x.shape[0], 1, 2, -1).sum(2)
        if not bidirectional:  # frame t mixes t .. t + CONTEXT - 1 (zeros past the end), per channel
            future = nn.functional.pad(x[:, 0].T, (0, CONTEXT - 1))  # (features, time + CONTEXT - 1)
            weight = state["lookahead.0.conv.weight"][:, 0]  # (features, CONTEXT)
            mixed = torch.stack([(future[:, t:t + CONTEXT] * weight).sum(1) for t in range(x.shape[0])])
            x = nn.functional.hardtanh(mixed, 0, 20)[:, None]
        out = bn("fc.0.module.0", HIDDEN, False)(x[:, 0]) @ state["fc.0.module.1.weight"].T
        return torch.log(torch.softmax(out, -1))  # (time, labels)


def test_a_deepspeech_pytorch_checkpoint_gives_their_output(their_checkpoint, tmp_path):
    from asr.cli import main
    from asr.recognizer import load_recognizer

    path, state = their_checkpoint
    out = tmp_path / "model.pt"
    assert main(["import", "deepspeech-pytorch", str(path), "--out", str(out)]) == 0
    recognizer = load_recognizer(out)
    assert recognizer.tokenizer.vocab[1:] == LABELS[1:] and recognizer.features.window == "hamming"
    g = torch.Generator().manual_seed(1)
    clips = [torch.randn(int(RATE * s), generator=g) * 0.1 for s in (1.0, 0.63)]  # a padded batch of two
    log_probs, n_frames = recognizer.infer(clips)
    for row, clip in enumerate(clips):
        expected = reference_log_probs(clip, state)
        assert int(n_frames[row]) == expected.shape[0]
        assert torch.allclose(log_probs[row, : n_frames[row]], expected, atol=2e-4), row


def test_import_names_what_it_cannot_convert(tmp_path, capsys):
    from asr.cli import main

    bad = tmp_path / "not_theirs.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "hyper_parameters": {"labels": LABELS}}, bad)
    assert main(["import", "deepspeech-pytorch", str(bad), "--out", str(tmp_path / "m.pt")]) != 0
    assert "not_theirs.ckpt: the weights are not DeepSpeech2's" in capsys.readouterr().err

    class Evil:  # a pickle that would run code is refused, not executed
        def __reduce__(self):
            return (print, ("ran",))

    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": Evil()}, evil)
    assert main(["import", "deepspeech-pytorch", str(evil), "--out", str(tmp_path / "m.pt")]) != 0
    captured = capsys.readouterr()
    assert "evil.ckpt: not a readable deepspeech.pytorch checkpoint" in captured.err and "ran" not in captured.out
