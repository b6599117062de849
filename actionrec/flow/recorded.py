"""The flow extraction a flow model was trained on, so that predict.py computes the same flow for a video
of one's own.

At training time (train_single_frame.py --modality flow) the attributes that extract_flow.py writes into
every flow file (extract.py: method, bound, width/height, storage, resize, the JPEG quality) are read from
every file the run trains and evaluates on, checked to be one setting, and kept in the checkpoint's args
as plain values (ARG_KEYS: flow_method, flow_size, flow_bound, flow_storage, flow_quality); test_single_frame.py
copies them into model.json. predict.py reads them back (settings_of). A checkpoint written before they were
recorded gets DEFAULT, extract_flow.py's defaults, and a note saying so.
"""
import os

import h5py

from actionrec.flow import codec, extract, methods

ARG_KEYS = ("flow_method", "flow_size", "flow_bound", "flow_storage", "flow_quality")
DEFAULT = extract.FlowSettings(method=methods.DEFAULT_METHOD, size=extract.DEFAULT_SIZE, bound=codec.BOUND,
                               storage="raw", quality=extract.JPEG_QUALITY)


def file_settings(path: str) -> dict:
    """The extraction settings of one finished flow file, as ARG_KEYS values; ValueError naming the file
    when it is not one. A file written before the `resize` attribute existed says its frame size."""
    try:
        with h5py.File(path, "r") as f:  # one open: training reads every file of the run
            ds, attrs = f.get(extract.FLOW_KEY), f.attrs
            if not isinstance(ds, h5py.Dataset) or len(ds) != int(attrs["pairs"]):
                raise ValueError("no complete flow dataset")
            found = {key: attrs[key] for key in (*extract.SETTING_ATTRS, "resize") if key in attrs}
            found["quality"] = ds.attrs.get("quality", extract.JPEG_QUALITY)
        found = {k: v.decode() if isinstance(v, bytes) else v for k, v in found.items()}
        size = str(found.get("resize") or f"{int(found['width'])}x{int(found['height'])}")
        return {"flow_method": str(found["method"]), "flow_size": size, "flow_bound": float(found["bound"]),
                "flow_storage": str(found["storage"]), "flow_quality": int(found["quality"])}
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise ValueError(f"{path} is not a finished flow file of extract_flow.py ({e})") from None


def folder_settings(paths: list[str]) -> dict:
    """The one extraction setting of the flow files `paths` (ARG_KEYS values); ValueError naming two files
    of different settings (a model trained on a mixture has no one flow to compute for a new video)."""
    first, found = None, None
    for path in paths:
        settings = file_settings(os.fspath(path))
        if found is None:
            first, found = path, settings
        elif settings != found:
            differ = ", ".join(f"{k[5:]} {found[k]} / {settings[k]}" for k in ARG_KEYS if settings[k] != found[k])
            raise ValueError(f"the flow files were made with different settings ({first} and {path}: {differ}); "
                             f"extract them again with one setting (extract_flow.py --no-resume)")
    if found is None:
        raise ValueError("no flow file to read the extraction settings from")
    return found


def parse_size(text: str):
    """"WxH" -> (W, H); "native" -> None."""
    if text == "native":
        return None
    width, _, height = text.partition("x")
    return int(width), int(height)


def settings_of(trained: dict, raft_weights: str | None = None) -> tuple[extract.FlowSettings, bool]:
    """(the FlowSettings a flow checkpoint's training args record, whether they were recorded): DEFAULT
    for a checkpoint written before they were."""
    if not all(trained.get(k) is not None for k in ARG_KEYS):
        return DEFAULT._replace(raft_weights=raft_weights), False
    return extract.FlowSettings(
        method=str(trained["flow_method"]), size=parse_size(str(trained["flow_size"])),
        bound=float(trained["flow_bound"]), storage=str(trained["flow_storage"]),
        quality=int(trained["flow_quality"]), raft_weights=raft_weights), True


def describe(settings: extract.FlowSettings) -> str:
    """"dis-medium, 340x256, bound 20, raw": a setting in extract_flow.py's words."""
    storage = settings.storage + (f" (quality {settings.quality})" if settings.storage == "jpeg" else "")
    return f"{settings.method}, {extract.size_setting(settings.size)}, bound {settings.bound:g}, {storage}"


def as_record(settings: extract.FlowSettings) -> dict:
    """model.json's record of a flow extraction: method, size, bound, storage, quality."""
    return {"method": settings.method, "size": extract.size_setting(settings.size), "bound": settings.bound,
            "storage": settings.storage, "quality": settings.quality}
