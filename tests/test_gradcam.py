"""Tests for gradcam.py: map shapes on the project's models, maps against a hand computation,
localisation on hand-set networks (2D and 3D), no hooks or flags left behind, the PNG strip."""
import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

import resnet_3d
from actionrec.inference import gradcam
from actionrec.inference.gradcam import default_layer, grad_cam, overlay_strip, save_maps, upsample


def all_hooks(model):
    return [h for m in model.modules() for h in (*m._forward_hooks.values(), *m._forward_pre_hooks.values(),
                                                   *m._backward_hooks.values(), *m._backward_pre_hooks.values())]


# ---------------------------------------------------------------------------
# The project's models: shapes
# ---------------------------------------------------------------------------
def test_resnet18_2d_shapes():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=7).eval()
    x = torch.randn(2, 3, 64, 96)
    assert default_layer(model) is model.layer4
    maps, logits = grad_cam(model, x, target=[3, 5])
    assert maps.shape == (2, 2, 3) and maps.dtype == np.float32
    assert 0 <= maps.min() and maps.max() <= 1
    with torch.no_grad():
        assert torch.allclose(logits, model(x), atol=1e-5)  # the hook does not change the output
    assert upsample(maps, (64, 96)).shape == (2, 64, 96)
    assert all_hooks(model) == []


def test_resnet10_3d_shapes():
    torch.manual_seed(0)
    model = resnet_3d.resnet10(num_classes=5, shortcut_type="A").eval()
    x = torch.randn(1, 3, 8, 64, 64)
    assert default_layer(model) is model.layer4[0]
    maps, logits = grad_cam(model, x, target=2)
    assert maps.shape == (1, 1, 2, 2)  # T' = ceil(8 / 16)
    assert logits.shape == (1, 5)
    up = upsample(maps, (8, 64, 64))
    assert up.shape == (1, 8, 64, 64) and up.dtype == np.float32
    assert all_hooks(model) == []


def test_3d_resnet_layer4_blocks():
    with torch.device("meta"):
        model = resnet_3d.resnet18(num_classes=5, shortcut_type="A")
    assert default_layer(model) is model.layer4[1]
    model.layer4_blocks = 1
    assert default_layer(model) is model.layer4[0]

    model = resnet_3d.resnet18(num_classes=5, shortcut_type="A", layer4_blocks=1).eval()
    x = torch.randn(1, 3, 8, 32, 32)
    assert grad_cam(model, x, 0)[0].shape == (1, 1, 1, 1)
    with pytest.raises(ValueError, match=r"ran 0 times.*layer4\[k - 1\]"):
        grad_cam(model, x, 0, layer=model.layer4[1])  # the skipped block never runs
    assert all_hooks(model) == []


def test_default_layer_conv5b_and_unknown():
    class C3DLike(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv5b = nn.Conv3d(3, 4, 3, padding=1)

    model = C3DLike()
    assert default_layer(model) is model.conv5b
    with pytest.raises(ValueError, match="Linear"):
        default_layer(nn.Linear(3, 4))


# ---------------------------------------------------------------------------
# The numbers: against a computation by hand
# ---------------------------------------------------------------------------
def reference_cam(features, head, x, target):
    """Grad-CAM computed directly: A = features(x), logits = head(A)."""
    a = features(x).detach().requires_grad_(True)
    logits = head(a.clone())  # the head's in-place ReLU must not touch the leaf
    (g,) = torch.autograd.grad(logits[torch.arange(len(x)), target].sum(), a)
    dims = tuple(range(2, a.ndim))
    cam = torch.relu((g.mean(dims, keepdim=True) * a).sum(1))
    peak = cam.flatten(1).amax(1).view(-1, *[1] * (cam.ndim - 1))
    return (cam / peak).detach().numpy(), logits.detach()


@pytest.mark.parametrize("dims", [2, 3])
def test_matches_hand_computation(dims):
    torch.manual_seed(0)
    conv, bn = (nn.Conv2d, nn.BatchNorm2d) if dims == 2 else (nn.Conv3d, nn.BatchNorm3d)
    pool = nn.AdaptiveAvgPool2d(1) if dims == 2 else nn.AdaptiveAvgPool3d(1)
    # The hooked layer is a bare conv followed by an in-place ReLU (as in C3D): A is the conv's
    # output before the ReLU, so it has negative entries, and the in-place op must not alter it.
    features = nn.Sequential(conv(3, 8, 3, padding=1), bn(8), nn.ReLU(), conv(8, 6, 3, padding=1))
    head = nn.Sequential(nn.ReLU(inplace=True), conv(6, 6, 1), nn.ReLU(), pool, nn.Flatten(), nn.Linear(6, 4))
    model = nn.Sequential(*features, *head).eval()
    x = torch.randn(3, 3, *([6] if dims == 3 else []), 10, 12)
    target = torch.tensor([0, 3, 1])
    maps, logits = grad_cam(model, x, target, layer=model[3])
    expected, expected_logits = reference_cam(features, head, x, target)
    np.testing.assert_allclose(maps, expected, rtol=1e-4, atol=1e-6)
    assert torch.allclose(logits, expected_logits, atol=1e-6)
    assert np.allclose(maps.reshape(3, -1).max(1), 1)  # normalised per input


# ---------------------------------------------------------------------------
# Localisation on hand-set networks
# ---------------------------------------------------------------------------
# Grad-CAM's channel weights are averages over all positions, so the map lies where the
# channels that raise the target logit are active: a model reading only one region would not
# localise the map by itself. So: channel 0 detects bright input, channel 1 dark input; class 0
# = mean(bright) - mean(dark), class 1 the opposite; the picture is bright in one place and
# dark in another, noise elsewhere.
def detector_net(dims):
    conv = nn.Conv2d if dims == 2 else nn.Conv3d
    detect = conv(3, 2, 3, padding=1, bias=False)
    n_taps = 3 * 3 ** dims
    with torch.no_grad():
        detect.weight[0] = 1 / n_taps     # mean brightness
        detect.weight[1] = -1 / n_taps    # mean darkness
    last = conv(2, 2, 1)
    with torch.no_grad():
        last.weight.copy_(torch.eye(2).view(2, 2, *[1] * dims))
        last.bias.zero_()
    pool = nn.MaxPool2d(2) if dims == 2 else nn.MaxPool3d((1, 2, 2))  # keep time in 3D
    classifier = nn.Linear(2, 2)
    with torch.no_grad():
        classifier.weight.copy_(torch.tensor([[1.0, -1.0], [-1.0, 1.0]]))
        classifier.bias.zero_()
    gap = nn.AdaptiveAvgPool2d(1) if dims == 2 else nn.AdaptiveAvgPool3d(1)
    return nn.Sequential(detect, nn.ReLU(), pool, last, nn.ReLU(), gap, nn.Flatten(), classifier).eval()


def test_2d_map_peaks_where_the_target_class_evidence_is():
    torch.manual_seed(0)
    model = detector_net(2)
    image = 0.1 * torch.randn(3, 32, 32)
    image[:, :16, :16] += 1.0     # bright: top-left quadrant
    image[:, 16:, 16:] -= 1.0     # dark: bottom-right quadrant
    x = torch.stack([image, image])
    maps, _ = grad_cam(model, x, target=[0, 1], layer=model[3])
    up = upsample(maps, (32, 32))
    top_left = np.unravel_index(up[0].argmax(), up[0].shape)
    bottom_right = np.unravel_index(up[1].argmax(), up[1].shape)
    assert top_left[0] < 16 and top_left[1] < 16
    assert bottom_right[0] >= 16 and bottom_right[1] >= 16
    # Each map is near zero where the other class's evidence lies.
    assert up[0, 18:, 18:].max() < 0.1 and up[1, :14, :14].max() < 0.1


class TinyC3D(nn.Module):
    """C3D-shaped: last conv named conv5b, ReLU applied functionally after it."""

    def __init__(self):
        super().__init__()
        net = detector_net(3)
        self.conv1, self.pool, self.conv5b, self.fc = net[0], net[2], net[3], net[7]

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = F.relu(self.conv5b(x))
        return self.fc(x.mean(dim=(2, 3, 4)))


def test_3d_map_peaks_in_the_right_frames_and_region():
    torch.manual_seed(0)
    model = TinyC3D().eval()
    clip = 0.1 * torch.randn(1, 3, 8, 32, 32)
    clip[:, :, 5:8, :16, :16] += 1.0    # bright: frames 5-7, top-left
    clip[:, :, 0:2, 16:, 16:] -= 1.0    # dark: frames 0-1, bottom-right
    maps, logits = grad_cam(model, clip, target=0)  # default layer: conv5b
    assert logits.argmax().item() == 0
    assert maps.shape == (1, 8, 16, 16)
    up = upsample(maps, (8, 32, 32))[0]
    t, h, w = np.unravel_index(up.argmax(), up.shape)
    assert 5 <= t <= 7 and h < 16 and w < 16
    assert up[:2, 18:, 18:].max() < 0.1

    maps, _ = grad_cam(model, clip, target=1)
    t, h, w = np.unravel_index(maps[0].argmax(), maps[0].shape)
    assert t <= 1 and h >= 8 and w >= 8


# ---------------------------------------------------------------------------
# Side effects, edge cases, errors
# ---------------------------------------------------------------------------
def test_frozen_parameters_and_no_grad_caller():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=4).eval()
    model.requires_grad_(False)
    model.fc.weight.requires_grad_(True)   # a mix, as in fine-tuning with frozen layers
    flags = [p.requires_grad for p in model.parameters()]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        maps, _ = grad_cam(model, x, 1)
        assert not torch.is_grad_enabled()
    assert torch.is_grad_enabled()
    assert maps.max() == pytest.approx(1.0)
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())  # nothing accumulated
    assert not x.requires_grad


def test_all_zero_map_stays_zero():
    model = detector_net(2)
    x = torch.zeros(2, 3, 16, 16)
    x[1, :, :8] = 1.0   # second input has evidence, the first has none
    maps, _ = grad_cam(model, x, 0, layer=model[3])
    assert np.isfinite(maps).all()
    assert (maps[0] == 0).all()
    assert maps[1].max() == pytest.approx(1.0)


def test_hooks_removed_and_grad_mode_restored_on_error():
    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            self.conv(x)
            raise RuntimeError("boom")

    model = Broken().eval()
    with pytest.raises(RuntimeError, match="boom"):
        grad_cam(model, torch.randn(1, 3, 8, 8), 0, layer=model.conv)
    assert all_hooks(model) == []
    assert torch.is_grad_enabled()

    model = detector_net(2)
    with pytest.raises(ValueError, match=r"0\.\.1"):
        grad_cam(model, torch.randn(2, 3, 8, 8), [0, 2], layer=model[3])
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        grad_cam(model, torch.randn(2, 3, 8, 8), [0, 1, 1], layer=model[3])
    with pytest.raises(ValueError, match="integer"):
        grad_cam(model, torch.randn(2, 3, 8, 8), 0.0, layer=model[3])
    with pytest.raises(ValueError, match=r"\[N, K, \(T,\) H, W\]"):
        grad_cam(model, torch.randn(2, 3, 8, 8), 0, layer=model[7])  # the Linear head
    assert all_hooks(model) == []


def test_upsample_rejects_mismatched_size():
    with pytest.raises(ValueError, match="size"):
        upsample(np.zeros((1, 2, 2), np.float32), (8, 16, 16))
    up = upsample(np.array([[[0.0, 1.0]]], np.float32), (1, 4))
    assert up.shape == (1, 1, 4) and up[0, 0, 0] < up[0, 0, -1]


# ---------------------------------------------------------------------------
# Pictures and files
# ---------------------------------------------------------------------------
def test_overlay_strip_layout_and_colours(tmp_path):
    n, h, w = 3, 40, 60
    frames = np.zeros((n, h, w, 3), np.uint8)
    frames[..., 0], frames[..., 1] = 200, 100     # RGB orange
    maps = np.zeros((n, h, w), np.float32)
    maps[:, :, : w // 2] = 1.0                    # hot left half, cold right half
    path = overlay_strip(frames, maps, tmp_path / "sub" / "strip.png")
    image = cv2.imread(str(path)).astype(int)     # BGR
    gap = gradcam.TILE_GAP
    assert image.shape == (2 * h + gap, n * w + (n - 1) * gap, 3)
    top = image[:h, :w]
    assert (top[..., 2] == 200).all() and (top[..., 1] == 100).all() and (top[..., 0] == 0).all()
    bottom = image[h + gap:, :w]
    hot, cold = bottom[:, 2:w // 2 - 2].mean((0, 1)), bottom[:, w // 2 + 2:].mean((0, 1))
    # Jet: red where the map is 1, blue where it is 0.
    assert hot[2] > cold[2] + 40 and cold[0] > hot[0] + 40


def test_overlay_strip_subsamples_scales_and_titles(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (12, 240, 320, 3), dtype=np.uint8)
    maps = np.random.default_rng(1).random((12, 8, 10)).astype(np.float32)  # any map size
    titles = [f"frame {i}" for i in range(12)]
    path = overlay_strip(frames, maps, str(tmp_path / "strip.png"), titles=titles)
    image = cv2.imread(path)
    tile_h, tile_w = gradcam.MAX_TILE_HEIGHT, round(320 * gradcam.MAX_TILE_HEIGHT / 240)
    tiles, gap = gradcam.MAX_TILES, gradcam.TILE_GAP
    assert image.shape == (gradcam.TITLE_HEIGHT + 2 * tile_h + gap, tiles * tile_w + (tiles - 1) * gap, 3)
    assert (image[:gradcam.TITLE_HEIGHT] < 128).any()       # some title text was drawn

    with pytest.raises(ValueError, match="one per frame"):
        overlay_strip(frames, maps, tmp_path / "x.png", titles=titles[:3])
    with pytest.raises(ValueError, match="uint8"):
        overlay_strip(frames.astype(np.float32), maps, tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"\.png"):
        overlay_strip(frames, maps, tmp_path / "x.jpg")


def test_save_maps_round_trip(tmp_path):
    maps = np.random.default_rng(0).random((2, 3, 4, 5))
    path = save_maps(maps, tmp_path / "maps")
    assert path.endswith("maps.npy")
    loaded = np.load(path)
    assert loaded.dtype == np.float32 and np.allclose(loaded, maps)
