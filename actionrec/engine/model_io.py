"""The model's input side: uint8 batches normalised on the device, and one forward call for every model kind."""

import torch
import torch.nn as nn
import torch.nn.functional as F

from actionrec.data import motion, normalization
from actionrec.data.batching import Batch
from actionrec.engine import devices


class Normalize(nn.Module):
    """uint8 channels-last batches -> normalised float (N, C, H, W) or (N, C, T, H, W) on the device, C
    being the length of mean and std (3 for RGB; 2L for a flow stack, 3(L + 1) for RGB-difference frames).

    Loaders ship uint8 RGB (4x fewer bytes than float32, no float work on the CPU); this does the rest:
    (x / 255 - mean) / std per channel, with mean and std on [0, 1] in the order the model expects.
    `bgr=True` flips the channels first (C3D's weights were trained on OpenCV's BGR frames).
    """

    def __init__(self, mean, std, bgr=False):
        super().__init__()
        self.bgr = bgr
        self.register_buffer("scale", 1.0 / (255.0 * torch.tensor(std)), persistent=False)
        self.register_buffer("shift", torch.tensor(mean) / torch.tensor(std), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bgr:
            x = x.flip(-1)
        x = x.movedim(-1, 1)  # (N, H, W, 3) -> (N, 3, H, W); (N, T, H, W, 3) -> (N, 3, T, H, W)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        x = x.float() * self.scale.view(shape) - self.shift.view(shape)
        # The moved view is already channels-last in memory; keep that on CUDA, plain layout on the CPU.
        if x.is_cuda:
            return x.contiguous(memory_format=torch.channels_last if x.dim() == 4 else torch.channels_last_3d)
        return x.contiguous()


class FrameDifferences(nn.Module):
    """TSN's RGB difference (tsn-pytorch `_get_diff`), on the device: uint8 snippets of L + 1 frames
    (N, H, W, 3(L + 1)) -> normalised frames -> the L differences of consecutive frames (N, 3L, H, W),
    channels (f2 - f1, f3 - f2, ...) x RGB. The mean cancels: a difference is (b - a) / (255 std)."""

    def __init__(self, normalize, new_length):
        super().__init__()
        self.normalize, self.new_length = normalize, new_length

    def forward(self, x):
        x = self.normalize(x)  # (N, 3(L + 1), H, W)
        frames = x.reshape((x.shape[0], self.new_length + 1, 3) + x.shape[2:])
        return (frames[:, 1:] - frames[:, :-1]).reshape((x.shape[0], 3 * self.new_length) + x.shape[2:]).contiguous()


def modality_input(modality, new_length=1):
    """The input module of a frame model of `modality` (motion.MODALITIES): ImageNet's RGB normalisation;
    flow levels with normalization.FLOW_MEAN / FLOW_STD on every channel; RGB differences (FrameDifferences)."""
    if modality == "flow":
        channels = motion.shipped_channels("flow", new_length)
        return Normalize((normalization.FLOW_MEAN,) * channels, (normalization.FLOW_STD,) * channels)
    if modality == "rgbdiff":
        return FrameDifferences(Normalize(normalization.FRAME_MEAN * (new_length + 1),
                                          normalization.FRAME_STD * (new_length + 1)), new_length)
    return Normalize(normalization.FRAME_MEAN, normalization.FRAME_STD)


class FeatureInput(nn.Module):
    """float16 feature sequences (N, L, dims) -> float32 on the device (the RNN's "normalisation")."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float()


class Forward:
    """How a batch becomes logits, for every model: normalise on the device, then the model.

    - frames (N, H, W, 3) and clips (N, T, H, W, 3): `model(normalize(x))`;
    - TSN segments (N, K, H, W, 3) with segments=K > 1: the backbone on all N*K frames, and the K logit
      vectors of a video averaged (segmental consensus, before the softmax and the loss);
    - feature sequences (N, L, dims) with lengths: `model(x, lengths)`; with frame_loss, training also
      adds the mean cross-entropy over each video's valid steps to its loss.
    Returns (logits (N, classes), extra per-sample loss (N,) or None).
    """

    def __init__(self, normalize: nn.Module, segments: int = 1, frame_loss: bool = False) -> None:
        self.normalize, self.segments, self.frame_loss = normalize, segments, frame_loss
        self.heads = None  # label_heads.Heads when samples carry one label per head (loop.sample_losses)

    def __call__(
        self, model: nn.Module, batch: Batch, device: torch.device, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = devices.to_device(batch.data, device)
        if batch.lengths is not None:
            lengths = torch.from_numpy(batch.lengths)  # on the CPU: pack_padded_sequence wants them there
            if self.frame_loss and labels is not None:
                logits, step_logits, mask = model(self.normalize(x), lengths, return_steps=True)
                extra = (self.step_losses(step_logits, labels) * mask).sum(1) / mask.sum(1).clamp(min=1)
                return logits, extra
            return model(self.normalize(x), lengths), None
        if self.segments > 1:
            n, k = x.shape[:2]
            logits = model(self.normalize(x.reshape((n * k,) + x.shape[2:])))  # (N*K, classes)
            return logits.view(n, k, -1).mean(1), None
        return model(self.normalize(x)), None


    def step_losses(self, step_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The loss (N, L) of every step's logits (N, L, classes) against its video's label (N,), or with
        label heads (self.heads) its labels (N, heads): each step is a sample of the video's labels."""
        n, steps = step_logits.shape[:2]
        if self.heads is None:
            return F.cross_entropy(step_logits.float().transpose(1, 2), labels[:, None].expand(n, steps),
                                   reduction="none")
        per_step = labels[:, None].expand((n, steps) + labels.shape[1:]).reshape((n * steps,) + labels.shape[1:])
        return self.heads.loss(step_logits.float().reshape(n * steps, -1), per_step).view(n, steps)


def batched(x: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """Split a tensor along dim 0 into pieces of at most batch_size."""
    return [x[i:i + batch_size] for i in range(0, len(x), batch_size)]


def crop_mean(logits: torch.Tensor, crops: int) -> torch.Tensor:
    """Logits of rows x crops views (rows*crops, C) -> the mean over each row's views (rows, C)."""
    return logits if crops == 1 else logits.view(-1, crops, logits.shape[-1]).mean(1)
