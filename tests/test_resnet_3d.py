"""Tests for resnet_3d.py: key layout of the released Kinetics ResNet-50, loading, shapes."""
import math

import pytest
import torch

import resnet_3d
from actionrec import guards
from actionrec.engine import trained_model
from resnet_3d import generate_model, load_pretrained, resnet18, resnet34, resnet50

RELEASED_TENSORS = 267
RELEASED_PARAMS = 47_018_576


def tensor_keys(model):
    return [k for k in model.state_dict() if not k.endswith("num_batches_tracked")]


def released_checkpoint(model):
    """The released file's layout: DataParallel keys, no num_batches_tracked, optimizer state."""
    state = {"module." + k: v.clone() for k, v in model.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    optimizer = {"state": {0: {"momentum_buffer": torch.zeros(3)}},
                 "param_groups": [{"lr": 0.1, "momentum": 0.9, "params": [0]}]}
    return {"epoch": 200, "arch": "resnet-50", "state_dict": state, "optimizer": optimizer}


@pytest.fixture(scope="module")
def kinetics_model():
    torch.manual_seed(0)
    model = resnet50(shortcut_type="B", num_classes=400)
    # Non-default BN statistics so that "landed where it belongs" is not trivially true.
    for name, buf in model.named_buffers():
        if not name.endswith("num_batches_tracked"):
            buf.copy_(torch.rand_like(buf) + 0.5)
    return model.eval()


@pytest.fixture(scope="module")
def released_file(kinetics_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "resnet-50-kinetics.pth"
    torch.save(released_checkpoint(kinetics_model), path)
    return path


@pytest.fixture(scope="module")
def ucf_model():
    return resnet50(shortcut_type="B", num_classes=101).eval()


def test_resnet50_matches_released_layout(kinetics_model):
    sd = kinetics_model.state_dict()
    keys = tensor_keys(kinetics_model)
    assert len(keys) == RELEASED_TENSORS
    assert sum(p.numel() for p in kinetics_model.parameters()) == RELEASED_PARAMS
    assert sd["conv1.weight"].shape == (64, 3, 7, 7, 7)
    assert sd["fc.weight"].shape == (400, 2048)
    assert sd["fc.bias"].shape == (400,)
    for layer in range(1, 5):
        assert f"layer{layer}.0.downsample.0.weight" in sd
        for suffix in ("weight", "bias", "running_mean", "running_var"):
            assert f"layer{layer}.0.downsample.1.{suffix}" in sd
        assert not any(k.startswith(f"layer{layer}.1.downsample") for k in sd)
    block_parts = {k.split(".")[2] for k in keys if k.startswith("layer")}
    assert block_parts == {"conv1", "bn1", "conv2", "bn2", "conv3", "bn3", "downsample"}
    assert kinetics_model.conv1.stride == (1, 2, 2)
    assert kinetics_model.conv1.padding == (3, 3, 3)
    assert kinetics_model.maxpool.kernel_size == 3 and kinetics_model.maxpool.stride == 2


def test_shortcut_a_has_no_downsample_parameters():
    with torch.device("meta"):
        model = resnet34(shortcut_type="A")
    assert not any("downsample" in k for k in model.state_dict())
    assert model.layer2[0].downsample is not None


@pytest.mark.parametrize("depth,blocks,expansion", [
    (10, [1, 1, 1, 1], 1), (18, [2, 2, 2, 2], 1), (34, [3, 4, 6, 3], 1), (50, [3, 4, 6, 3], 4),
    (101, [3, 4, 23, 3], 4), (152, [3, 8, 36, 3], 4), (200, [3, 24, 36, 3], 4),
])
def test_generate_model_depths(depth, blocks, expansion):
    with torch.device("meta"):  # shapes only: no memory, no time
        model = generate_model(depth, num_classes=7)
        fn_model = getattr(resnet_3d, f"resnet{depth}")(num_classes=7)
    assert [len(model.layer1), len(model.layer2), len(model.layer3), len(model.layer4)] == blocks
    assert model.fc.weight.shape == (7, 512 * expansion)
    assert model.depth == depth
    assert tensor_keys(model) == tensor_keys(fn_model)


def test_generate_model_rejects_unknown_depth():
    with pytest.raises(ValueError, match="depth"):
        generate_model(42)


def test_released_file_into_101_class_model(kinetics_model, released_file, ucf_model):
    fresh_fc = {k: v.clone() for k, v in ucf_model.fc.state_dict().items()}
    info = load_pretrained(ucf_model, released_file)
    assert info == {"arch": "resnet-50", "epoch": 200, "loaded": RELEASED_TENSORS - 2, "dropped_fc": True}
    src = kinetics_model.state_dict()
    dst = ucf_model.state_dict()
    for k in tensor_keys(kinetics_model):
        if k.startswith("fc."):
            continue
        assert torch.equal(dst[k], src[k]), k
    assert torch.equal(ucf_model.fc.weight, fresh_fc["weight"])
    assert torch.equal(ucf_model.fc.bias, fresh_fc["bias"])
    assert ucf_model.fc.weight.shape == (101, 2048)


def test_released_file_into_400_class_model_loads_fc(kinetics_model, released_file):
    model = resnet50(shortcut_type="B", num_classes=400)
    nbt_before = model.bn1.num_batches_tracked.clone()
    info = load_pretrained(model, str(released_file))
    assert info["loaded"] == RELEASED_TENSORS and info["dropped_fc"] is False
    src = kinetics_model.state_dict()
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked"):
            assert torch.equal(v, nbt_before)
        else:
            assert torch.equal(v, src[k]), k


def test_legacy_serialization_format(kinetics_model, tmp_path):
    # The released file predates the zip format that torch.save writes today.
    path = tmp_path / "legacy.pth"
    torch.save(released_checkpoint(kinetics_model), path, _use_new_zipfile_serialization=False)
    model = resnet50(num_classes=400)
    assert load_pretrained(model, path)["loaded"] == RELEASED_TENSORS
    assert torch.equal(model.layer3[5].conv2.weight, kinetics_model.layer3[5].conv2.weight)


@pytest.mark.parametrize("prefix", ["", "module."])
def test_bare_state_dict(kinetics_model, tmp_path, prefix):
    path = tmp_path / "bare.pth"
    torch.save({prefix + k: v for k, v in kinetics_model.state_dict().items()}, path)
    model = resnet50(num_classes=400)
    info = load_pretrained(model, path)
    assert info["arch"] is None and info["epoch"] is None and not info["dropped_fc"]
    assert torch.equal(model.layer4[2].bn3.running_var, kinetics_model.layer4[2].bn3.running_var)
    # An in-memory state_dict works the same way.
    model = resnet50(num_classes=400)
    load_pretrained(model, kinetics_model.state_dict())
    assert torch.equal(model.fc.weight, kinetics_model.fc.weight)


def test_strict_fc_refuses_other_class_count(released_file, ucf_model):
    with pytest.raises(ValueError, match=r"fc\.weight"):
        load_pretrained(ucf_model, released_file, strict_fc=True)


def test_resnet34_checkpoint_refused_by_resnet50(tmp_path):
    r34 = resnet34(shortcut_type="A", num_classes=400)
    path = tmp_path / "resnet-34-kinetics.pth"
    torch.save({"epoch": 200, "arch": "resnet-34", "optimizer": {},
                "state_dict": {"module." + k: v for k, v in r34.state_dict().items()}}, path)
    model = resnet50(num_classes=101)
    before = model.conv1.weight.clone()
    with pytest.raises(ValueError) as excinfo:
        load_pretrained(model, path)
    message = str(excinfo.value)
    assert "\n" not in message
    assert str(path) in message
    assert "resnet-34" in message and "resnet-50" in message
    assert "missing keys" in message and "layer1.0.bn3.bias" in message
    assert "shape mismatches" in message and "layer1.0.conv1.weight" in message
    assert torch.equal(model.conv1.weight, before)  # nothing half-loaded


def test_resnet50_checkpoint_refused_by_resnet34(kinetics_model):
    with torch.device("meta"):
        model = resnet34(shortcut_type="A", num_classes=400)
    with pytest.raises(ValueError, match=r"unexpected keys: \d+ \(layer1\.0\.conv3\.weight, layer1\.0\.bn3\."):
        load_pretrained(model, released_checkpoint(kinetics_model))


def test_shape_mismatch_outside_fc_raises(kinetics_model):
    checkpoint = released_checkpoint(kinetics_model)
    checkpoint["state_dict"]["module.layer3.1.conv2.weight"] = torch.zeros(256, 256, 1, 3, 3)
    mismatch = r"layer3\.1\.conv2\.weight: file \(256, 256, 1, 3, 3\) vs model \(256, 256, 3, 3, 3\)"
    with pytest.raises(ValueError, match=r"shape mismatches: 1 \(" + mismatch):
        load_pretrained(resnet50(num_classes=400), checkpoint)


def test_missing_key_raises(kinetics_model):
    checkpoint = released_checkpoint(kinetics_model)
    del checkpoint["state_dict"]["module.layer2.0.downsample.1.running_mean"]
    with pytest.raises(ValueError, match=r"missing keys: 1 \(layer2\.0\.downsample\.1\.running_mean\)"):
        load_pretrained(resnet50(num_classes=400), checkpoint)


def test_a_training_checkpoint_that_does_not_fit_is_reported_in_the_same_words():
    """The training scripts' checkpoints (engine.trained_model) and the released weights share one misfit report."""
    model = resnet_3d.resnet10(num_classes=3)
    state = {k: v for k, v in model.state_dict().items() if k != "fc.bias"}
    state["fc.weight"] = torch.zeros(5, 512)
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(guards.UserError) as excinfo:
        trained_model.load_model_state(model, state, "ckpt.pth")
    said = ("ckpt.pth: its weights do not fit the model its arguments describe (missing keys: 1 (fc.bias); "
            "unexpected keys: 1 (extra.weight); shape mismatches: 1 (fc.weight: file (5, 512) vs model (3, 512)))")
    assert str(excinfo.value) == said
    with pytest.raises(ValueError) as excinfo:
        load_pretrained(model, state, strict_fc=True)
    assert str(excinfo.value) == "given state_dict does not fit resnet-10: " + said.partition("(")[2][:-1]


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("this is not a checkpoint\n")
    with pytest.raises(ValueError, match="notes.pth"):
        load_pretrained(resnet18(), path)
    with pytest.raises(OSError):
        load_pretrained(resnet18(), tmp_path / "absent.pth")


@pytest.mark.parametrize("clip_len", [9, 16, 40])
@pytest.mark.parametrize("size", [(32, 32), (48, 64)])
@pytest.mark.parametrize("layer4_blocks", [1, 3])
def test_resnet50_forward_shapes(ucf_model, clip_len, size, layer4_blocks):
    x = torch.randn(1, 3, clip_len, *size)
    with torch.no_grad():
        out = ucf_model(x, layer4_blocks=layer4_blocks)
    assert out.shape == (1, 101)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("build", [resnet18, resnet34])
def test_shortcut_a_forward_and_backward(build):
    model = build(shortcut_type="A", num_classes=5)
    x = torch.randn(2, 3, 9, 32, 48)
    out = model(x)
    assert out.shape == (2, 5)
    out.sum().backward()
    assert model.conv1.weight.grad is not None


def test_shortcut_a_keeps_dtype():
    model = resnet18(shortcut_type="A", num_classes=3).double().eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 8, 32, 32, dtype=torch.float64))
    assert out.dtype == torch.float64


def test_layer4_blocks_skips_later_blocks(ucf_model):
    calls = []
    handles = [block.register_forward_hook(lambda m, i, o, n=n: calls.append(n))
               for n, block in enumerate(ucf_model.layer4)]
    x = torch.randn(1, 3, 8, 32, 32)
    try:
        with torch.no_grad():
            ucf_model(x, layer4_blocks=1)
            assert calls == [0]
            calls.clear()
            ucf_model.layer4_blocks = 2
            ucf_model(x)
            assert calls == [0, 1]
            calls.clear()
            ucf_model.layer4_blocks = None
            ucf_model(x)
            assert calls == [0, 1, 2]
    finally:
        ucf_model.layer4_blocks = None
        for h in handles:
            h.remove()


def test_layer4_blocks_constructor_and_validation():
    with torch.device("meta"):
        model = resnet50(num_classes=10, layer4_blocks=1)
        assert model.layer4_blocks == 1
        with pytest.raises(ValueError, match="layer4_blocks"):
            resnet50(layer4_blocks=4)
        with pytest.raises(ValueError, match="layer4_blocks"):
            model(torch.randn(1, 3, 8, 32, 32), layer4_blocks=0)


def layer4_output_shape(model, x, layer4_blocks=None):
    # forward() iterates over layer4's blocks, so hook the last block that runs, not the container.
    shapes = []
    last = model.layer4[(layer4_blocks or len(model.layer4)) - 1]
    handle = last.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape)))
    try:
        with torch.no_grad():
            model(x, layer4_blocks=layer4_blocks)
    finally:
        handle.remove()
    return shapes[0]


@pytest.mark.parametrize("clip_len", [1, 8, 9, 16, 17, 33, 40])
def test_layer4_temporal_size_is_ceil_t_over_16(ucf_model, clip_len):
    shape = layer4_output_shape(ucf_model, torch.randn(1, 3, clip_len, 32, 32), layer4_blocks=1)
    assert shape == (1, 2048, math.ceil(clip_len / 16), 1, 1)


def test_layer4_spatial_size():
    model = resnet18(shortcut_type="A", num_classes=3).eval()
    assert layer4_output_shape(model, torch.randn(1, 3, 16, 96, 128)) == (1, 512, 1, 3, 4)


@pytest.mark.parametrize("clip_len,expected", [(16, (2, 2048, 1, 7, 7)), (32, (2, 2048, 2, 7, 7))])
def test_layer4_shape_at_224(clip_len, expected):
    with torch.device("meta"):  # full-size shapes without the CPU cost
        model = resnet50(num_classes=101)
        assert layer4_output_shape(model, torch.randn(2, 3, clip_len, 224, 224)) == expected
        assert model(torch.randn(2, 3, clip_len, 224, 224)).shape == (2, 101)
