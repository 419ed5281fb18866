"""The ONNX export check: five run kinds trained on the shared datasets, each exported, checked
with onnx.checker (full_check) and scored with onnxruntime on the raw test Parquet, against
`trainyard predict` on the same file: every probability within 1e-5, the same argmax on every
row, and a `label` output that names the argmax class.

The adult copies carry what real data has and the plain files lack: nulls and NaN in numeric
columns (at train time too, so the missing-indicator columns exist), categorical values never
seen in training, nulls in categorical columns, and rows of groups without a model and of groups
never seen. The script fails if a copy does not hold each of these.

Usage: onnx_check.py --trainyard BIN --datasets DIR --work DIR
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

TOLERANCE = 1e-5
NULL_STRING = "<null>"  # one case exports with a null string of its own


def run(*args):
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(map(str, args))} exited {done.returncode}:\n{done.stderr[-4000:]}")
    return done.stdout


def with_nulls(column, every, offset):
    """The column with every `every`-th value (from `offset`) null."""
    mask = np.zeros(len(column), dtype=bool)
    mask[offset::every] = True
    return pc.if_else(pa.array(mask), pa.nulls(len(column), column.type), column)


def adult_copies(src, work):
    """Train and test copies of adult with nulls, NaN, unseen levels and unseen groups."""
    train = pq.read_table(src / "train.parquet")
    test = pq.read_table(src / "test.parquet")

    def edit(t, test_side):
        cols = {name: t.column(name).combine_chunks() for name in t.column_names}
        # float64, as Spark and pandas write, with NaN as well as nulls.
        fnlwgt = cols["fnlwgt"].cast(pa.float64()).to_numpy(zero_copy_only=False).copy()
        fnlwgt[5::41] = np.nan
        cols["fnlwgt"] = pa.array(fnlwgt)
        cols["age"] = with_nulls(cols["age"], 29, 3)
        cols["hours-per-week"] = with_nulls(cols["hours-per-week"], 53, 7)
        if test_side:
            # Missing at test time only: imputed with the train mean, no indicator column.
            cols["capital-gain"] = with_nulls(cols["capital-gain"], 31, 1)
            # A categorical int64 input in one case: its nulls are the smallest int64.
            cols["education-num"] = with_nulls(cols["education-num"], 59, 11)
            n = t.num_rows
            for name, every, value in [
                ("education", 37, "a level never seen"),
                ("occupation", 43, "an occupation never seen"),  # also an unseen group
                ("race", 47, None),  # null where train had none
            ]:
                values = cols[name].to_pylist()
                for i in range(2, n, every):
                    values[i] = value
                cols[name] = pa.array(values, pa.string())
        return pa.table(cols)

    out = {}
    for side, t in [("train", train), ("test", test)]:
        path = work / f"adult-{side}.parquet"
        pq.write_table(edit(t, side == "test"), path)
        out[side] = path
    return out


def digits_copies(src, work):
    """Digits as it is for training; the test copy has nulls in a few pixels."""
    test = pq.read_table(src / "test.parquet")
    cols = {name: test.column(name).combine_chunks() for name in test.column_names}
    for k, name in enumerate(["pixel_2_3", "pixel_4_4", "pixel_5_2"]):
        cols[name] = with_nulls(cols[name], 17, k)
    path = work / "digits-test.parquet"
    pq.write_table(pa.table(cols), path)
    return {"train": src / "train.parquet", "test": path}


def spec(name, reference, files, model, **extra):
    features = dict(reference["features"])
    features["min_category_count"] = 20  # rare levels go to <other>
    s = {
        "name": name,
        "data": {"features": [str(files["train"])]},
        "label": reference["label_column"],
        "features": features,
        "holdout": {"files": [str(files["test"])]},
        "model": model,
    }
    s.update(extra)
    return s


def feeds(session, table, null_string):
    """onnxruntime's inputs from the raw Parquet columns: numbers as float64 with NaN for
    nulls, strings with the null string for nulls, integers as int64."""
    out = {}
    for i in session.get_inputs():
        column = table.column(i.name).combine_chunks()
        if i.type == "tensor(double)":
            out[i.name] = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
        elif i.type == "tensor(string)":
            out[i.name] = np.array([null_string if v is None else str(v) for v in column.to_pylist()], dtype=object)
        elif i.type == "tensor(int64)":
            out[i.name] = column.cast(pa.int64()).fill_null(np.iinfo(np.int64).min).to_numpy()
        else:
            sys.exit(f"input {i.name}: unexpected type {i.type}")
    return out


def check(case, trainyard, work, table, exported, run_dir, null_string, kind, coverage):
    model = onnx.load(str(exported))
    onnx.checker.check_model(model, full_check=True)
    meta = {p.key: p.value for p in model.metadata_props}
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert meta["run_id"] == manifest["run_id"], (meta, manifest["run_id"])
    assert meta["spec_sha256"] == manifest["spec_sha256"]
    assert meta["trainyard_version"] == manifest["trainyard_version"]
    opsets = {o.domain: o.version for o in model.opset_import}
    assert opsets.get("", 0) >= 17 and opsets.get("ai.onnx.ml", 0) >= 3, opsets

    preds = work / f"{case}.predictions.parquet"
    run(trainyard, "predict", "--model", run_dir, "--data", work / f"{case}.test.parquet", "--out", preds)
    expected_table = pq.read_table(preds)
    classes = json.loads(meta["probability_columns"])
    if "score" in expected_table.column_names:
        s = expected_table.column("score").to_numpy()
        expected = np.stack([1.0 - s, s], axis=1)
    else:
        expected = np.stack([expected_table.column(f"probability_{c}").to_numpy() for c in classes], axis=1)

    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    probabilities, label = session.run(["probabilities", "label"], feeds(session, table, null_string))
    assert probabilities.shape == expected.shape, (probabilities.shape, expected.shape)
    assert probabilities.dtype == np.float64
    diff = float(np.max(np.abs(probabilities - expected)))
    argmax_ort, argmax_predict = probabilities.argmax(axis=1), expected.argmax(axis=1)
    mismatched = int(np.sum(argmax_ort != argmax_predict))
    names = np.array(classes, dtype=object)
    label_names = np.array([str(v).lower() if isinstance(v, np.bool_) else str(v) for v in label], dtype=object)
    label_wrong = int(np.sum(label_names != names[argmax_ort]))
    if "predicted" in expected_table.column_names:
        predicted = np.array([str(v) for v in expected_table.column("predicted").to_pylist()], dtype=object)
        label_wrong += int(np.sum(label_names != predicted))
    ok = diff <= TOLERANCE and mismatched == 0 and label_wrong == 0
    print(
        f"{case:22} {kind:34} rows {len(expected):6}  max |Δp| {diff:.2e}  argmax differs on {mismatched} rows"
        f"  label wrong on {label_wrong}  {coverage}  {'ok' if ok else 'FAILED'}"
    )
    return ok


def coverage_of(table, run_dir):
    """What the test rows hold beyond the train rows' values: nulls, unseen levels, groups."""
    card = json.loads((run_dir / "model.json").read_text())
    p = card["pipeline"]
    numeric_missing = sum(
        int(pc.sum(pc.is_null(table.column(n["column"]), nan_is_null=True)).as_py() or 0) for n in p["numeric"]
    )
    unseen = null = 0
    for c in p["categorical"]:
        column = table.column(c["column"])
        null += column.null_count
        levels = {lv for lv in c["levels"] if lv is not None}
        unseen += sum(1 for v in column.to_pylist() if v is not None and str(v) not in levels)
    found = {"numeric nulls/NaN": numeric_missing, "categorical nulls": null, "unseen levels": unseen}
    if card.get("partition"):
        by = card["partition"]["by"]
        groups = pq.read_table(run_dir / "groups.parquet")
        kept = {
            str(g)
            for g, r in zip(groups.column("group").to_pylist(), groups.column("model_row").to_pylist())
            if r is not None
        }
        values = table.column(by).to_pylist()
        known = {
            str(g)
            for g, n in zip(groups.column("group").to_pylist(), groups.column("train_rows").to_pylist())
            if n
        }
        found["rows of groups with a model"] = sum(1 for v in values if v is not None and str(v) in kept)
        found["rows of groups without one"] = sum(1 for v in values if v is None or str(v) not in kept)
        found["rows of groups never seen"] = sum(1 for v in values if v is not None and str(v) not in known)
    return found


def readme_example(trainyard, work):
    """Runs the README's onnxruntime example against the quick start's exported model."""
    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text()
    section = readme[readme.index("## Exporting to ONNX") :]
    code = section[section.index("```python") + len("```python") : section.index("```", section.index("```python") + 3)]
    spec = json.loads((root / "examples" / "quickstart.json").read_text())
    for key in ["features", "labels"]:
        spec["data"][key] = [str(root / "examples" / p) for p in spec["data"][key]]
    spec_path = work / "quickstart.json"
    spec_path.write_text(json.dumps(spec))
    run_dir = work / "runs" / "quickstart"
    run(trainyard, "--log-format", "json", "train", spec_path, "--output", run_dir)
    run(trainyard, "export", run_dir, "--out", work / "quickstart.onnx")
    scope = {}
    cwd = Path.cwd()
    try:
        os.chdir(work)
        exec(compile(code, "README.md", "exec"), scope)
    finally:
        os.chdir(cwd)
    p, label = scope["probabilities"], scope["label"]
    ok = p.shape == (2, 2) and np.allclose(p.sum(axis=1), 1.0) and list(label) == list(p.argmax(axis=1))
    print(f"README example: probabilities {p.tolist()}, label {list(label)}  {'ok' if ok else 'FAILED'}")
    return ok


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--trainyard", required=True, type=Path)
    parser.add_argument("--datasets", required=True, type=Path)
    parser.add_argument("--work", required=True, type=Path)
    args = parser.parse_args()
    work = args.work
    references = {d: json.loads((args.datasets / d / "reference.json").read_text()) for d in ["adult", "digits"]}
    adult = adult_copies(args.datasets / "adult", work)
    digits = digits_copies(args.datasets / "digits", work)
    mlp = {"mlp": {"hidden": [32, 16], "epochs": 4, "batch_size": 256}}
    # Digits has 1,437 train rows: small batches and more epochs, so the network is a trained one.
    digits_mlp = {"mlp": {"hidden": [64, 32], "epochs": 40, "batch_size": 64}}
    cases = [
        # (case, dataset, files, spec extras, how it is exported, null string)
        ("binary-logistic", "adult", adult, {"model": {"logistic": {"l2": 1.0}}, "export": ["onnx"]}, "spec", ""),
        (
            "partitioned-logistic",
            "adult",
            adult,
            {
                "model": {"logistic": {"l2": 1.0}},
                "partition": {"by": "occupation", "min_rows": 800, "min_positives": 20, "select": "none", "l2": 1.0},
            },
            "cli",
            NULL_STRING,
        ),
        (
            "binary-mlp",
            "adult",
            adult,
            {"model": mlp, "features": {"categorical_nulls": "most_frequent", "int64": "education-num"}},
            "cli",
            "",
        ),
        ("multinomial-logistic", "digits", digits, {"model": {"logistic": {"l2": 1.0}}}, "cli", ""),
        ("multiclass-mlp", "digits", digits, {"model": digits_mlp, "export": ["onnx"]}, "spec", ""),
    ]
    ok = True
    for case, dataset, files, extras, how, null_string in cases:
        extra_features = extras.pop("features", {})
        # An integer column read as categorical levels, exported as an int64 input.
        int64 = extra_features.pop("int64", None)
        s = spec(case, references[dataset], files, extras.pop("model"), **extras)
        s["features"].update(extra_features)
        if int64:
            s["features"]["numeric"] = [c for c in s["features"]["numeric"] if c != int64]
            s["features"]["categorical"] = s["features"]["categorical"] + [int64]
        spec_path = work / f"{case}.json"
        spec_path.write_text(json.dumps(s, indent=1))
        run_dir = work / "runs" / case
        run(args.trainyard, "--log-format", "json", "train", spec_path, "--output", run_dir)
        test_copy = work / f"{case}.test.parquet"
        test_copy.write_bytes(Path(files["test"]).read_bytes())
        if how == "spec":
            exported = run_dir / "model.onnx"
        else:
            exported = work / f"{case}.onnx"
            flags = ["--int64", int64] if int64 else []
            run(args.trainyard, "export", run_dir, "--format", "onnx", "--out", exported, "--null-string", null_string, *flags)
        table = pq.read_table(test_copy)
        found = coverage_of(table, run_dir)
        missing = [what for what, n in found.items() if n == 0 and dataset == "adult"]
        if missing:
            print(f"{case}: the test rows hold no {', '.join(missing)}")
            ok = False
        kind = f"exported by {'the spec' if how == 'spec' else 'trainyard export'}"
        coverage = ", ".join(f"{n} {what}" for what, n in found.items() if n)
        ok &= check(case, args.trainyard, work, table, exported, run_dir, null_string, kind, coverage)
    ok &= readme_example(args.trainyard, work)
    if not ok:
        sys.exit("the ONNX check failed")
    print("every exported model scores as trainyard predict does")


if __name__ == "__main__":
    main()
