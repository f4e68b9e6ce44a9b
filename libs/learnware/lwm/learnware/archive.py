"""Learnware zip archives: reading, validating and safely extracting them.

The format is the reference `learnware` package's (v0.4): a zip holding
`learnware.yaml`, the model module (`__init__.py` by default), the statistical
specification JSON file(s) named in the yaml, `environment.yaml` or
`requirements.txt`, and model files. All files may sit inside one top-level
folder. Everything is validated from the zip's central directory before a
single byte is unpacked.
"""

from __future__ import annotations

import io
import json
import os
import posixpath
import shutil
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

LEARNWARE_YAML = "learnware.yaml"
DEFAULT_MODEL_MODULE = "__init__.py"
# Same defaults as the reference's get_learnware_from_dirpath.
DEFAULT_MODEL_CLASS = "Model"
DEFAULT_STAT_SPEC_MODULE = "learnware.specification"
# The reference installs environment.yaml (conda) in preference to requirements.txt.
ENV_FILES = ("environment.yaml", "requirements.txt")

MAX_FILES = 10_000
MAX_TOTAL_BYTES = 4 * 1024**3
# Zip bombs: an entry that unpacks to more than this many times its compressed size
# (entries under RATIO_FREE_BYTES are exempt: tiny files compress oddly well).
MAX_COMPRESSION_RATIO = 1000
RATIO_FREE_BYTES = 1024**2
# Folders some zip tools add beside the content; never part of a learnware.
_IGNORED_TOP_FOLDERS = ("__MACOSX",)


class LearnwareFormatError(ValueError):
    """A learnware zip or its learnware.yaml does not follow the learnware format."""


@dataclass
class StatSpecEntry:
    """One entry of `stat_specifications` in learnware.yaml."""

    module_path: str
    class_name: str
    file_name: str
    kwargs: dict = field(default_factory=dict)


@dataclass
class LearnwareConfig:
    """The parsed learnware.yaml."""

    model_class_name: str
    model_kwargs: dict
    stat_specs: list[StatSpecEntry]
    model_module_path: str = DEFAULT_MODEL_MODULE
    name: str | None = None
    semantic_spec_file: str | None = None
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict:
        """The learnware.yaml content as a plain dict (inverse of parse_learnware_yaml)."""
        model: dict[str, Any] = {"class_name": self.model_class_name, "kwargs": dict(self.model_kwargs)}
        if self.model_module_path != DEFAULT_MODEL_MODULE:
            model["module_path"] = self.model_module_path
        out: dict[str, Any] = {}
        if self.name is not None:
            out["name"] = self.name
        out["model"] = model
        out["stat_specifications"] = [
            {"module_path": s.module_path, "class_name": s.class_name, "file_name": s.file_name, "kwargs": dict(s.kwargs)}
            for s in self.stat_specs
        ]
        if self.semantic_spec_file is not None:
            out["semantic_specification"] = {"file_name": self.semantic_spec_file}
        return out


class _YamlLoader(yaml.SafeLoader):
    """SafeLoader that also reads `!!python/tuple`, which the reference's yaml.dump writes for tuples."""


def _construct_tuple(loader: yaml.SafeLoader, node: yaml.SequenceNode) -> tuple[Any, ...]:
    return tuple(loader.construct_sequence(node))


_YamlLoader.add_constructor("tag:yaml.org,2002:python/tuple", _construct_tuple)


def dump_learnware_yaml(config: LearnwareConfig) -> str:
    """Serialize a config as learnware.yaml text."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False, allow_unicode=True)


def _safe_relpath(name: str, what: str) -> str:
    """Normalize a relative path inside a learnware; reject absolute paths and `..`."""
    if not isinstance(name, str) or not name.strip():
        raise LearnwareFormatError(f"{what} must be a non-empty relative path, got {name!r}")
    norm = posixpath.normpath(name.replace("\\", "/"))
    if norm.startswith("/") or norm == ".." or norm.startswith("../") or (len(norm) > 1 and norm[1] == ":"):
        raise LearnwareFormatError(f"{what} must stay inside the learnware folder, got {name!r}")
    return norm


def _mapping(value: Any, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise LearnwareFormatError(f"{what} must be a mapping, got {type(value).__name__}")
    return value


def _string(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise LearnwareFormatError(f"{what} must be a non-empty string, got {value!r}")
    return value


def parse_learnware_yaml(text: str) -> LearnwareConfig:
    """Parse learnware.yaml text.

    Defaults follow the reference: `model.class_name` "Model", `model.kwargs` {},
    `model.module_path` "__init__.py"; a stat spec entry's `module_path` defaults to
    "learnware.specification" and `kwargs` to {} (`class_name` and `file_name` are required).
    """
    try:
        data = yaml.load(text, Loader=_YamlLoader)
    except yaml.YAMLError as exc:
        raise LearnwareFormatError(f"learnware.yaml is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise LearnwareFormatError(
            "learnware.yaml must be a mapping with the keys 'model' and 'stat_specifications'"
        )

    model = _mapping(data.get("model"), "learnware.yaml 'model'")
    class_name = _string(model.get("class_name", DEFAULT_MODEL_CLASS), "learnware.yaml 'model.class_name'")
    kwargs = _mapping(model.get("kwargs"), "learnware.yaml 'model.kwargs'")
    module_path = _string(model.get("module_path", DEFAULT_MODEL_MODULE), "learnware.yaml 'model.module_path'")
    if module_path.endswith(".py"):
        module_path = _safe_relpath(module_path, "learnware.yaml 'model.module_path'")

    raw_specs = data.get("stat_specifications")
    if raw_specs is None:
        raw_specs = []
    if not isinstance(raw_specs, list):
        raise LearnwareFormatError("learnware.yaml 'stat_specifications' must be a list")
    specs = []
    for i, raw in enumerate(raw_specs):
        what = f"learnware.yaml 'stat_specifications[{i}]'"
        raw = _mapping(raw, what)
        for key in ("class_name", "file_name"):
            if key not in raw:
                raise LearnwareFormatError(f"{what} is missing the key '{key}'")
        specs.append(
            StatSpecEntry(
                module_path=_string(raw.get("module_path", DEFAULT_STAT_SPEC_MODULE), f"{what}.module_path"),
                class_name=_string(raw["class_name"], f"{what}.class_name"),
                file_name=_safe_relpath(raw["file_name"], f"{what}.file_name"),
                kwargs=_mapping(raw.get("kwargs"), f"{what}.kwargs"),
            )
        )

    semantic_file = None
    if data.get("semantic_specification") is not None:
        semantic = _mapping(data["semantic_specification"], "learnware.yaml 'semantic_specification'")
        if "file_name" not in semantic:
            raise LearnwareFormatError("learnware.yaml 'semantic_specification' is missing the key 'file_name'")
        semantic_file = _safe_relpath(semantic["file_name"], "learnware.yaml 'semantic_specification.file_name'")

    name = data.get("name")
    return LearnwareConfig(
        model_class_name=class_name,
        model_kwargs=dict(kwargs),
        stat_specs=specs,
        model_module_path=module_path,
        name=None if name is None else str(name),
        semantic_spec_file=semantic_file,
        raw=data,
    )


def _check_entry(info: zipfile.ZipInfo) -> None:
    """Reject entries that could escape the extraction folder."""
    name = info.filename
    if "\x00" in name:
        raise LearnwareFormatError(f"zip entry {name!r} has a NUL byte in its name")
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise LearnwareFormatError(f"zip entry {name!r} has an absolute path")
    if ".." in parts:
        raise LearnwareFormatError(f"zip entry {name!r} points outside the archive ('..')")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise LearnwareFormatError(f"zip entry {name!r} is a symbolic link, which is not allowed")


def _find_root(files: list[str]) -> str:
    """The folder holding learnware.yaml: "" or the single top-level folder."""
    if LEARNWARE_YAML in files:
        return ""
    tops = {f.split("/", 1)[0] for f in files}
    if len(tops) == 1 and all("/" in f for f in files):
        top = tops.pop()
        if f"{top}/{LEARNWARE_YAML}" in files:
            return top
    raise LearnwareFormatError(
        f"{LEARNWARE_YAML} not found: it must be at the top level of the zip or inside a single top-level folder"
    )


class LearnwareArchive:
    """A validated learnware zip. Build it with `from_bytes` or `from_path`."""

    def __init__(
        self,
        source: bytes | Path,
        *,
        max_files: int = MAX_FILES,
        max_total_bytes: int = MAX_TOTAL_BYTES,
        max_compression_ratio: float = MAX_COMPRESSION_RATIO,
    ):
        self._source = source
        try:
            with self._open() as zf:
                infos = zf.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError):
            raise LearnwareFormatError("not a zip file (or a damaged one)") from None

        if len(infos) > max_files:
            raise LearnwareFormatError(f"the zip has {len(infos)} entries, more than the limit of {max_files}")
        total = sum(info.file_size for info in infos)
        if total > max_total_bytes:
            raise LearnwareFormatError(
                f"the zip unpacks to {total} bytes, more than the limit of {max_total_bytes} bytes"
            )

        files: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            _check_entry(info)
            if info.file_size > RATIO_FREE_BYTES and info.file_size > max_compression_ratio * max(info.compress_size, 1):
                raise LearnwareFormatError(
                    f"zip entry {info.filename!r} unpacks to {info.file_size} bytes from {info.compress_size}, "
                    f"a compression ratio over the limit of {max_compression_ratio:g} (a zip bomb?)"
                )
            if info.is_dir() or info.filename.split("/", 1)[0] in _IGNORED_TOP_FOLDERS:
                continue
            name = posixpath.normpath(info.filename)
            if name in files:
                raise LearnwareFormatError(f"the zip has the entry {name!r} twice")
            files[name] = info

        self._root = _find_root(list(files))
        prefix = f"{self._root}/" if self._root else ""
        self._infos = {name[len(prefix):]: info for name, info in files.items()}

        self._config = parse_learnware_yaml(self._read_text(LEARNWARE_YAML))
        self._validate()

    @classmethod
    def from_bytes(cls, data: bytes, **limits: Any) -> LearnwareArchive:
        """Validate a learnware zip held in memory."""
        return cls(bytes(data), **limits)

    @classmethod
    def from_path(cls, path: str | Path, **limits: Any) -> LearnwareArchive:
        """Validate a learnware zip on disk (read lazily, not loaded into memory)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no such learnware zip: {path}")
        return cls(path, **limits)

    def _open(self) -> zipfile.ZipFile:
        if isinstance(self._source, Path):
            return zipfile.ZipFile(self._source)
        return zipfile.ZipFile(io.BytesIO(self._source))

    def _require(self, name: str, why: str) -> None:
        if name not in self._infos:
            where = f" (inside the folder {self._root!r})" if self._root else ""
            raise LearnwareFormatError(f"{name} is missing from the learnware zip{where}: {why}")

    def _validate(self) -> None:
        cfg = self._config
        if cfg.model_module_path.endswith(".py"):
            self._require(cfg.model_module_path, f"it defines the model class {cfg.model_class_name!r}")
        if not cfg.stat_specs:
            raise LearnwareFormatError("learnware.yaml lists no stat_specifications; at least one is required")
        for spec in cfg.stat_specs:
            self._require(spec.file_name, f"learnware.yaml names it as the {spec.class_name} file")
        if cfg.semantic_spec_file is not None:
            self._require(cfg.semantic_spec_file, "learnware.yaml names it as the semantic specification")
        if not any(env in self._infos for env in ENV_FILES):
            raise LearnwareFormatError(
                "requirements.txt or environment.yaml is missing from the learnware zip: "
                "one of them describes the model's environment"
            )

    @property
    def config(self) -> LearnwareConfig:
        return self._config

    @property
    def root(self) -> str:
        """The top-level folder the files sit in, "" when they are at the top of the zip."""
        return self._root

    @property
    def names(self) -> list[str]:
        """File paths relative to `root` (directories and __MACOSX entries left out)."""
        return sorted(self._infos)

    @property
    def env_file(self) -> str:
        """"environment.yaml" or "requirements.txt" (the first, when both exist, as the reference does)."""
        return next(env for env in ENV_FILES if env in self._infos)

    @property
    def total_size(self) -> int:
        """Uncompressed size of all files in bytes."""
        return sum(info.file_size for info in self._infos.values())

    def read(self, name: str) -> bytes:
        """The content of the file `name` (relative to `root`)."""
        info = self._infos.get(name)
        if info is None:
            raise KeyError(f"{name} is not in the learnware zip")
        with self._open() as zf:
            return zf.read(info)

    def _read_text(self, name: str) -> str:
        try:
            return self.read(name).decode("utf-8")
        except UnicodeDecodeError:
            raise LearnwareFormatError(f"{name} is not UTF-8 text") from None

    def _read_json(self, name: str) -> Any:
        try:
            return json.loads(self._read_text(name))
        except json.JSONDecodeError as exc:
            raise LearnwareFormatError(f"{name} is not valid JSON: {exc}") from None

    def stat_spec_json(self, class_name: str | None = None) -> dict:
        """The parsed JSON of the first stat spec, or of the first one of `class_name`."""
        for spec in self._config.stat_specs:
            if class_name is None or spec.class_name == class_name:
                return self._read_json(spec.file_name)
        raise LearnwareFormatError(f"learnware.yaml lists no stat specification of class {class_name!r}")

    def semantic_spec(self) -> dict | None:
        """The semantic specification stored in the zip, if learnware.yaml names one (optional)."""
        if self._config.semantic_spec_file is None:
            return None
        return self._read_json(self._config.semantic_spec_file)


def extract_archive(archive: LearnwareArchive, dest: Path) -> Path:
    """Unpack the archive's files (root folder stripped) into `dest`; returns `dest`.

    Names were validated when the archive was opened; existing files are never
    overwritten (nor followed, if they are symlinks). Folders get mode 0755 and
    files 0644 whatever the umask, so the sandbox's unprivileged uid can read them.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    base = dest.resolve()
    os.chmod(base, 0o755)
    with archive._open() as zf:
        for name, info in archive._infos.items():
            target = base / name  # name is normalized, relative and free of ".."
            for folder in reversed(target.relative_to(base).parents[:-1]):
                if not (base / folder).is_dir():
                    (base / folder).mkdir()
                    os.chmod(base / folder, 0o755)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            os.fchmod(fd, 0o644)
            with zf.open(info) as src, open(fd, "wb") as out:
                shutil.copyfileobj(src, out, 1024 * 1024)
    return dest
