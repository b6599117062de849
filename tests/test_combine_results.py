"""combine_results.py on hand-built prediction files with known answers."""
import json
import os
import re
import subprocess
import sys

import h5py
import numpy as np
import pytest

import combine_results
import metrics

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Seven classes in classInd order; the last three have no test videos. "Foo_Bar&Baz" checks escaping.
CLASSES = ["Alpha", "Foo_Bar&Baz", "Gamma", "Delta", "Epsilon", "Zeta", "Eta"]

# Per test video: (label, single-frame distribution, 3D distribution) over the first four classes;
# the other three get 0.001 each. A file's logits are log(p), so its video score is log(p) up to a
# constant, and logmean ranks classes by p2d * p3d, prob by p2d + p3d, max by max(p2d, p3d).
VIDEOS = [
    (0, [.7, .1, .1, .1], [.3, .4, .2, .1]),        # single frame right, 3D wrong; every fusion right
    (0, [.9, .05, .025, .025], [.01, .6, .2, .19]),  # logmean wrong (class 1); prob and max right
    (1, [.55, .4, .025, .025], [.05, .4, .5, .05]),  # both wrong; logmean and prob fix it, max does not
    (1, [.1, .3, .4, .2], [.05, .8, .1, .05]),       # 3D right, single frame wrong
    (2, [.1, .1, .7, .1], [.1, .1, .7, .1]),         # both right
    (2, None, None),                                 # both wrong, true class ranked last of 7 (top-5 miss)
    (3, [.1, .1, .6, .2], [.1, .1, .1, .7]),         # 3D right, single frame wrong
    (3, [.1, .1, .1, .7], [.1, .1, .1, .7]),         # both right
]
LAST_RANKED = [.2, .2, .01, .4, .07, .06, .06]  # class 2 ranks 7th
SF_PREDICTIONS = [0, 0, 0, 2, 2, 3, 2, 3]
TD_PREDICTIONS = [1, 1, 2, 1, 2, 3, 3, 3]
EXPECTED_COMBINED = {  # (rule, weights) -> top-1 prediction of each video
    ("logmean", "0.5,0.5"): [0, 1, 1, 1, 2, 3, 3, 3],
    ("prob", "0.5,0.5"): [0, 0, 1, 1, 2, 3, 3, 3],
    ("max", "0.5,0.5"): [0, 0, 0, 1, 2, 3, 3, 3],
    ("logmean", "0.8,0.2"): [0, 0, 1, 1, 2, 3, 2, 3],
    ("prob", "0.2,0.8"): [0, 1, 2, 1, 2, 3, 3, 3],
}


def distribution(p):
    return np.array(LAST_RANKED if p is None else list(p) + [0.001] * 3)


def video_entries():
    """(class folder, video stem, label) of each test video."""
    counters = {}
    entries = []
    for label, _, _ in VIDEOS:
        name = CLASSES[label]
        counters[name] = counters.get(name, 0) + 1
        entries.append((name, f"v_{name}_g01_c{counters[name]:02d}", label))
    return entries


def write_dataset(root, classes=CLASSES):
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (root / "UCF-101-hdf5").mkdir()
    crlf = "\r\n"
    (lists / "classInd.txt").write_bytes("".join(f"{i + 1} {c}{crlf}" for i, c in enumerate(classes)).encode())
    (lists / "trainlist01.txt").write_bytes(
        "".join(f"{c}/v_{c}_g08_c01.avi {i + 1}{crlf}" for i, c in enumerate(classes)).encode())
    (lists / "testlist01.txt").write_bytes(
        "".join(f"{folder}/{stem}.avi{crlf}" for folder, stem, _ in video_entries()).encode())


def write_predictions(predictions_dir, which, rows=3, num_classes=len(CLASSES)):
    """Prediction files for the test videos; ``which`` 1 = single frame, 2 = 3D."""
    for (folder, stem, _), video in zip(video_entries(), VIDEOS):
        logits = np.log(distribution(video[which]))[:num_classes]
        logits = np.tile(logits, (rows, 1))
        metrics.write_predictions(os.path.join(predictions_dir, folder, stem + ".hdf5"), logits)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("combine")
    write_dataset(root / "data")
    sf_dir, td_dir = root / "runs" / "single_frame" / "predictions", root / "runs" / "3d" / "predictions"
    write_predictions(sf_dir, 1, rows=5)  # frames
    write_predictions(td_dir, 2, rows=2)  # clips
    with open(root / "runs" / "single_frame" / "log.jsonl", "w") as f:  # found beside the checkpoints
        for epoch in range(3):
            record = {"epoch": epoch, "train_loss": 2.0 / (epoch + 1), "train_acc": 0.3 + 0.2 * epoch}
            if epoch % 2:
                record["test_acc"] = 0.5
            f.write(json.dumps(record) + "\n")
    return root


def cli_args(root, output_dir, *extra):
    return ["--data-dir", str(root / "data"), "--single-frame", str(root / "runs" / "single_frame" / "predictions"),
            "--3d", str(root / "runs" / "3d" / "predictions"), "--output-dir", str(output_dir), *extra]


def run_main(root, output_dir, *extra):
    args = combine_results.get_args_parser().parse_args(cli_args(root, output_dir, *extra))
    return combine_results.main(args)


@pytest.fixture(scope="module")
def default_run(workspace):
    output_dir = workspace / "report"
    results = run_main(workspace, output_dir)
    return output_dir, results


def run_cli(*args):
    return subprocess.run([sys.executable, os.path.join(REPO_ROOT, "combine_results.py"), *args],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)


# ---------------------------------------------------------------------------
# Fusion arithmetic
# ---------------------------------------------------------------------------
def test_fuse_scores_rules():
    s2d, s3d = np.log([[0.6, 0.4]]), np.log([[0.2, 0.8]])
    np.testing.assert_allclose(combine_results.fuse_scores(s2d, s3d, "logmean"), 0.5 * s2d + 0.5 * s3d)
    np.testing.assert_allclose(combine_results.fuse_scores(s2d, s3d, "logmean", (1.0, 3.0)), s2d + 3 * s3d)
    np.testing.assert_allclose(combine_results.fuse_scores(s2d, s3d, "prob"), [[0.4, 0.6]])
    np.testing.assert_allclose(combine_results.fuse_scores(s2d, s3d, "prob", (3.0, 1.0)), [[0.5, 0.5]])
    np.testing.assert_allclose(combine_results.fuse_scores(s2d, s3d, "max"), [[0.3, 0.4]])
    np.testing.assert_allclose(combine_results.fuse_scores(s2d, s3d, "max", (3.0, 1.0)), [[0.45, 0.3]])


def test_default_run_top_k_and_fusion_fixes_a_video(default_run):
    output_dir, results = default_run
    n = len(VIDEOS)
    assert results["single_frame"]["top1"] == pytest.approx(4 / n)
    assert results["3d"]["top1"] == pytest.approx(4 / n)
    assert results["combined"]["top1"] == pytest.approx(6 / n)  # video 2: both wrong, fusion right
    for model in ("single_frame", "3d", "combined"):
        assert results[model]["top5"] == pytest.approx(7 / n)  # video 5 ranks its class 7th
        assert results[model]["top10"] == 1.0  # clipped to the 7 classes
        assert results[model]["videos"] == n
    assert results["fusion"]["rule"] == "logmean" and results["fusion"]["weights"] == [0.5, 0.5]
    labels = [label for label, _, _ in VIDEOS]
    for model, predictions in (("single_frame", SF_PREDICTIONS), ("3d", TD_PREDICTIONS),
                               ("combined", EXPECTED_COMBINED[("logmean", "0.5,0.5")])):
        cm = np.load(output_dir / f"confusion_{model}.npy")
        assert cm.dtype == np.int64
        np.testing.assert_array_equal(cm, metrics.confusion_matrix(labels, predictions, len(CLASSES)))


@pytest.fixture
def skip_drawing(monkeypatch):
    """Skip rendering figures and report.pdf (most of a run's time); tested once in default_run."""
    monkeypatch.setattr(combine_results, "save_figure", lambda fig, figures_dir, name: [])
    monkeypatch.setattr(combine_results, "write_report_pdf", lambda *args, **kwargs: None)


@pytest.mark.parametrize("rule,weights", sorted(EXPECTED_COMBINED))
def test_fusion_rules_and_weights(workspace, tmp_path, skip_drawing, rule, weights):
    results = run_main(workspace, tmp_path, "--fusion", rule, "--weights", weights)
    expected = EXPECTED_COMBINED[(rule, weights)]
    labels = [label for label, _, _ in VIDEOS]
    assert results["combined"]["top1"] == pytest.approx(np.mean(np.equal(expected, labels)))
    np.testing.assert_array_equal(np.load(tmp_path / "confusion_combined.npy"),
                                  metrics.confusion_matrix(labels, expected, len(CLASSES)))
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["fusion"]["rule"] == rule
    assert saved["fusion"]["weights"] == [float(w) for w in weights.split(",")]


# ---------------------------------------------------------------------------
# results.json
# ---------------------------------------------------------------------------
def test_results_json_fields_and_recomputed_numbers(default_run, workspace):
    output_dir, _ = default_run
    results = json.loads((output_dir / "results.json").read_text())
    for model in ("single_frame", "3d", "combined"):
        for key in ("top1", "top5", "top10", "mean_class_accuracy", "per_class_accuracy", "best_classes",
                    "worst_classes", "most_confused", "videos"):
            assert key in results[model], (model, key)
        assert list(results[model]["per_class_accuracy"]) == CLASSES
        assert results[model]["per_class_accuracy"]["Eta"] is None  # no test videos

    # Recompute from the prediction files, independently of metrics.py.
    labels = np.array([label for _, _, label in video_entries()])
    scores = {}
    for model, folder in (("single_frame", "single_frame"), ("3d", "3d")):
        rows = []
        for class_folder, stem, _ in video_entries():
            with h5py.File(workspace / "runs" / folder / "predictions" / class_folder / f"{stem}.hdf5", "r") as f:
                x = f["predictions"][()].astype(np.float64)
            rows.append((x - np.log(np.exp(x).sum(axis=1, keepdims=True))).mean(axis=0))
        scores[model] = np.array(rows)
    scores["combined"] = 0.5 * scores["single_frame"] + 0.5 * scores["3d"]
    for model, s in scores.items():
        predicted = s.argmax(axis=1)
        assert results[model]["top1"] == pytest.approx(np.mean(predicted == labels))
        ranks = (s > s[np.arange(len(labels)), labels][:, None]).sum(axis=1)  # no ties in this data
        assert results[model]["top5"] == pytest.approx(np.mean(ranks < 5))
        for c, name in enumerate(CLASSES[:4]):
            mask = labels == c
            assert results[model]["per_class_accuracy"][name] == pytest.approx(np.mean(predicted[mask] == c))

    # Video 2 (Foo_Bar&Baz) goes to Alpha under the single-frame model: half of its class.
    assert ["Foo_Bar&Baz", "Alpha", 0.5] in results["single_frame"]["most_confused"]
    sf_acc = results["single_frame"]["per_class_accuracy"]
    td_acc = results["3d"]["per_class_accuracy"]
    rows = results["spatial_vs_temporal"]
    assert [r["class"] for r in rows][:4] == ["Delta", "Foo_Bar&Baz", "Gamma", "Alpha"]  # by 3D gain
    for row in rows:
        if row["difference"] is not None:
            assert row["difference"] == pytest.approx(td_acc[row["class"]] - sf_acc[row["class"]])
    assert [r["class"] for r in rows if r["difference"] is None] == ["Epsilon", "Eta", "Zeta"]


# ---------------------------------------------------------------------------
# Tables, figures and the PDF report
# ---------------------------------------------------------------------------
def test_latex_tables_are_valid_and_escaped(default_run):
    output_dir, _ = default_run
    tex_files = sorted((output_dir / "tables").glob("*.tex"))
    names = {p.stem for p in tex_files}
    assert {"topk", "best_classes", "worst_classes", "spatial_vs_temporal", "most_confused_single_frame",
            "most_confused_3d", "most_confused_combined"} <= names
    for path in tex_files:
        text = path.read_text()
        assert text.count(r"\begin{tabular}") == text.count(r"\end{tabular}") == 1, path.name
        columns = len(re.search(r"\\begin\{tabular\}\{([lrc|]+)\}", text).group(1).replace("|", ""))
        rows = [line for line in text.splitlines() if line.rstrip().endswith(r"\\")]
        assert len(rows) >= 2, path.name
        for line in rows:
            assert len(re.findall(r"(?<!\\)&", line)) == columns - 1, (path.name, line)
            assert not re.search(r"(?<!\\)[%#$_^~]", line), (path.name, line)
        assert "Foo_Bar&Baz" not in text
    assert r"Foo\_Bar\&Baz" in (output_dir / "tables" / "best_classes.tex").read_text()


def test_latex_escape():
    assert combine_results.latex_escape(r"a_b&c%d#e$f{g}h~i^j\k") == \
        r"a\_b\&c\%d\#e\$f\{g\}h\textasciitilde{}i\textasciicircum{}j\textbackslash{}k"


def test_markdown_tables(default_run):
    output_dir, _ = default_run
    text = (output_dir / "tables.md").read_text()
    assert r"Foo\_Bar&Baz" in text
    for line in text.splitlines():
        if line.startswith("|"):
            assert line.endswith("|")


def test_table_captions_count_what_they_show(default_run, tmp_path, skip_drawing):
    output_dir, results = default_run
    text = (output_dir / "tables.md").read_text()
    pairs = len(results["single_frame"]["most_confused"])
    assert pairs > 1 and f"Single frame (ResNet-50): the {pairs} most confused pairs" in text
    # Both models right on every video (as in the demo): no empty "the 0 ..." captions.
    root = tmp_path / "perfect"
    write_dataset(root / "data")
    for which in ("single_frame", "3d"):
        for folder, stem, label in video_entries():
            logits = np.full((2, len(CLASSES)), -5.0)
            logits[:, label] = 5.0 if which == "3d" else 0.0
            metrics.write_predictions(str(root / "runs" / which / "predictions" / folder / f"{stem}.hdf5"), logits)
    run_main(root, root / "report")
    text = (root / "report" / "tables.md").read_text()
    assert "the 0" not in text
    assert "3D ResNet-50: no confused pairs (every test video was classified correctly)." in text
    assert "no class where the 3D model is better; no class where the single-frame model is better" in text
    latex = (root / "report" / "tables" / "most_confused_3d.tex").read_text()
    assert latex.count(r"\begin{tabular}") == latex.count(r"\end{tabular}") == 1
    text_table = combine_results.table_to_text(*combine_results.build_tables(
        json.loads((root / "report" / "results.json").read_text()), CLASSES)["most_confused_3d"])
    assert text_table.splitlines()[-1] == "(none)"  # the PDF's page of confused pairs
    assert combine_results.counted(1, "the most confused pair", "most confused pairs") == "the most confused pair"


def test_figures_and_pdf_report(default_run):
    output_dir, _ = default_run
    for name in ("confusion_single_frame", "confusion_3d", "confusion_combined", "per_class_accuracy", "topk",
                 "learning_curves"):  # the single-frame log.jsonl is found beside its predictions folder
        for ext in ("png", "pdf"):
            assert (output_dir / "figures" / f"{name}.{ext}").stat().st_size > 0, (name, ext)
    data = (output_dir / "report.pdf").read_bytes()
    assert data.startswith(b"%PDF")
    pages = len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", data))
    assert pages >= 3


def test_logs_flag(workspace, tmp_path, capsys):
    log = tmp_path / "3d_log.jsonl"
    log.write_text('{"epoch": 0, "train_loss": 1.0, "train_acc": 0.5}\nnot json\n')
    run_main(workspace, tmp_path / "out", "--logs", f",{log}")
    assert (tmp_path / "out" / "figures" / "learning_curves.png").exists()
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["inputs"]["logs"]["3d"] == str(log)
    out = capsys.readouterr().out
    assert "Combined" in out and "report.pdf" in out


# ---------------------------------------------------------------------------
# Refusals and user errors
# ---------------------------------------------------------------------------
def copy_predictions(workspace, tmp_path):
    """A writable copy of both prediction folders, so a test can break one."""
    import shutil
    runs = tmp_path / "runs"
    shutil.copytree(workspace / "runs", runs)
    (tmp_path / "data").symlink_to(workspace / "data")
    return tmp_path


def test_refuses_missing_videos(workspace, tmp_path):
    root = copy_predictions(workspace, tmp_path)
    (root / "runs" / "3d" / "predictions" / "Gamma" / "v_Gamma_g01_c02.hdf5").unlink()
    result = run_cli(*cli_args(root, tmp_path / "out"))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "Gamma/v_Gamma_g01_c02" in result.stderr and "1 of 8" in result.stderr and "--3d" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "results.json").exists()


def test_refuses_many_missing_videos_naming_the_first_few(workspace, tmp_path):
    root = copy_predictions(workspace, tmp_path)
    folder = root / "runs" / "single_frame" / "predictions"
    for path in sorted(folder.rglob("*.hdf5"))[:7]:
        path.unlink()
    (folder / "Gamma" / "v_Gamma_g01_c02.hdf5").write_bytes(b"corrupt")  # a broken file counts as missing
    result = run_cli(*cli_args(root, tmp_path / "out"))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "8 of 8" in result.stderr and "and 3 more" in result.stderr and "--single-frame" in result.stderr


def test_refuses_wrong_class_count(workspace, tmp_path):
    root = tmp_path
    (root / "data").symlink_to(workspace / "data")
    (root / "runs" / "single_frame").mkdir(parents=True)
    (root / "runs" / "single_frame" / "predictions").symlink_to(workspace / "runs" / "single_frame" / "predictions")
    write_predictions(root / "runs" / "3d" / "predictions", 2, rows=1, num_classes=6)
    result = run_cli(*cli_args(root, tmp_path / "out"))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "6 classes" in result.stderr and "lists 7" in result.stderr


@pytest.mark.parametrize("extra,message", [
    (["--weights", "1"], "--weights"),
    (["--weights", "a,b"], "--weights"),
    (["--weights", "0,0"], "--weights"),
    (["--logs", "only_one.jsonl"], "--logs"),
    (["--logs", ",does_not_exist.jsonl"], "does_not_exist.jsonl"),
])
def test_user_errors_exit_2_with_one_line(workspace, tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as info:
        run_main(workspace, tmp_path, *extra)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_missing_directories_exit_2(workspace, tmp_path):
    result = run_cli("--data-dir", str(tmp_path / "nowhere"), "--single-frame", str(tmp_path),
                     "--3d", str(tmp_path), "--output-dir", str(tmp_path / "out"))
    assert result.returncode == 2 and "Traceback" not in result.stderr and "classInd.txt" in result.stderr
    result = run_cli(*cli_args(workspace, tmp_path / "out")[:4], "--3d", str(tmp_path / "nope"),
                     "--output-dir", str(tmp_path / "out"))
    assert result.returncode == 2 and "Traceback" not in result.stderr and "nope" in result.stderr


def test_help_states_defaults():
    text = combine_results.get_args_parser().format_help()
    for default in ("default: 1", "default: report/", "default: logmean", "default: 0.5,0.5"):
        assert default in text
