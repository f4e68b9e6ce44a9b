"""`lwm spec table|image|text INPUT -o stat.json` writes specs that load back."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lwm.client.cli import main
from lwm.spec import RKMEImageSpecification, RKMETableSpecification, RKMETextSpecification, load_stat_spec

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
from spec_fixture_data import SENTENCES, blob_images


def test_table_from_csv_with_header(tmp_path, capsys):
    X = np.random.default_rng(0).normal(size=(120, 3))
    pd.DataFrame(X, columns=["a", "b", "c"]).to_csv(tmp_path / "data.csv", index=False)
    assert main(["spec", "table", str(tmp_path / "data.csv"), "-o", str(tmp_path / "stat.json")]) == 0
    spec = load_stat_spec(tmp_path / "stat.json")
    assert isinstance(spec, RKMETableSpecification) and spec.num_points == 120
    assert "RKMETableSpecification" in capsys.readouterr().out
    direct = RKMETableSpecification(device="cpu")
    direct.generate_stat_spec_from_data(X)
    assert abs(spec.dist(direct)) < 1e-10


def test_image_from_npy(tmp_path):
    np.save(tmp_path / "images.npy", blob_images(10, seed=0))
    assert main(["spec", "image", str(tmp_path / "images.npy"), "-o", str(tmp_path / "stat.json")]) == 0
    spec = load_stat_spec(tmp_path / "stat.json")
    assert isinstance(spec, RKMEImageSpecification) and spec.get_z().shape[1:] == (3, 32, 32)


def test_text_from_txt_and_csv_column(tmp_path):
    sentences = SENTENCES["text_a"]
    (tmp_path / "lines.txt").write_text("\n".join(sentences[:6]) + "\n\n" + "\n".join(sentences[6:]) + "\n")
    pd.DataFrame({"id": range(len(sentences)), "sentence": sentences}).to_csv(tmp_path / "texts.csv", index=False)
    assert main(["spec", "text", str(tmp_path / "lines.txt"), "-o", str(tmp_path / "a.json")]) == 0
    assert main(["spec", "text", str(tmp_path / "texts.csv"), "--column", "sentence", "-o", str(tmp_path / "b.json")]) == 0
    a, b = load_stat_spec(tmp_path / "a.json"), load_stat_spec(tmp_path / "b.json")
    assert isinstance(a, RKMETextSpecification) and a.num_points == len(sentences)
    assert abs(a.dist(b)) < 1e-10  # blank lines skipped, same sentences


@pytest.mark.parametrize(
    "kind, file_name, content, message",
    [
        ("image", "images.csv", "1,2\n3,4\n", "must be a .npy"),
        ("image", "flat.npy", np.ones((5, 4)), "(N, C, H, W)"),
        ("text", "texts.csv", "sentence\nhello\nworld\n", "no column 'missing'"),
        ("table", "header_only.csv", "a,b,c\n", "at least one row"),
    ],
)
def test_bad_input_exits_with_a_clear_message(tmp_path, capsys, kind, file_name, content, message):
    path = tmp_path / file_name
    if isinstance(content, np.ndarray):
        np.save(path, content)
    else:
        path.write_text(content)
    extra = ["--column", "missing"] if kind == "text" else []
    assert main(["spec", kind, str(path), "-o", str(tmp_path / "out.json"), *extra]) == 4
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out.json").exists()
