"""A GRU/LSTM over per-frame CNN features (Ng et al. 2015, "Beyond Short Snippets"; the course
notebook's ``9_ucf101.ipynb``), for batches of videos of different lengths.

Input is a zero- (or anything-) padded batch of per-frame features (N, L, input_size) and each
video's true length; the sequences are packed, so padded steps are never read. The course notebook
classifies ``rnn_outputs[:, -1]``, the output at the last *padded* step, which is zero for every
video shorter than its window; here each video is classified from its own last valid step
(``head="last"``) or from the mean of its valid steps (``head="mean"``). Padding never changes a
prediction: a video gives the same logits alone and inside any padded batch.

Public API: ``FeatureRNN`` and ``HEAD`` (the classifier's parameter prefix, ``"fc"``).
"""
from collections.abc import Sequence

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

__all__ = ["FeatureRNN", "HEAD", "CELLS", "HEADS"]

HEAD = "fc"  # parameter-name prefix of the classifier (its own lr factor in the engine)
CELLS = {"gru": nn.GRU, "lstm": nn.LSTM}
HEADS = ("last", "mean")


class FeatureRNN(nn.Module):
    """Recurrent classifier over per-frame features (N, L, input_size) -> logits (N, num_classes).

    ``cell``: "gru" or "lstm"; ``layers`` stacked layers of ``hidden`` units, optionally
    ``bidirectional``. ``dropout`` is applied between RNN layers (only when layers > 1) and to the
    RNN output before the classifier ``fc``. ``head``: "last" reads the top layer's state at each
    video's own last valid step (bidirectional: the forward direction there, concatenated with the
    backward direction's state after reading back to step 0); "mean" averages the top layer's
    outputs over the valid steps only.
    """

    def __init__(
        self,
        input_size: int = 2048,
        num_classes: int = 101,
        cell: str = "gru",
        layers: int = 2,
        hidden: int = 256,
        bidirectional: bool = False,
        dropout: float = 0.0,
        head: str = "last",
    ) -> None:
        super().__init__()
        for name, value in (("input_size", input_size), ("num_classes", num_classes),
                            ("layers", layers), ("hidden", hidden)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}, got {cell!r}")
        if head not in HEADS:
            raise ValueError(f"head must be one of {list(HEADS)}, got {head!r}")
        if not isinstance(bidirectional, bool):
            raise ValueError(f"bidirectional must be True or False, got {bidirectional!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
        self.input_size = input_size
        self.num_classes = num_classes
        self.cell = cell
        self.layers = layers
        self.hidden = hidden
        self.bidirectional = bidirectional
        self.head = head

        # nn.GRU/LSTM warn when given dropout with a single layer (it would do nothing).
        rnn_dropout = {"dropout": float(dropout)} if layers > 1 else {}
        self.rnn = CELLS[cell](input_size, hidden, num_layers=layers, batch_first=True,
                               bidirectional=bidirectional, **rnn_dropout)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden * (2 if bidirectional else 1), num_classes)

    def extra_repr(self) -> str:
        return f"head={self.head!r}"

    def _check_inputs(self, x, lengths):
        """Returns the lengths as an int64 CPU tensor (N,), or raises a one-line ValueError."""
        if x.dim() != 3 or x.size(2) != self.input_size:
            raise ValueError(f"x must have shape (N, L, {self.input_size}), got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"x must be a float tensor, got {x.dtype}")
        lengths = torch.as_tensor(lengths)
        if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
            raise ValueError(f"lengths must be integers, got {lengths.dtype}")
        n, window = x.shape[:2]
        if n == 0:
            raise ValueError("x holds no videos (batch size 0)")
        if lengths.shape != (n,):
            raise ValueError(f"lengths must have shape ({n},) to match x, got {tuple(lengths.shape)}")
        lengths = lengths.to("cpu", torch.int64)  # pack_padded_sequence wants them on the CPU
        if lengths.min() < 1 or lengths.max() > window:
            bad = lengths[(lengths < 1) | (lengths > window)]
            raise ValueError(f"every length must be in 1..{window} (the padded length of x), "
                             f"got {bad.tolist()[:5]}")
        return lengths

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor | Sequence[int], return_steps: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (N, L, input_size) float, lengths (N,) ints in 1..L on any device.

        Returns logits (N, num_classes); with ``return_steps``, ``(logits, step_logits, mask)``:
        step_logits (N, L, num_classes) is ``fc`` applied to every step's top-layer output (at
        padded steps that output is zero, so those rows are just ``fc``'s bias) and mask (N, L)
        bool marks the valid steps.
        """
        lengths = self._check_inputs(x, lengths)
        window = x.size(1)
        # float16 features (half the disk and transfer) meet float32 weights; under autocast the
        # RNN and fc still run in the autocast dtype.
        x = x.to(self.fc.weight.dtype)
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        packed_out, h_n = self.rnn(packed)
        if self.cell == "lstm":
            h_n = h_n[0]  # (h, c): the hidden state, not the cell state
        # h_n (layers * directions, N, hidden), in the caller's order; with packing each
        # direction's entry is its state after its last read step: forward at lengths - 1,
        # backward at step 0. The top layer's entries are the last one (or two).

        if return_steps or self.head == "mean":
            # Zeros at padded steps; total_length keeps L even when no video fills the window.
            steps, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=window)
            # steps (N, L, hidden * directions)

        if self.head == "last":
            if self.bidirectional:
                feature = torch.cat([h_n[-2], h_n[-1]], dim=1)  # (N, 2 * hidden)
            else:
                feature = h_n[-1]                               # (N, hidden)
        else:
            # Padded outputs are zero, so the sum is over valid steps; divide by the true length.
            lengths_dev = lengths.to(steps.device, torch.float32).unsqueeze(1)  # (N, 1)
            feature = (steps.float().sum(dim=1) / lengths_dev).to(steps.dtype)
        logits = self.fc(self.dropout(feature))                  # (N, num_classes)
        if not return_steps:
            return logits

        step_logits = self.fc(self.dropout(steps))               # (N, L, num_classes)
        positions = torch.arange(window, device=x.device)
        mask = positions.unsqueeze(0) < lengths.to(x.device).unsqueeze(1)  # (N, L) bool
        return logits, step_logits, mask
