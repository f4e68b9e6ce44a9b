"""Reading, validating and extracting learnware zips (lwm.learnware.archive)."""

from __future__ import annotations

import io
import json
import os
import stat
import zipfile
from pathlib import Path

import pytest
import yaml

from lwm.learnware.archive import (
    LearnwareArchive,
    LearnwareFormatError,
    dump_learnware_yaml,
    extract_archive,
    parse_learnware_yaml,
)

YAML = """\
model:
  class_name: MyModel
  kwargs: {}
stat_specifications:
  - module_path: learnware.specification
    class_name: RKMETableSpecification
    file_name: rkme.json
    kwargs: {}
"""


def learnware_files(**overrides: str | bytes | None) -> dict[str, str | bytes]:
    files: dict[str, str | bytes | None] = {
        "learnware.yaml": YAML,
        "__init__.py": "from learnware.model import BaseModel\nclass MyModel(BaseModel): pass\n",
        "rkme.json": json.dumps({"type": "RKMETableSpecification", "z": [[1.0, 2.0]]}),
        "requirements.txt": "numpy\n",
        "model.pkl": b"\x80\x04N.",
    }
    files.update(overrides)
    return {name: data for name, data in files.items() if data is not None}


def make_zip(files: dict[str, str | bytes], prefix: str = "") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(prefix + name, data)
    return buf.getvalue()


def test_flat_zip() -> None:
    archive = LearnwareArchive.from_bytes(make_zip(learnware_files()))
    assert archive.root == ""
    assert archive.names == ["__init__.py", "learnware.yaml", "model.pkl", "requirements.txt", "rkme.json"]
    assert archive.config.model_class_name == "MyModel"
    assert archive.config.model_kwargs == {}
    assert archive.config.model_module_path == "__init__.py"
    [spec] = archive.config.stat_specs
    assert (spec.module_path, spec.class_name, spec.file_name, spec.kwargs) == (
        "learnware.specification",
        "RKMETableSpecification",
        "rkme.json",
        {},
    )
    assert archive.env_file == "requirements.txt"
    assert archive.stat_spec_json() == {"type": "RKMETableSpecification", "z": [[1.0, 2.0]]}
    assert archive.stat_spec_json("RKMETableSpecification")["z"] == [[1.0, 2.0]]
    assert archive.read("model.pkl") == b"\x80\x04N."
    assert archive.semantic_spec() is None


def test_nested_zip_with_macosx_folder(tmp_path: Path) -> None:
    data = make_zip({**{f"my_lw/{k}": v for k, v in learnware_files().items()}, "__MACOSX/my_lw/._x": b"junk"})
    path = tmp_path / "lw.zip"
    path.write_bytes(data)
    archive = LearnwareArchive.from_path(path)
    assert archive.root == "my_lw"
    assert "learnware.yaml" in archive.names and "__MACOSX/my_lw/._x" not in archive.names
    assert archive.config.model_class_name == "MyModel"


def test_not_a_zip() -> None:
    with pytest.raises(LearnwareFormatError, match="not a zip file"):
        LearnwareArchive.from_bytes(b"definitely not a zip")


@pytest.mark.parametrize(
    ("missing", "named"),
    [
        ("learnware.yaml", "learnware.yaml"),
        ("__init__.py", "__init__.py"),
        ("rkme.json", "rkme.json"),
        ("requirements.txt", "requirements.txt"),
    ],
)
def test_missing_file_is_named(missing: str, named: str) -> None:
    with pytest.raises(LearnwareFormatError, match=named.replace(".", r"\.")):
        LearnwareArchive.from_bytes(make_zip(learnware_files(**{missing: None})))


def test_environment_yaml_is_preferred() -> None:
    files = learnware_files(**{"environment.yaml": "dependencies: [numpy]\n"})
    assert LearnwareArchive.from_bytes(make_zip(files)).env_file == "environment.yaml"
    files = learnware_files(**{"environment.yaml": "dependencies: [numpy]\n", "requirements.txt": None})
    assert LearnwareArchive.from_bytes(make_zip(files)).env_file == "environment.yaml"


@pytest.mark.parametrize("bad_name", ["../evil.py", "lw/../../evil.py", "/etc/evil", "..\\evil.py"])
def test_path_traversal_rejected(bad_name: str) -> None:
    with pytest.raises(LearnwareFormatError, match="outside|absolute"):
        LearnwareArchive.from_bytes(make_zip({**learnware_files(), bad_name: b"x"}))


def test_symlink_rejected() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in learnware_files().items():
            zf.writestr(name, data)
        link = zipfile.ZipInfo("link")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    with pytest.raises(LearnwareFormatError, match="symbolic link"):
        LearnwareArchive.from_bytes(buf.getvalue())


def test_file_count_and_size_limits() -> None:
    data = make_zip(learnware_files())
    with pytest.raises(LearnwareFormatError, match="entries"):
        LearnwareArchive.from_bytes(data, max_files=3)
    with pytest.raises(LearnwareFormatError, match="bytes"):
        LearnwareArchive.from_bytes(data, max_total_bytes=10)


def test_two_top_folders_without_yaml_at_top() -> None:
    files = {**{f"a/{k}": v for k, v in learnware_files().items()}, "b/other.txt": "x"}
    with pytest.raises(LearnwareFormatError, match="learnware.yaml not found"):
        LearnwareArchive.from_bytes(make_zip(files))


def test_extract_strips_root_and_never_overwrites(tmp_path: Path) -> None:
    archive = LearnwareArchive.from_bytes(make_zip(learnware_files(**{"sub/helper.py": "X = 1\n"}), prefix="lw/"))
    dest = extract_archive(archive, tmp_path / "out")
    assert (dest / "learnware.yaml").read_text() == YAML
    assert (dest / "sub" / "helper.py").read_text() == "X = 1\n"
    assert not (dest / "lw").exists()
    with pytest.raises(FileExistsError):
        extract_archive(archive, dest)


def test_semantic_spec_named_in_yaml() -> None:
    yaml_text = YAML + "semantic_specification:\n  file_name: semantic.json\n"
    files = learnware_files(**{"learnware.yaml": yaml_text, "semantic.json": json.dumps({"Name": {"Values": "x"}})})
    assert LearnwareArchive.from_bytes(make_zip(files)).semantic_spec() == {"Name": {"Values": "x"}}
    with pytest.raises(LearnwareFormatError, match="semantic.json"):
        LearnwareArchive.from_bytes(make_zip(learnware_files(**{"learnware.yaml": yaml_text})))


# -- learnware.yaml -----------------------------------------------------------------


def test_parse_reference_defaults() -> None:
    config = parse_learnware_yaml("stat_specifications:\n  - class_name: RKMETableSpecification\n    file_name: s.json\n")
    assert config.model_class_name == "Model"
    assert config.model_kwargs == {}
    assert config.stat_specs[0].module_path == "learnware.specification"
    assert config.stat_specs[0].kwargs == {}


def test_parse_reads_python_tuple_tags_written_by_the_reference() -> None:
    # The reference writes learnware.yaml with yaml.dump, which tags tuples.
    text = yaml.dump({"model": {"class_name": "M", "kwargs": {"input_shape": (4,), "output_shape": (2,)}}})
    assert "!!python/tuple" in text
    config = parse_learnware_yaml(text)
    assert config.model_kwargs == {"input_shape": (4,), "output_shape": (2,)}


def test_parse_rejects_unsafe_tags() -> None:
    with pytest.raises(LearnwareFormatError, match="not valid YAML"):
        parse_learnware_yaml("model: !!python/object/apply:os.system ['true']\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model: [unclosed\n", "not valid YAML"),
        ("- just a list\n", "must be a mapping"),
        ("model: 3\n", "'model' must be a mapping"),
        ("stat_specifications: {}\n", "must be a list"),
        ("stat_specifications:\n  - class_name: X\n", "missing the key 'file_name'"),
        ("stat_specifications:\n  - file_name: a.json\n", "missing the key 'class_name'"),
        ("stat_specifications:\n  - {class_name: X, file_name: ../a.json}\n", "inside the learnware folder"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(LearnwareFormatError, match=message):
        parse_learnware_yaml(text)


def test_yaml_round_trip() -> None:
    config = parse_learnware_yaml(YAML)
    assert parse_learnware_yaml(dump_learnware_yaml(config)) == config


def test_zip_bomb_by_compression_ratio_rejected() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in learnware_files().items():
            zf.writestr(name, data)
        zf.writestr("weights.bin", b"\0" * (50 * 1024**2))  # 50 MB of zeros deflate to ~50 kB
    with pytest.raises(LearnwareFormatError, match="compression ratio over the limit of 1000"):
        LearnwareArchive.from_bytes(buf.getvalue())
    # The same entry within a looser limit is fine; small files are never judged by ratio.
    assert "weights.bin" in LearnwareArchive.from_bytes(buf.getvalue(), max_compression_ratio=10_000).names
    small = make_zip(learnware_files(**{"zeros.txt": b"\0" * 100_000}))
    assert "zeros.txt" in LearnwareArchive.from_bytes(small).names


def test_extracted_files_are_readable_by_others_whatever_the_umask(tmp_path: Path) -> None:
    archive = LearnwareArchive.from_bytes(make_zip(learnware_files(**{"sub/deep/helper.py": "X = 1\n"})))
    old = os.umask(0o077)
    try:
        dest = extract_archive(archive, tmp_path / "out")
    finally:
        os.umask(old)
    assert stat.S_IMODE((dest / "sub" / "deep").stat().st_mode) == 0o755
    assert stat.S_IMODE((dest / "sub" / "deep" / "helper.py").stat().st_mode) == 0o644
    assert stat.S_IMODE(dest.stat().st_mode) == 0o755
