"""Tests for c3d.py: the released architecture's size and shapes, input checks, both releases."""
import math

import pytest
import torch
import torch.nn.functional as F

from actionrec.models import c3d
from actionrec.models.c3d import C3D, load_pretrained
from resnet_3d import resnet50

PARAMS_101 = 78_409_573
PARAMS_487 = 79_991_015
LAYERS = ["conv1", "conv2", "conv3a", "conv3b", "conv4a", "conv4b", "conv5a", "conv5b",
          "fc6", "fc7", "fc8"]
# The released c3d-pretrained.pth, written out independently of c3d.py: file layer -> the
# weight's shape. Its bias has shape (weight.shape[0],).
RELEASED_SHAPES = {
    "features.0": (64, 3, 3, 3, 3), "features.3": (128, 64, 3, 3, 3),
    "features.6": (256, 128, 3, 3, 3), "features.8": (256, 256, 3, 3, 3),
    "features.11": (512, 256, 3, 3, 3), "features.13": (512, 512, 3, 3, 3),
    "features.16": (512, 512, 3, 3, 3), "features.18": (512, 512, 3, 3, 3),
    "classifier.0": (4096, 8192), "classifier.3": (4096, 4096), "classifier.6": (487, 4096),
}
SEQUENTIAL = list(RELEASED_SHAPES)  # in forward order, like LAYERS
TO_NAMED = dict(zip(SEQUENTIAL, LAYERS))


def param_names(layers):
    return [f"{layer}.{p}" for layer in layers for p in ("weight", "bias")]


def count(model):
    return sum(p.numel() for p in model.parameters())


def blank(model):
    """Fill every parameter with NaN, so that anything a load leaves out shows."""
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    return model


def hand_forward(x, file_state, layers):
    """C3D in eval mode from torch.nn.functional, reading the tensors by the file's own keys."""
    def wb(layer):
        return file_state[layer + ".weight"], file_state[layer + ".bias"]

    convs, (fc6, fc7, fc8) = layers[:8], layers[8:]
    pools = {0: ((1, 2, 2), 0), 1: (2, 0), 3: (2, 0), 5: (2, 0), 7: (2, (0, 1, 1))}  # after conv i
    for i, layer in enumerate(convs):
        x = F.relu(F.conv3d(x, *wb(layer), stride=1, padding=1))
        if i in pools:
            kernel, padding = pools[i]
            x = F.max_pool3d(x, kernel, stride=kernel, padding=padding)
    x = x.reshape(x.size(0), -1)
    x = F.relu(F.linear(x, *wb(fc6)))
    x = F.relu(F.linear(x, *wb(fc7)))
    return F.linear(x, *wb(fc8))


def pool5_shape(model, x):
    shapes = []
    handle = model.pool5.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape)))
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        handle.remove()
    return shapes[0], out


@pytest.fixture(scope="module")
def released_state():
    """Random tensors in c3d-pretrained.pth's layout, scaled so activations stay near 1."""
    gen = torch.Generator().manual_seed(0)
    state = {}
    for layer, shape in RELEASED_SHAPES.items():
        fan_in = math.prod(shape[1:])
        state[layer + ".weight"] = torch.randn(shape, generator=gen) * math.sqrt(2 / fan_in)
        state[layer + ".bias"] = torch.randn(shape[0], generator=gen) * 0.1
    return state


@pytest.fixture(scope="module")
def clip():
    return torch.randn(1, 3, 16, 112, 112, generator=torch.Generator().manual_seed(1)) * 50


@pytest.fixture(scope="module")
def reference_logits(released_state, clip):
    with torch.no_grad():
        return hand_forward(clip, released_state, SEQUENTIAL)


@pytest.fixture(scope="module")
def model_487():
    torch.manual_seed(0)
    return C3D(num_classes=487).eval()


@pytest.fixture(scope="module")
def model_101():
    torch.manual_seed(0)
    return C3D(num_classes=101).eval()


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    return C3D(num_classes=101, width=0.125).eval()


def test_constants():
    assert (c3d.CLIP_LEN, c3d.IMAGE_SIZE, c3d.RESIZE_HW) == (16, 112, (128, 171))
    assert c3d.MEAN_BGR == (90.0, 98.0, 102.0)
    assert c3d.HEAD == "fc8" and c3d.LAST_CONV == "conv5b"


@pytest.mark.parametrize("num_classes,params", [(101, PARAMS_101), (487, PARAMS_487)])
def test_parameter_counts_and_names(num_classes, params):
    with torch.device("meta"):
        model = C3D(num_classes=num_classes)
    assert count(model) == params
    assert list(model.state_dict()) == param_names(LAYERS)
    assert model.fc8.weight.shape == (num_classes, 4096)
    assert getattr(model, c3d.LAST_CONV) is model.conv5b
    assert all(k.startswith(c3d.HEAD + ".") for k in model.state_dict() if "fc8" in k)


def test_released_layer_shapes():
    with torch.device("meta"):
        model = C3D()
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    for layer, shape in RELEASED_SHAPES.items():
        assert shapes[TO_NAMED[layer] + ".weight"] == shape
        assert shapes[TO_NAMED[layer] + ".bias"] == shape[:1]
    for layer in LAYERS[:8]:
        conv = getattr(model, layer)
        assert (conv.kernel_size, conv.stride, conv.padding) == ((3, 3, 3), (1, 1, 1), (1, 1, 1))
    assert (model.pool1.kernel_size, model.pool1.stride) == ((1, 2, 2), (1, 2, 2))
    for pool in (model.pool2, model.pool3, model.pool4, model.pool5):
        assert (pool.kernel_size, pool.stride) == (2, 2)
    assert model.pool5.padding == (0, 1, 1) and model.pool2.padding == 0


def test_width_scales_channels_and_hidden_size():
    with torch.device("meta"):
        model = C3D(num_classes=7, width=0.25)
        tiny = C3D(num_classes=7, width=1e-4)
    assert [getattr(model, layer).out_channels for layer in LAYERS[:8]] == \
        [16, 32, 64, 64, 128, 128, 128, 128]
    assert model.fc6.weight.shape == (1024, 128 * 16)
    assert model.fc7.weight.shape == (1024, 1024) and model.fc8.weight.shape == (7, 1024)
    assert tiny.conv1.out_channels == 1 and tiny.fc6.weight.shape == (1, 16)
    with pytest.raises(ValueError, match="width"):
        C3D(width=0)


def test_initialisation(small_model):
    for layer in LAYERS:
        assert torch.count_nonzero(getattr(small_model, layer).bias) == 0
    # Kaiming normal, fan_in: std = sqrt(2 / fan_in); fc8 N(0, 0.01).
    conv2 = small_model.conv2.weight
    assert conv2.std().item() == pytest.approx(math.sqrt(2 / (8 * 27)), rel=0.1)
    assert small_model.fc8.weight.std().item() == pytest.approx(0.01, rel=0.1)


def test_forward_shapes_at_released_size(model_487):
    x = torch.randn(2, 3, 16, 112, 112)
    shape, out = pool5_shape(model_487, x)
    assert shape == (2, 512, 1, 4, 4)
    assert out.shape == (2, 487) and torch.isfinite(out).all()


def test_adaptive_pool_is_identity_at_released_size(small_model):
    adaptive = C3D(num_classes=101, width=0.125, adaptive_pool=True).eval()
    adaptive.load_state_dict(small_model.state_dict())
    x = torch.randn(2, 3, 16, 112, 112)
    with torch.no_grad():
        assert torch.equal(adaptive(x), small_model(x))
        # ... and it lets other sizes through to fc6.
        assert adaptive(torch.randn(1, 3, 32, 96, 128)).shape == (1, 101)


@pytest.mark.parametrize("thw", [(16, 112, 112), (17, 127, 120), (31, 112, 112), (32, 112, 112),
                                 (16, 128, 128), (16, 96, 96), (8, 112, 112), (16, 16, 16),
                                 (16, 15, 112)])
def test_input_check_agrees_with_the_pools(small_model, thw):
    """The non-adaptive model refuses exactly the clips whose real pool5 output is not 1x4x4."""
    adaptive = C3D(num_classes=101, width=0.125, adaptive_pool=True).eval()
    adaptive.load_state_dict(small_model.state_dict())
    x = torch.randn(1, 3, *thw)
    try:
        real_pool5 = pool5_shape(adaptive, x)[0][2:]
    except ValueError as exc:  # the adaptive model refuses what its pools cannot take
        assert "at least 16 frames" in str(exc)
        real_pool5 = None
    if real_pool5 == (1, 4, 4):
        with torch.no_grad():
            assert small_model(x).shape == (1, 101)
    else:
        with pytest.raises(ValueError) as excinfo:
            small_model(x)
        message = str(excinfo.value)
        assert "\n" not in message
        assert "16 frames of 112x112" in message and "adaptive_pool=True" in message
        assert str(tuple(x.shape)) in message


def test_not_a_clip_is_refused(small_model):
    with pytest.raises(ValueError, match=r"\(N, 3, T, H, W\)"):
        small_model(torch.randn(1, 3, 112, 112))
    with pytest.raises(ValueError, match=r"\(N, 3, T, H, W\)"):
        small_model(torch.randn(1, 1, 16, 112, 112))


def test_small_width_trains():
    model = C3D(num_classes=5, width=0.125, adaptive_pool=True)
    x, y = torch.randn(2, 3, 16, 64, 64), torch.tensor([0, 3])
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def sequential_file(state, wrap):
    if wrap:
        return {"state_dict": {"module." + k: v for k, v in state.items()}}
    return dict(state)


def named_file(state, wrap):
    named = {f"{TO_NAMED[k.rpartition('.')[0]]}.{k.rpartition('.')[2]}": v
             for k, v in state.items()}
    if wrap:
        return {"state_dict": {"module." + k: v for k, v in named.items()}}
    return named


@pytest.mark.parametrize("layout,wrap,legacy", [
    ("sequential", False, False), ("sequential", True, False), ("sequential", False, True),
    ("named", False, False), ("named", True, False),
])
def test_released_file_loads_every_tensor_in_its_layer(model_487, released_state, clip,
                                                       reference_logits, tmp_path, layout, wrap,
                                                       legacy):
    build = sequential_file if layout == "sequential" else named_file
    file_state = build(released_state, wrap)
    path = tmp_path / "c3d.pth"
    torch.save(file_state, path, _use_new_zipfile_serialization=not legacy)
    del file_state
    info = load_pretrained(blank(model_487), path)
    assert info == {"format": layout, "loaded": param_names(LAYERS), "dropped": [],
                    "dropped_fc8": False}
    for layer, named in TO_NAMED.items():
        for p in ("weight", "bias"):
            assert torch.equal(model_487.state_dict()[f"{named}.{p}"],
                               released_state[f"{layer}.{p}"])
    with torch.no_grad():
        logits = model_487(clip)
    assert torch.allclose(logits, reference_logits, rtol=1e-4, atol=1e-4)
    assert logits.std() > 1e-2  # not a degenerate comparison


def test_named_layout_forward_matches(released_state, clip, reference_logits):
    """The named layout, through the hand-wired forward by its own keys, is the same network."""
    named = named_file(released_state, wrap=False)
    with torch.no_grad():
        assert torch.equal(hand_forward(clip, named, LAYERS), reference_logits)


def test_fc8_dropped_for_101_classes(model_101, released_state):
    fc8_before = {k: v.clone() for k, v in model_101.fc8.state_dict().items()}
    info = load_pretrained(model_101, released_state)  # an already loaded state_dict
    assert info["format"] == "sequential" and info["dropped_fc8"] is True
    assert info["dropped"] == ["classifier.6.weight", "classifier.6.bias"]
    assert info["loaded"] == param_names(LAYERS[:10])
    assert torch.equal(model_101.fc8.weight, fc8_before["weight"])
    assert torch.equal(model_101.fc8.bias, fc8_before["bias"])
    assert torch.equal(model_101.conv5b.weight, released_state["features.18.weight"])
    assert torch.equal(model_101.fc7.bias, released_state["classifier.3.bias"])


def small_sequential_state(model):
    """A width-0.125 model's weights in the released sequential layout."""
    to_sequential = {v: k for k, v in TO_NAMED.items()}
    return {f"{to_sequential[k.rpartition('.')[0]]}.{k.rpartition('.')[2]}": v.clone() + 1
            for k, v in model.state_dict().items()}


def test_file_without_fc8_keeps_the_models(small_model):
    state = small_sequential_state(small_model)
    del state["classifier.6.weight"], state["classifier.6.bias"]
    model = C3D(num_classes=101, width=0.125)
    fc8 = model.fc8.weight.clone()
    info = load_pretrained(model, state)
    assert info["loaded"] == param_names(LAYERS[:10]) and not info["dropped_fc8"]
    assert torch.equal(model.fc8.weight, fc8)
    assert torch.equal(model.conv3b.weight, state["features.8.weight"])


def test_half_an_fc8_is_refused(small_model):
    state = small_sequential_state(small_model)
    state["classifier.6.bias"] = torch.zeros(487)
    with pytest.raises(ValueError, match="fc8"):
        load_pretrained(C3D(num_classes=101, width=0.125), state)


def assert_refused(model, source, *fragments):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError) as excinfo:
        load_pretrained(model, source)
    message = str(excinfo.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    for k, v in model.state_dict().items():  # nothing half-loaded
        assert torch.equal(v, before[k]) or (v.isnan().all() and before[k].isnan().all()), k
    return message


def test_3d_resnet_checkpoint_is_refused(model_101, tmp_path):
    resnet = resnet50(shortcut_type="B", num_classes=400)
    path = tmp_path / "resnet-50-kinetics.pth"
    torch.save({"arch": "resnet-50", "epoch": 200,
                "state_dict": {"module." + k: v for k, v in resnet.state_dict().items()}}, path)
    n_keys = len(resnet.state_dict())
    del resnet
    assert_refused(model_101, path, str(path), "module.conv1.weight",
                   "(64, 3, 7, 7, 7)", f"unexpected keys: {n_keys - 1} (module.bn1",
                   "missing keys: 19 (conv1.bias")


def test_wrong_conv_shapes_are_refused(model_101, released_state):
    state = dict(released_state)
    state["features.8.weight"] = torch.zeros(256, 256, 1, 3, 3)
    assert_refused(model_101, state, "given state_dict", "shape mismatches: 1",
                   "features.8.weight: file (256, 256, 1, 3, 3) vs model (256, 256, 3, 3, 3)")


def test_released_file_refused_by_another_width(released_state):
    with torch.device("meta"):
        model = C3D(num_classes=101, width=0.5)
    with pytest.raises(ValueError, match=r"width=0\.5.*shape mismatches: 21 \(features\.0\.weight"):
        load_pretrained(model, released_state)


@pytest.mark.parametrize("state,fragment", [
    ({}, "missing keys: 20 (conv1.weight"),
    ({"conv1.W": torch.zeros(1)}, "unexpected keys: 1 (conv1.W)"),
    ({"features.1.weight": torch.zeros(1)}, "missing keys: 20 (features.0.weight (conv1.weight)"),
    ({"fc8.weight": torch.zeros(101, 512), "fc8.bias": torch.zeros(101)}, "missing keys: 20"),
])
def test_file_with_no_usable_tensors_is_refused(small_model, state, fragment):
    assert_refused(small_model, state, fragment)


def test_non_tensor_contents_are_refused(small_model, tmp_path):
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(3)], path)
    assert_refused(small_model, path, str(path), "dict")
    assert_refused(small_model, {"epoch": 3, "optimizer": {}}, "no state_dict of tensors")


@pytest.mark.parametrize("content", [
    b"", b"this is not a checkpoint\n", b'{"conv1.weight": [1, 2, 3]}',
    bytes(range(256)) * 8, "truncated zip",
])
def test_not_a_checkpoint_file(small_model, tmp_path, content):
    path = tmp_path / "weights.pth"
    if content == "truncated zip":
        torch.save({"conv1.weight": torch.zeros(64, 3, 3, 3, 3)}, path)
        content = path.read_bytes()[:600]
    path.write_bytes(content)
    assert_refused(small_model, path, str(path), "not a weights-only PyTorch checkpoint")


def test_missing_file(small_model, tmp_path):
    with pytest.raises(FileNotFoundError):
        load_pretrained(small_model, tmp_path / "absent.pth")
