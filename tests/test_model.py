import pytest
import torch

from asr.model import CTCModel, ModelDims

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])  # the CUDA cases where there is a GPU
SMALL = dict(n_input=40, n_tokens=12, conv_channels=(4, 4), n_layers=2, hidden=16)


@pytest.mark.parametrize("overrides", [
    dict(rnn_type="gru"),
    dict(rnn_type="lstm", sum_directions=True, layer_norm="batch", output_norm="batch", conv_activation="hardtanh"),
    dict(rnn_type="lstm", bidirectional=False, projection=8, layer_norm="layer", dropout=0.3),
])
@pytest.mark.parametrize("device", DEVICES)
def test_an_utterance_gives_the_same_output_alone_and_padded_in_a_batch(overrides, device):
    torch.manual_seed(0)
    model = CTCModel(ModelDims(**{**SMALL, **overrides})).to(device).eval()
    lengths = torch.tensor([97, 40, 13])
    feats = torch.randn(3, 97, 40)
    for row, n in enumerate(lengths):
        feats[row, n:] = 0  # padded frames arrive as zeros from GlobalNorm
    feats = feats.to(device)
    batch_out, batch_n = model(feats, lengths.to(device), lengths)
    # cuDNN convolutions run in TF32 by default: a looser tolerance there (padding leaking in
    # would still show as errors of order 1).
    tolerance = {"rtol": 1e-4, "atol": 1e-5} if device == "cpu" else {"rtol": 2e-3, "atol": 2e-3}
    for row, n in enumerate(lengths.tolist()):
        alone, alone_n = model(feats[row : row + 1, :n], lengths[row : row + 1].to(device), lengths[row : row + 1])
        assert alone_n[0] == batch_n[row]
        torch.testing.assert_close(batch_out[row, : batch_n[row]], alone[0], **tolerance)


@pytest.mark.parametrize("strides, factor", [(((2, 2), (2, 2)), 4), (((2, 2), (2, 1)), 2)])
def test_subsampling_and_output_lengths(strides, factor):
    dims = ModelDims(**{**SMALL, "conv_strides": strides})
    model = CTCModel(dims).eval()
    assert dims.subsampling == factor
    n_frames = torch.tensor([100, 37])
    out, n_out = model(torch.randn(2, 100, 40), n_frames)
    assert out.shape == (2, n_out.max(), 12)
    assert n_out.tolist() == [-(-100 // factor), -(-37 // factor)]
    assert torch.allclose(out[0].exp().sum(-1), torch.ones(out.shape[1]), atol=1e-4)
    assert model.output_lengths(n_frames).tolist() == n_out.tolist()


def test_ds2_has_the_deepspeech_pytorch_size():
    from asr.config import compose_config, model_dims

    model = CTCModel(model_dims(compose_config(["model=ds2"]), n_tokens=29))
    assert model.dims.n_input == 161
    assert model.front_end.n_output == 32 * 41
    assert abs(model.n_parameters() - 86.6e6) / 86.6e6 < 0.01


def test_dims_round_trip_and_validation():
    dims = ModelDims(**SMALL)
    assert ModelDims.from_dict(dims.to_dict()) == dims
    with pytest.raises(ValueError, match="rnn_type"):
        ModelDims(**{**SMALL, "rnn_type": "transformer"})


@pytest.mark.slow
def test_ds2_trains_on_a_tiny_batch():
    from asr.config import compose_config, feature_config, model_dims
    from asr.evaluate import ctc_loss
    from asr.features import FeatureExtractor

    torch.manual_seed(0)
    cfg = compose_config(["model=ds2"])
    features = feature_config(cfg)
    model = CTCModel(model_dims(cfg, n_tokens=29)).train()
    waves = torch.randn(2, 8000) * 0.1
    feats, n_frames = FeatureExtractor(features)(waves, torch.tensor([8000, 6000]))
    feats = (feats - feats.mean()) / feats.std()
    targets, n_targets = torch.tensor([1, 2, 3, 4, 5, 1, 2]), torch.tensor([4, 3])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
    losses = []
    for _ in range(3):
        log_probs, n_out = model(feats, n_frames)
        loss = ctc_loss(log_probs, n_out, targets, n_targets) / 2
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]


def test_pack_and_unpack_match_pytorchs_own():
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    from asr.model import pack, unpack

    torch.manual_seed(0)
    lengths = torch.tensor([3, 7, 1, 7, 5])
    x = torch.randn(5, 9, 4)  # two frames of padding beyond the longest
    packed, rows = pack(x, lengths)
    reference = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    assert torch.equal(packed.batch_sizes, reference.batch_sizes)
    assert torch.equal(packed.data, reference.data)
    assert torch.equal(packed.unsorted_indices, reference.unsorted_indices)
    padded, _ = pad_packed_sequence(reference, batch_first=True, total_length=9)
    assert torch.equal(unpack(packed, rows, 5, 9), padded)


@pytest.mark.parametrize("overrides", [
    dict(rnn_type="gru"),
    dict(rnn_type="lstm", sum_directions=True, layer_norm="batch", output_norm="batch", conv_activation="hardtanh"),
])
def test_padding_never_reaches_a_statistic_in_training_mode(overrides):
    """Batch norm in train mode normalises with batch statistics: 200 more padded frames must
    change neither a valid output nor the running estimates (they did, by up to 0.23, when the
    front end's batch norm saw padded frames)."""
    torch.manual_seed(0)
    dims = ModelDims(**{**SMALL, **overrides})
    lengths = torch.tensor([97, 40, 13])
    feats = torch.randn(3, 97, 40)
    for row, n in enumerate(lengths):
        feats[row, n:] = 0
    longer = torch.cat([feats, torch.zeros(3, 200, 40)], dim=1)
    outputs, buffers = [], []
    for x in (feats, longer):
        torch.manual_seed(1)
        model = CTCModel(dims).train()
        out, n_out = model(x, lengths, lengths)
        outputs.append([out[row, : n_out[row]] for row in range(3)])
        buffers.append({k: v for k, v in model.state_dict().items() if "running" in k})
    for a, b in zip(*outputs):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert buffers[0].keys() and buffers[0].keys() == buffers[1].keys()
    for key in buffers[0]:
        torch.testing.assert_close(buffers[0][key], buffers[1][key], rtol=1e-4, atol=1e-6, msg=key)


def test_masked_batch_norm_matches_batch_norm_on_the_valid_frames():
    """Reference: torch's own BatchNorm2d on the valid frames alone (one utterance, no padding)."""
    from asr.model import MaskedBatchNorm2d

    torch.manual_seed(0)
    x = torch.randn(1, 3, 5, 20)
    ours, reference = MaskedBatchNorm2d(3).train(), torch.nn.BatchNorm2d(3).train()
    padded = torch.cat([x, torch.randn(1, 3, 5, 7) * 50], dim=-1)
    mask = torch.arange(27)[None, :] < 20
    torch.testing.assert_close(ours(padded, mask)[..., :20], reference(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours.running_mean, reference.running_mean)
    torch.testing.assert_close(ours.running_var, reference.running_var)


@pytest.mark.parametrize("device", DEVICES)
def test_training_under_bf16_autocast_keeps_float32_statistics(device):
    """GPU training's default, `train.precision=bf16`, runs the model under bf16 autocast: the
    front end's batch norm then got bf16 statistics and failed to blend them into its float32
    running estimates ("expected dtype float"). CPU autocast takes the same path. Reference: the
    same model and batch in float32; the features sit far from zero (mean 30, as log-mel energies
    may), where a variance from bf16 sums of squares would lose every digit."""
    torch.manual_seed(0)
    feats = 30 + torch.randn(2, 60, 40, device=device)
    lengths = torch.tensor([60, 35])
    models = []
    for precision in (torch.float32, torch.bfloat16):
        torch.manual_seed(1)
        model = CTCModel(ModelDims(**SMALL)).to(device).train()
        with torch.autocast(device, dtype=torch.bfloat16, enabled=precision == torch.bfloat16):
            out, _ = model(feats, lengths, lengths)
        out.float().sum().backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        models.append(model)
    for key, reference in models[0].state_dict().items():
        if "running" in key:
            ours = models[1].state_dict()[key]
            assert ours.dtype == torch.float32, key
            torch.testing.assert_close(ours, reference, rtol=0.03, atol=2e-3, msg=key)


def test_masked_batch_norm_of_bf16_input_is_float32_batch_norm():
    """Reference: torch's BatchNorm2d in float32 on the same (bf16-valued) input."""
    from asr.model import MaskedBatchNorm2d

    torch.manual_seed(0)
    x = (100 + torch.randn(2, 3, 5, 20)).to(torch.bfloat16)
    ours, reference = MaskedBatchNorm2d(3).train(), torch.nn.BatchNorm2d(3).train()
    out = ours(x, torch.ones(2, 20, dtype=torch.bool))
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), reference(x.float()), rtol=0.02, atol=0.02)
    torch.testing.assert_close(ours.running_var, reference.running_var)
