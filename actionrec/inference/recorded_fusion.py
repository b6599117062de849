"""The fusion of the predictors that combine_results.py recorded in a results.json: each predictor matched
to a model of it (by checkpoint path, else by name, and among several tests of one checkpoint to the one
tested as predict.py tests it), then the fusion of exactly those models."""
import json
import os

from actionrec import guards
from actionrec.engine import runner
from actionrec.inference import predictor

# The settings that make a model's scores what they are, per test mode of model.json's "test" (the 3D
# ResNet tested in two modes is two models of a results.json, of one checkpoint).
TEST_SETTINGS = {"frames": ("frames", "crops"), "sliding": ("clip_len", "stride", "crops"),
                 "full": ("clip_len", "max_frames", "crops"), "windows": ("max_frames", "frame_stride")}


def test_differences(p: predictor.Predictor, model: object) -> list[str]:
    """The settings in which a results.json model's test (its model.json "test") differs from how predict.py
    tests predictor p: ["mode"] for another mode, [] when they agree or the test is not recorded."""
    test = model.get("test") if isinstance(model, dict) else None
    if not isinstance(test, dict) or "mode" not in test:
        return []
    if test["mode"] != p.test["mode"]:
        return ["mode"]
    return [key for key in TEST_SETTINGS.get(p.test["mode"], ()) if key in test and test[key] != p.test.get(key)]


def tested_as(model: object) -> str:
    """How a results.json model was tested, in words."""
    model = model if isinstance(model, dict) else {}
    test = model.get("test") if isinstance(model.get("test"), dict) else {}
    return model.get("test_description") or test.get("description") or "test not recorded"


def candidate_models(results_path: str, models: dict, p: predictor.Predictor) -> list[str]:
    """The models of a results.json that are p's checkpoint (else the model of p's name), or a UserError."""
    checkpoint = os.path.realpath(p.path)
    same_checkpoint = [name for name, m in models.items()
                       if isinstance(m, dict) and isinstance(m.get("checkpoint"), str)
                       and os.path.realpath(m["checkpoint"]) == checkpoint]
    candidates = same_checkpoint or ([p.name] if p.name in models else [])
    if not candidates:
        raise guards.UserError(f"--weights {results_path}: cannot be matched: {p.path} is none of its models "
                               f"({', '.join(models)}) by checkpoint path or by name ({p.name})")
    return candidates


def recorded_model(results_path: str, models: dict, p: predictor.Predictor) -> tuple[str, str]:
    """(name, how it was chosen, in words) of the model of a results.json that is predictor p tested as
    predict.py tests it: of the models of p's checkpoint (else the model of p's name), the one of p's test
    mode, preferably with p's other settings too (frames, stride, ...); or a UserError line."""
    candidates = candidate_models(results_path, models, p)
    differences = {name: test_differences(p, models[name]) for name in candidates}
    same_mode = [name for name in candidates if differences[name] != ["mode"]]
    if not same_mode:
        raise guards.UserError(f"--weights {results_path}: cannot be matched: {p.path} is in it only as "
                               + ", ".join(f"{name} ({tested_as(models[name])})" for name in candidates)
                               + f", and predict.py tests it in {p.test['mode']} mode ({p.test['description']}): "
                               f"give combine_results.py a test of that mode")
    exact = [name for name in same_mode if not differences[name]]
    chosen = exact or same_mode
    if len(chosen) > 1:
        chosen = [name for name in chosen if name == p.name] or chosen
    if len(chosen) > 1:
        alike = "" if exact else f" of {p.test['mode']} mode, none"
        raise guards.UserError(f"--weights {results_path}: cannot be matched: {p.path} is several of its models"
                               f"{alike} tested as predict.py tests it ({p.test['description']}): "
                               + ", ".join(f"{name} ({tested_as(models[name])})" for name in chosen))
    name = chosen[0]
    how = f"{p.name} as its {name} ({tested_as(models[name])}"
    if differences[name]:
        how += f"; predict.py: {p.test['description']}"
    how += ")" + "".join(f", not {other} ({tested_as(models[other])})" for other in candidates if other != name)
    return name, how


def read_results(results_path: str) -> tuple[dict, dict]:
    """(models, fusions) of a combine_results.py results.json, or a UserError line."""
    try:
        with open(results_path, encoding="utf-8") as f:
            results = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise guards.UserError(f"--weights {results_path}: not a readable results.json "
                               f"({runner.one_line(e)})") from None
    models, fusions = (results.get("models"), results.get("fusions")) if isinstance(results, dict) else (None, None)
    if not isinstance(models, dict) or not isinstance(fusions, dict):
        raise guards.UserError(f"--weights {results_path}: not a results.json of combine_results.py "
                               f"(no models/fusions)")
    return models, fusions


def recorded_fusion(results_path: str, predictors: list[predictor.Predictor],
                    rule: str | None) -> tuple[str, list[float], str, list[float]]:
    """(rule, weights in predictors' order, description, temperatures in predictors' order) of the fusion
    that combine_results.py recorded in `results_path` for exactly these models (recorded_model: by
    checkpoint path, else by name, and by how predict.py tests each), or a UserError. The description says
    which fusion and models were taken."""
    models, fusions = read_results(results_path)
    matched, hows = [], []
    for p in predictors:
        name, how = recorded_model(results_path, models, p)
        if name in matched:
            raise guards.UserError(f"--weights {results_path}: cannot be matched: {p.path} and "
                                   f"{predictors[matched.index(name)].path} are both its model {name}")
        matched.append(name)
        hows.append(how)
    for fusion_name, fusion in fusions.items():
        members = fusion.get("members") or []
        if sorted(members) == sorted(matched) and (rule is None or fusion.get("rule") == rule):
            weights = [float(fusion["weights"][members.index(m)]) for m in matched]
            # --weights auto records a temperature per member (older results.json files: none, i.e. 1)
            recorded = fusion.get("temperatures") or [1.0] * len(members)
            temperatures = [float(recorded[members.index(m)]) for m in matched]
            return (fusion["rule"], weights, f"fusion {fusion_name} of {results_path}; " + "; ".join(hows),
                    temperatures)
    raise guards.UserError(f"--weights {results_path}: cannot be matched: it records no fusion of exactly "
                           f"{', '.join(matched)}" + (f" with rule {rule}" if rule else "")
                           + f" (its fusions: {', '.join(fusions) or 'none'})")
