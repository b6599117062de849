"""The motion stream's samples: stacks of L optical-flow fields or of L + 1 frames (RGB difference), TSN's way.

A snippet is L consecutive flow fields stacked as 2L uint8 channels in the order x1, y1, x2, y2, ...
(tsn-pytorch), or L + 1 consecutive RGB frames stacked as 3(L + 1) uint8 channels (frame-major); the L
differences of the RGB snippet are taken on the device after normalisation (model_io.FrameDifferences),
so loaders ship uint8 as for every other model. A video of T fields (or frames) has T - span + 1 snippet
positions (span: L fields, L + 1 frames); a video shorter than a snippet loops.

Training: K segments of the positions, one snippet at a random offset in each (TSN); evaluation and
test: the segment centres int((k + 0.5) * positions / K) (TSN's test: K = 25). Augmentation is the
assignment's crop and flip applied to all channels alike; a flip negates x (255 - x in uint8), and flow
gets no brightness change (it would shift the motion); RGB difference gets the same brightness for all
its frames. Flow values are not rescaled with the crop's resize (TSN does not either).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence

import cv2
import h5py
import numpy as np

from actionrec import guards
from actionrec.data import sampling, video_files
from actionrec.flow import codec, extract, listing, recorded

MODALITIES = ("rgb", "flow", "rgbdiff")


MOTION_KINDS = ("flow", "rgbdiff")  # the BatchLoader kinds (SAMPLE_LOADERS) of the motion stream


DEFAULT_NEW_LENGTH = {"rgb": 1, "flow": 5, "rgbdiff": 5}  # TSN's; the two-stream paper stacked 10 fields


def span(modality: str, new_length: int) -> int:
    """Fields (flow) or frames (RGB, RGB difference) one snippet reads."""
    return {"rgb": 1, "flow": new_length, "rgbdiff": new_length + 1}[modality]


def shipped_channels(modality: str, new_length: int) -> int:
    """uint8 channels of one snippet as the loader ships it: 3, 2L (flow) or 3(L + 1) (RGB frames)."""
    return {"rgb": 3, "flow": 2 * new_length, "rgbdiff": 3 * (new_length + 1)}[modality]


def model_channels(modality: str, new_length: int) -> int:
    """Input channels of the network's first convolution: 3, 2L (flow) or 3L (RGB difference)."""
    return {"rgb": 3, "flow": 2 * new_length, "rgbdiff": 3 * new_length}[modality]


def resolve_new_length(modality: str, new_length: int | None) -> int:
    """--new-length as given, or the modality's default; ValueError for a length the modality cannot use."""
    if modality not in MODALITIES:
        raise ValueError(f"--modality must be one of {', '.join(MODALITIES)}, not {modality!r}")
    if new_length is None:
        return DEFAULT_NEW_LENGTH[modality]
    if modality == "rgb" and new_length != 1:
        raise ValueError(f"--new-length {new_length} needs --modality flow or rgbdiff (an RGB snippet is one frame)")
    return new_length


def positions(count: int, snippet_span: int) -> int:
    """Snippet start positions in a video of `count` fields or frames (at least 1: short videos loop)."""
    return max(count - snippet_span + 1, 1)


def stack_indices(starts: Sequence[int] | np.ndarray, snippet_span: int, count: int) -> np.ndarray:
    """int64 [n, span]: the fields (frames) of the snippets starting at `starts`; past the end they loop."""
    return (np.asarray(starts, dtype=np.int64)[:, None] + np.arange(snippet_span)) % count


def train_starts(count: int, segments: int, snippet_span: int, rng: np.random.Generator) -> np.ndarray:
    """TSN's training snippets: one at a random offset in each of `segments` equal segments of the positions."""
    return sampling.segment_offsets(positions(count, snippet_span), segments, rng)


def test_starts(count: int, segments: int, snippet_span: int) -> np.ndarray:
    """TSN's test snippets: the centres of `segments` equal segments of the positions."""
    return sampling.segment_centres(positions(count, snippet_span), segments)


def stack_channels(fields: np.ndarray) -> np.ndarray:
    """[n, L, H, W, c] -> [n, H, W, L * c], field-major: flow x1, y1, x2, y2, ...; frames r1, g1, b1, r2, ..."""
    n, length, height, width, c = fields.shape
    return np.ascontiguousarray(fields.transpose(0, 2, 3, 1, 4)).reshape(n, height, width, length * c)


class _Snippets:
    """A video seen as a video of snippets (video_chunks reads it as it reads frames): a context manager
    with `frames` (snippet positions), `channels`, `negate_x` (flow: a flip negates the even channels)
    and `read(starts)` -> uint8 [n, H, W, channels]."""

    negate_x = False

    def __init__(self, path: str | os.PathLike[str], new_length: int) -> None:
        self.path, self.new_length = os.fspath(path), new_length

    def __exit__(self, *exc: object) -> None:
        self._opened.__exit__(*exc)


class FlowSnippets(_Snippets):
    """A flow file of extract_flow.py: snippet i = fields i .. i + L - 1, 2L channels x1, y1, ..., xL, yL."""

    negate_x = True

    def __enter__(self) -> FlowSnippets:
        self.source = self._opened = h5py.File(self.path, "r")
        try:
            self.fields = len(self.source[extract.FLOW_KEY])
        except KeyError:
            self.source.close()
            raise KeyError(f"{self.path} holds no '{extract.FLOW_KEY}' dataset (not a flow file of extract_flow.py)"
                           ) from None
        if self.fields < 1:
            self.source.close()
            raise ValueError(f"{self.path} holds no flow field")
        self.frames, self.channels = positions(self.fields, self.new_length), 2 * self.new_length
        return self

    def read(self, starts: Sequence[int] | np.ndarray) -> np.ndarray:
        indices = stack_indices(starts, self.new_length, self.fields)
        fields = extract.read_fields(self.source, indices.ravel(), self.path)  # [n * L, H, W, 2]
        return stack_channels(fields.reshape(indices.shape + fields.shape[1:]))


class FrameSnippets(_Snippets):
    """A video: snippet i = frames i .. i + L, 3(L + 1) channels (their L differences are the model's input)."""

    def __enter__(self) -> FrameSnippets:
        self._opened = video_files.open_video(self.path)
        self.source = self._opened.__enter__()
        self.frames, self.channels = positions(self.source.frames, self.new_length + 1), 3 * (self.new_length + 1)
        return self

    def read(self, starts: Sequence[int] | np.ndarray) -> np.ndarray:
        indices = stack_indices(starts, self.new_length + 1, self.source.frames)
        frames = self.source.read(indices.ravel())  # [n * (L + 1), H, W, 3]
        return stack_channels(frames.reshape(indices.shape + frames.shape[1:]))


SNIPPETS = {"flow": FlowSnippets, "rgbdiff": FrameSnippets}


class SnippetReader:
    """What the test chunk loader (video_chunks.VideoChunkLoader) reads instead of frames: picklable, opens
    a video's snippets in the worker (`open(path)`)."""

    def __init__(self, modality: str, new_length: int) -> None:
        self.modality, self.new_length = modality, new_length

    def open(self, path: str | os.PathLike[str]) -> FlowSnippets | FrameSnippets:
        return SNIPPETS[self.modality](path, self.new_length)

    def length(self, path: str | os.PathLike[str]) -> int:
        """The snippet positions of a video (what the test plan picks from)."""
        with self.open(path) as snippets:
            return snippets.frames

    @property
    def channels(self) -> int:
        return shipped_channels(self.modality, self.new_length)

    @property
    def negate_x(self) -> bool:
        return SNIPPETS[self.modality].negate_x


def snippet_reader(modality: str, new_length: int) -> SnippetReader | None:
    """The test loader's reader for a modality: None for RGB (frames are read as they are)."""
    return None if modality == "rgb" else SnippetReader(modality, new_length)


def augment_stacks(
    stacks: np.ndarray, augment: bool, rng: np.random.Generator | None, size: int, negate_x: bool
) -> np.ndarray:
    """uint8 [n, H, W, C] -> uint8 [n, size, size, C]: one crop (resized to size x size) and flip for
    all stacks and channels (sampling's augmentation); a flip also maps the x channels (even ones) to
    255 - x when negate_x (flow); brightness only for frames (not negate_x)."""
    n, height, width, channels = stacks.shape
    crop, flip, brightness = sampling._augment_params(rng, height, width) if augment else (None, False, 0)
    if crop is not None:
        stacks = stacks[:, crop[0]:crop[1], crop[2]:crop[3]]
    out = np.empty((n, size, size, channels), dtype=np.uint8)
    for i in range(n):
        cv2.resize(np.ascontiguousarray(stacks[i]), (size, size), dst=out[i], interpolation=cv2.INTER_LINEAR)
        if flip:
            cv2.flip(out[i], 1, dst=out[i])
    if flip and negate_x:
        out[..., 0::2] = codec.LEVELS - out[..., 0::2]
    if brightness and not negate_x:
        flat = out.reshape(n * size, size * channels)  # one-channel view: a scalar reaches every byte
        (cv2.add if brightness > 0 else cv2.subtract)(flat, abs(brightness), dst=flat)
    return out


def _segments_raw(modality, path, augment, rng, size, segments, centres, new_length):
    with SNIPPETS[modality](path, new_length) as snippets:
        starts = (sampling.segment_centres(snippets.frames, segments) if centres
                  else sampling.segment_offsets(snippets.frames, segments, rng))
        stacks = snippets.read(starts)
        negate_x = snippets.negate_x
    out = augment_stacks(stacks, augment, rng, size, negate_x)
    return out if segments > 1 else out[0]


def _flow_segments_raw(path, augment, rng, size=sampling.IMAGE_SIZE, segments=3, centres=False, new_length=5):
    """uint8 [segments, size, size, 2L] (or [size, size, 2L] for one segment): TSN's flow sample, a
    stack of L fields from each segment of the flow file `path` (random offset, or the centres)."""
    return _segments_raw("flow", path, augment, rng, size, segments, centres, new_length)


def _rgbdiff_segments_raw(path, augment, rng, size=sampling.IMAGE_SIZE, segments=3, centres=False, new_length=5):
    """uint8 [segments, size, size, 3(L + 1)] (or [size, size, 3(L + 1)]): TSN's RGB-difference sample,
    L + 1 consecutive frames of the video `path` from each segment."""
    return _segments_raw("rgbdiff", path, augment, rng, size, segments, centres, new_length)


def sample_kind(modality: str, segments: int) -> str:
    """The BatchLoader kind of a frame-model run: "frame" (one RGB frame), "segments" (TSN RGB), or the
    motion modality ("flow", "rgbdiff"; one segment or K)."""
    if modality == "rgb":
        return "frame" if segments == 1 else "segments"
    return modality


def loader_kwargs(modality: str, segments: int, new_length: int) -> dict[str, int]:
    kind = sample_kind(modality, segments)
    return {"frame": {}, "segments": {"segments": segments}}.get(kind, {"segments": segments, "new_length": new_length})


def default_flow_dir(args: argparse.Namespace) -> str:
    """Where extract_flow.py writes a run's flow by default (listing.py): beside the frames, DATA_DIR/UCF-101-flow
    (or hmdb51-flow), or for an annotation CSV beside its videos folder, `<videos>-flow`."""
    if getattr(args, "annotations", None):
        return listing.annotated_out_dir(args.videos)
    return listing.default_out_dir(args.data_dir, args.dataset)


def _same_folder(a, b) -> bool:
    return bool(a) and bool(b) and os.path.abspath(a) == os.path.abspath(b)


def flow_dir_of_test(args: argparse.Namespace, trained: dict) -> str:
    """A test's --flow-dir when it is not given: the training run's flow folder when the test reads the
    training's data (its --data-dir, or for an annotation CSV its --videos folder), else the default of the
    test's data (default_flow_dir)."""
    same_data = (_same_folder(trained.get("videos"), getattr(args, "videos", None))
                 if getattr(args, "annotations", None) else _same_folder(trained.get("data_dir"), args.data_dir))
    if trained.get("flow_dir") and same_data:
        return trained["flow_dir"]
    return default_flow_dir(args)


def extract_command(flow_dir: str, args: argparse.Namespace | None) -> str:
    """The extract_flow.py call that writes a run's flow to flow_dir."""
    if getattr(args, "annotations", None):
        return f"extract_flow.py --annotations {args.annotations} --videos {args.videos} --out {flow_dir}"
    return f"extract_flow.py --out {flow_dir}"


def input_paths(
    modality: str, flow_dir: str, args: argparse.Namespace | None = None
) -> Callable[[Sequence[str]], list[str]] | None:
    """paths_of for the engine: video paths -> the files the loader reads (flow: `<flow_dir>/<Class>/
    <video>.hdf5`, or `<flow_dir>/<uid>.hdf5` for an annotation CSV's segments (args.annotations), every one
    checked to exist), or None when the videos themselves are read. With `args` (flow), the files' extraction
    settings (recorded.ARG_KEYS) are read and set on args, where the checkpoint keeps them; settings args
    already holds (the other subset's, or the checkpoint's at test) must be the files' own."""
    if modality != "flow":
        return None
    by_uid = bool(getattr(args, "annotations", None))

    def paths_of(paths: Sequence[str]) -> list[str]:
        flow_paths = [str(listing.output_path(flow_dir, listing.video_name(p, by_uid))) for p in paths]
        missing = [p for p in flow_paths if not os.path.isfile(p)]
        if missing:
            raise guards.UserError(f"--flow-dir {flow_dir}: {len(missing)} of {len(paths)} videos have no flow file "
                                   f"(e.g. {missing[0]}): run {extract_command(flow_dir, args)} first")
        if args is not None and flow_paths:
            record_settings(args, flow_dir, flow_paths)
        return flow_paths
    return paths_of


def record_settings(args: argparse.Namespace, flow_dir: str, flow_paths: Sequence[str]) -> None:
    """Set recorded.ARG_KEYS on args from the flow files, or check them against the values args holds."""
    try:
        found = recorded.folder_settings(list(flow_paths))
    except ValueError as e:
        raise guards.UserError(f"--flow-dir {flow_dir}: {e}") from None
    held = {k: getattr(args, k, None) for k in recorded.ARG_KEYS}
    if all(v is not None for v in held.values()) and held != found:
        def words(values: dict) -> str:
            return recorded.describe(recorded.settings_of(values)[0])
        raise guards.UserError(f"--flow-dir {flow_dir} holds flow made with {words(found)}, but the model was "
                               f"trained on flow made with {words(held)}: extract the flow again with those settings "
                               f"(extract_flow.py --out DIR), and give that --flow-dir")
    for key, value in found.items():
        setattr(args, key, value)


def chunk_snippets(chunk_frames: int, modality: str, new_length: int) -> int:
    """Test chunk length in snippets holding about as many bytes as `chunk_frames` RGB frames."""
    return max(1, chunk_frames * 3 // shipped_channels(modality, new_length))
