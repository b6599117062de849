"""Tests for feature_rnn.py: padding never changes a prediction, each video is read up to its own
last step, bad lengths are refused, float16 input, and a toy problem the course notebook's
padded-last-step head cannot learn."""
import itertools
import warnings

import pytest
import torch
import torch.nn.functional as F

from actionrec.models import feature_rnn
from actionrec.models.feature_rnn import FeatureRNN

FEATURES, HIDDEN, CLASSES = 6, 8, 4
LENGTHS, WINDOW = [1, 7, 3, 12], 15
COMBOS = list(itertools.product(["gru", "lstm"], [False, True], ["last", "mean"]))


def make_model(cell, bidirectional, head, **kwargs):
    torch.manual_seed(0)
    model = FeatureRNN(input_size=FEATURES, num_classes=CLASSES, cell=cell, layers=2, hidden=HIDDEN,
                       bidirectional=bidirectional, dropout=0.3, head=head, **kwargs)
    return model.eval()


def padded_batch(videos, window, generator):
    """videos: list of (T_i, FEATURES) -> (N, window, FEATURES) with large random garbage after T_i."""
    x = 100 * torch.randn(len(videos), window, FEATURES, generator=generator)
    for i, video in enumerate(videos):
        x[i, :len(video)] = video
    return x, torch.tensor([len(v) for v in videos])


def reference_logits(model, video):
    """What the head should read, from the plain (unpacked) RNN run on one unpadded video (T, F)."""
    with torch.no_grad():
        out, _ = model.rnn(video.unsqueeze(0))  # (1, T, hidden * directions)
        out = out[0]
        if model.head == "mean":
            feature = out.mean(0)
        elif model.bidirectional:
            # forward direction after the last frame, backward direction after reading back to frame 0
            feature = torch.cat([out[-1, :HIDDEN], out[0, HIDDEN:]])
        else:
            feature = out[-1]
        return model.fc(feature)


@pytest.mark.parametrize("cell,bidirectional,head", COMBOS)
def test_padding_never_changes_a_prediction(cell, bidirectional, head):
    model = make_model(cell, bidirectional, head)
    g = torch.Generator().manual_seed(1)
    videos = [torch.randn(n, FEATURES, generator=g) for n in LENGTHS]
    x, lengths = padded_batch(videos, WINDOW, g)
    with torch.no_grad():
        logits, step_logits, mask = model(x, lengths, return_steps=True)
        assert torch.equal(model(x, lengths), logits)
        # Other garbage in the padding, and the batch in another order: same answers.
        x2, _ = padded_batch(videos, WINDOW, g)
        order = torch.tensor([2, 0, 3, 1])
        assert torch.allclose(model(x2[order], lengths[order]), logits[order], atol=1e-5)

    assert logits.shape == (len(LENGTHS), CLASSES)
    assert step_logits.shape == (len(LENGTHS), WINDOW, CLASSES)
    assert mask.dtype == torch.bool and mask.shape == (len(LENGTHS), WINDOW)
    assert mask.sum(1).tolist() == LENGTHS
    for i, video in enumerate(videos):
        n = len(video)
        assert mask[i, :n].all() and not mask[i, n:].any()
        with torch.no_grad():
            alone, alone_steps, _ = model(video.unsqueeze(0), torch.tensor([n]), return_steps=True)
        assert torch.allclose(logits[i], alone[0], atol=1e-5)
        assert torch.allclose(step_logits[i, :n], alone_steps[0], atol=1e-5)
        assert torch.allclose(logits[i], reference_logits(model, video), atol=1e-5)
        # Padded steps carry a zero output, so their step logits are the classifier's bias.
        assert torch.allclose(step_logits[i, n:], model.fc.bias.expand(WINDOW - n, -1), atol=1e-6)


@pytest.mark.parametrize("cell,bidirectional,head", COMBOS)
def test_padding_gets_no_gradient(cell, bidirectional, head):
    model = make_model(cell, bidirectional, head)
    g = torch.Generator().manual_seed(2)
    x, lengths = padded_batch([torch.randn(n, FEATURES, generator=g) for n in LENGTHS], WINDOW, g)
    x.requires_grad_(True)
    logits, step_logits, mask = model(x, lengths, return_steps=True)
    (logits.square().sum() + step_logits[mask].square().sum()).backward()
    valid = torch.arange(WINDOW) < lengths.unsqueeze(1)
    assert x.grad[~valid].abs().max() == 0
    assert (x.grad[valid].abs().sum(1) > 0).all()


@pytest.mark.parametrize("cell,bidirectional", [("gru", False), ("lstm", True)])
def test_one_frame_video(cell, bidirectional):
    for head in ("last", "mean"):
        model = make_model(cell, bidirectional, head)
        video = torch.randn(1, FEATURES)
        with torch.no_grad():
            alone = model(video.unsqueeze(0), torch.tensor([1]))
            padded, steps, mask = model(torch.cat([video, torch.randn(WINDOW - 1, FEATURES)]).unsqueeze(0),
                                        torch.tensor([1]), return_steps=True)
        assert alone.shape == (1, CLASSES)
        assert torch.allclose(alone, padded, atol=1e-5)
        assert torch.allclose(alone[0], reference_logits(model, video), atol=1e-5)
        assert mask.tolist() == [[True] + [False] * (WINDOW - 1)]


def test_step_logits_keep_the_window_when_no_video_fills_it():
    model = make_model("gru", False, "last")
    with torch.no_grad():
        logits, steps, mask = model(torch.randn(2, WINDOW, FEATURES), torch.tensor([3, 5]), return_steps=True)
    assert steps.shape == (2, WINDOW, CLASSES) and mask.shape == (2, WINDOW)
    # Unidirectional "last": the logits are the step logits at each video's own last step.
    assert torch.allclose(logits, steps[[0, 1], [2, 4]], atol=1e-6)


@pytest.mark.parametrize("lengths", [[3, 0], [16, 3], [-1, 2]])
def test_lengths_out_of_range_are_refused(lengths):
    model = make_model("gru", False, "last")
    with pytest.raises(ValueError, match=r"1\.\.15") as info:
        model(torch.randn(2, WINDOW, FEATURES), torch.tensor(lengths))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("x_shape,lengths,match", [
    ((2, WINDOW, FEATURES), torch.tensor([3]), "shape"),
    ((2, WINDOW, FEATURES), torch.tensor([3.0, 2.0]), "integers"),
    ((2, WINDOW, FEATURES + 1), torch.tensor([3, 2]), "shape"),
    ((WINDOW, FEATURES), torch.tensor([3]), "shape"),
    ((0, WINDOW, FEATURES), torch.zeros(0, dtype=torch.long), "no videos"),
])
def test_malformed_inputs_are_refused(x_shape, lengths, match):
    model = make_model("lstm", True, "mean")
    with pytest.raises(ValueError, match=match) as info:
        model(torch.randn(x_shape), lengths)
    assert "\n" not in str(info.value)


def test_lengths_may_be_a_list_or_int32():
    model = make_model("gru", True, "last")
    x = torch.randn(2, WINDOW, FEATURES)
    with torch.no_grad():
        expected = model(x, torch.tensor([4, 9]))
        assert torch.equal(model(x, [4, 9]), expected)
        assert torch.equal(model(x, torch.tensor([4, 9], dtype=torch.int32)), expected)


@pytest.mark.parametrize("kwargs", [
    {"cell": "rnn"}, {"head": "max"}, {"layers": 0}, {"hidden": 2.5}, {"dropout": 1.0},
    {"dropout": -0.1}, {"bidirectional": "yes"}, {"num_classes": 0},
])
def test_bad_constructor_values_are_refused(kwargs):
    with pytest.raises(ValueError) as info:
        FeatureRNN(input_size=FEATURES, **kwargs)
    assert "\n" not in str(info.value)


def test_dropout_with_one_layer_does_not_warn_and_is_still_applied_to_the_output():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = FeatureRNN(input_size=FEATURES, num_classes=CLASSES, layers=1, hidden=HIDDEN, dropout=0.5)
    assert model.dropout.p == 0.5
    x, lengths = torch.randn(3, WINDOW, FEATURES), torch.tensor([2, 15, 8])
    model.train()
    assert not torch.equal(model(x, lengths), model(x, lengths))
    model.eval()
    assert torch.equal(model(x, lengths), model(x, lengths))


def test_classifier_prefix():
    model = FeatureRNN(input_size=FEATURES, num_classes=CLASSES, hidden=HIDDEN, bidirectional=True)
    head_params = [n for n, _ in model.named_parameters() if n.startswith(feature_rnn.HEAD + ".")]
    assert head_params == ["fc.weight", "fc.bias"]
    assert model.fc.weight.shape == (CLASSES, 2 * HIDDEN)


def test_float16_input_and_autocast():
    model = make_model("lstm", True, "mean")
    x = torch.randn(3, WINDOW, FEATURES).half()
    lengths = torch.tensor([15, 1, 6])
    with torch.no_grad():
        out16 = model(x, lengths)
        out32 = model(x.float(), lengths)
        assert out16.dtype == torch.float32
        assert torch.equal(out16, out32)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits, steps, mask = model(x, lengths, return_steps=True)
    assert logits.shape == (3, CLASSES) and steps.shape == (3, WINDOW, CLASSES)
    assert torch.isfinite(logits.float()).all()
    assert torch.allclose(logits.float(), out32, atol=0.1)


def first_frames_problem(n=64, window=40, generator=None):
    """The class shows only in the first 2 frames of short videos (3-8 frames) padded to a long
    window: reading the window's last step (the notebook's head) sees only padding."""
    prototypes = 3 * torch.randn(CLASSES, FEATURES, generator=generator)
    labels = torch.arange(n) % CLASSES
    lengths = torch.randint(3, 9, (n,), generator=generator)
    x = torch.randn(n, window, FEATURES, generator=generator)  # noise frames and garbage padding
    x[:, :2] += prototypes[labels].unsqueeze(1)
    return x, lengths, labels


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_learns_a_class_seen_only_in_the_first_frames(cell):
    g = torch.Generator().manual_seed(3)
    x, lengths, labels = first_frames_problem(generator=g)
    torch.manual_seed(0)
    model = FeatureRNN(input_size=FEATURES, num_classes=CLASSES, cell=cell, layers=2, hidden=32)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(40):
        loss = F.cross_entropy(model(x, lengths), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(x, lengths).argmax(1) == labels).float().mean().item()
    assert accuracy >= 0.95
