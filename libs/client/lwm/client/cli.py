"""`lwm`: the market's command line.

The commands of users are here; other distributions add theirs through the entry-point
group lwm.commands (`lwm serve` from lwm-market, `lwm admin` from lwm-organizer-service),
so this client never needs the services installed.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import sys
import time
import zipfile
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import numpy as np

from lwm.client.errors import InvalidArgumentError, MarketError, MissingDistributionError, NotFoundError, UnavailableError, require_distribution
from lwm.client.market import DEFAULT_MARKET, DEFAULT_MARKET_ID, Learnware, MarketClient, SearchResults
from lwm.learnware.vocabulary import AVERAGING_MODES, CLASSIFICATION, REUSE_METHODS, TASKS
from lwm.rpc.metrics import configure_logging

EXIT_ERROR, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_INVALID = 1, 2, 3, 4


def load_array(path: str | Path) -> np.ndarray:
    """A 2-D float array from .npy or .csv (a header row is detected and skipped)."""
    path = Path(path)
    if path.suffix == ".npy":
        loaded: np.ndarray = np.load(path, allow_pickle=False)
        return loaded
    with open(path, newline="", encoding="utf-8") as file:
        rows = [row for row in csv.reader(file) if row]
    columns = len(rows[0]) if rows else 0
    if rows and not all(_is_number(v) or not v.strip() for v in rows[0]):
        rows = rows[1:]
    if any(len(row) != columns for row in rows):
        raise ValueError(f"{path.name}: rows have different numbers of columns")
    # An empty cell is a missing value (NaN), as in pandas.read_csv.
    return np.array([[float(v) if v.strip() else np.nan for v in row] for row in rows], dtype=np.float64).reshape(len(rows), columns)


def load_texts(path: str | Path) -> list[str]:
    """The texts of a UTF-8 .txt file, one a line (an empty line is an empty text)."""
    content = Path(path).read_text(encoding="utf-8")
    return content.removesuffix("\n").split("\n") if content else []


def load_data(path: str | Path) -> np.ndarray:
    """Rows to predict on: texts (a str array) from a .txt file, else an array as load_array reads it."""
    return np.array(load_texts(path), dtype=str) if Path(path).suffix == ".txt" else load_array(path)


def _is_number(value: Any) -> bool:
    try:
        float(value)
        return True
    except (TypeError, ValueError):
        return False


def _read_json(path: str | None) -> dict[str, Any]:
    return json.loads(Path(path).read_text()) if path else {}


def _print_learnwares(learnwares: Sequence[Learnware]) -> None:
    print(f"{'ID':<18} {'STATUS':<10} {'NAME'}")
    for lw in learnwares:
        print(f"{lw.id:<18} {lw.status:<10} {lw.name}")


def print_search(results: SearchResults) -> None:
    print(f"search path: {results.search_path}")
    for message in results.messages:
        print(f"  note: {message}")
    print(f"{'RANK':<5} {'SCORE':>6}  {'ID':<18} NAME")
    for rank, item in enumerate(results.get_single_results(), 1):
        print(f"{rank:<5} {item.score:>6.3f}  {item.learnware.id:<18} {item.learnware.name}")
    for mixture in results.get_multiple_results():
        parts = ", ".join(f"{lw.id} ({lw.name}) x {w:.2f}" for lw, w in zip(mixture.learnwares, mixture.weights))
        print(f"mixture score {mixture.score:.3f}: {parts}")


def _as_json(value: Any) -> str:
    return json.dumps(value, default=lambda o: dataclasses.asdict(o) if dataclasses.is_dataclass(o) and not isinstance(o, type) else str(o), indent=2)


def cmd_spec(args: argparse.Namespace) -> int:
    """Make a statistical spec from a local file; a progress bar shows for large inputs."""
    require_distribution("lwm.spec", "lwm-spec", "making a statistical specification locally (with torch)")
    from lwm.spec import generate_stat_spec

    path = Path(args.input)
    data: Any
    if args.kind == "table":
        data = load_array(path)
    elif args.kind == "image":
        if path.suffix != ".npy":
            raise ValueError(f"image input must be a .npy array of shape (N, C, H, W), got {path.name}")
        data = np.load(path, allow_pickle=False)
    elif path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as file:
            reader = csv.DictReader(file)
            columns = list(reader.fieldnames or [])
            column = args.column or (columns[0] if columns else "")
            if column not in columns:
                raise ValueError(f"{path.name} has no column {column!r}; columns: {', '.join(columns)}")
            data = [row[column] or "" for row in reader]
    else:  # .txt: one sentence per line, blank lines skipped
        data = [line.strip() for line in load_texts(path) if line.strip()]
    large_input = len(data) >= 5_000 or (args.kind != "table" and len(data) >= 500)
    spec = generate_stat_spec(type=args.kind, X=data, verbose=large_input)
    spec.save(args.output)
    shape = f"{len(data)} sentences" if args.kind == "text" else f"data of shape {tuple(np.shape(data))}"
    print(f"wrote {spec.type} of {shape} to {args.output}")
    return 0


UPLOAD_POLL_S = 0.5


def _follow_check(client: MarketClient, learnware: Learnware, timeout_s: float) -> Learnware:
    """Poll the learnware while it is PENDING, showing the check's progress on stderr."""
    started = time.monotonic()
    interactive = sys.stderr.isatty()
    reported = -1
    while learnware.status == "PENDING":
        elapsed = int(time.monotonic() - started)
        if elapsed > timeout_s:
            print(f"{learnware.id} is still PENDING after {timeout_s:g} s; see `lwm show {learnware.id}` later", file=sys.stderr)
            break
        if interactive:
            print(f"\rchecking {learnware.id}: PENDING for {elapsed} s", end="", file=sys.stderr, flush=True)
        elif elapsed // 10 > reported:  # one line every 10 s in logs and pipes
            reported = elapsed // 10
            print(f"checking {learnware.id}: PENDING for {elapsed} s", file=sys.stderr, flush=True)
        time.sleep(UPLOAD_POLL_S)
        learnware = client.get_learnware(learnware.id)
    if interactive:
        print(file=sys.stderr)
    return learnware


def _print_check_step(step: dict[str, Any], file: Any = None) -> None:
    mark = "ok " if step.get("passed") else "FAIL"
    print(f"  [{mark}] {step['name']}: {'; '.join(step.get('messages', []))}", file=file or sys.stdout, flush=True)


def _bytes_bar(total: int, description: str) -> Any:
    """A progress bar in bytes on stderr (only on a terminal)."""
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, desc=description, file=sys.stderr, disable=None)


def cmd_upload(args: argparse.Namespace, client: MarketClient) -> int:
    with _bytes_bar(Path(args.zip).stat().st_size, "upload") as bar:
        learnware = client.add_learnware(args.zip, _read_json(args.semantic), wait=False, progress=lambda sent: bar.update(sent - bar.n))
    if args.wait:
        learnware = _follow_check(client, learnware, args.wait_timeout)
    if args.json:
        print(_as_json(learnware))
    else:
        print(f"{learnware.id} {learnware.status}")
        for step in learnware.check_report.get("steps", []):
            _print_check_step(step)
    return 0 if learnware.status in ("USABLE", "PENDING") else EXIT_INVALID


TEMPLATE_README = """\
# {name}: a learnware

1. Train your model and save it here with pickle as `model.pkl` (any object with
   `fit` and `{predict_method}`; see `__init__.py`, the model class the market runs).
2. Make the statistical specification from your training data (the rows stay on
   your machine, only the specification is shared):
   `lwm spec table train.csv -o {directory}/stat_spec.json`
3. Describe the learnware in `semantic_specification.json` (name, description,
   scenarios, license, what each input column and output means).
4. List what the model needs in `requirements.txt` (pin versions you trained with).
5. Check and zip it: `lwm pack {directory}` (the market's checks, run here in the sandbox).
6. Upload: `lwm upload {directory}.zip --semantic {directory}/semantic_specification.json`
"""


def cmd_init_learnware(args: argparse.Namespace) -> int:
    """Write a learnware folder: a pickled-model class, learnware.yaml, a semantic spec to fill in, requirements, a README."""
    from lwm.learnware.archive import LEARNWARE_YAML, dump_learnware_yaml
    from lwm.learnware.semantic import generate_semantic_spec
    from lwm.learnware.template import MODEL_MODULE_SOURCE, SEMANTIC_SPEC_FILE, pickled_model_config
    from lwm.learnware.vocabulary import TABLE_SPEC_TYPE

    directory = Path(args.directory)
    if directory.exists() and any(directory.iterdir()):
        print(f"lwm init-learnware: {directory} exists and is not empty; choose a new folder", file=sys.stderr)
        return EXIT_USAGE
    classification = args.task == CLASSIFICATION
    output_dim = args.output_dim if classification else 1
    predict_method = "predict_proba" if classification else "predict"
    name = args.name or directory.resolve().name
    semantic = generate_semantic_spec(
        name=name,
        description=f"{name}: describe what the model predicts, from which data",
        data_type="Table",
        task_type="Classification" if classification else "Regression",
        library_type="Scikit-learn",
        scenarios=["Others"],
        license="MIT",
        input_description={"Dimension": args.input_dim, "Description": {str(i): f"feature {i}" for i in range(args.input_dim)}},
        output_description={"Dimension": output_dim, "Description": {str(i): f"score of class {i}" if classification else "predicted value" for i in range(output_dim)}},
    )
    config = pickled_model_config((args.input_dim,), (output_dim,), predict_method, TABLE_SPEC_TYPE, with_semantic_spec=True)
    files = {
        LEARNWARE_YAML: dump_learnware_yaml(config),
        "__init__.py": MODEL_MODULE_SOURCE,
        SEMANTIC_SPEC_FILE: json.dumps(semantic, indent=2) + "\n",
        "requirements.txt": "scikit-learn\nnumpy\n",
        "README.md": TEMPLATE_README.format(name=name, directory=directory, predict_method=predict_method),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for file_name, text in files.items():
        (directory / file_name).write_text(text, encoding="utf-8")
    if args.json:
        print(_as_json({"directory": str(directory), "files": sorted(files)}))
    else:
        print(f"created the learnware template in {directory}: {', '.join(sorted(files))}")
        print(f"next: save your model as {directory}/model.pkl, make {directory}/stat_spec.json with `lwm spec table`, then `lwm pack {directory}` (see README.md)")
    return 0


def _learnware_files(directory: Path, skip: Path) -> list[Path]:
    """The files to zip: everything but caches, hidden files and the output zip itself."""
    files = []
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if path.is_file() and path.resolve() != skip and not any(part.startswith(".") or part == "__pycache__" for part in relative.parts):
            files.append(path)
    return files


def cmd_pack(args: argparse.Namespace) -> int:
    """Zip a learnware folder and run the market's checks on it locally (the model in the sandbox); write the zip if USABLE."""
    import io

    from google.protobuf import json_format

    from lwm.learnware.archive import LearnwareArchive
    from lwm.rpc import convert

    require_distribution("lwm.checks", "lwm-checks", "running the market's checks locally")
    from lwm.checks import check_learnware

    directory = Path(args.directory)
    if not directory.is_dir():
        print(f"lwm pack: {directory} is not a folder", file=sys.stderr)
        return EXIT_USAGE
    output = Path(args.output) if args.output else directory.resolve().with_suffix(".zip")
    files = _learnware_files(directory, output.resolve())
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in files:
            zf.write(path, path.relative_to(directory).as_posix())
    zip_bytes = buffer.getvalue()
    print(f"packed {len(files)} files of {directory} ({len(zip_bytes)} bytes zipped)", file=sys.stderr)
    semantic = _read_json(args.semantic) if args.semantic else LearnwareArchive.from_bytes(zip_bytes).semantic_spec()
    if semantic is None:
        print("lwm pack: no semantic specification: name one in learnware.yaml (semantic_specification.file_name) or give --semantic", file=sys.stderr)
        return EXIT_USAGE
    print("checking: semantic spec, archive, stat spec, environment (built or cached), model in the sandbox (instantiate, shapes, predict)", file=sys.stderr, flush=True)
    started = time.monotonic()
    # Each check is shown as it ends (the report itself goes to stdout with --json).
    report = check_learnware(semantic, zip_bytes, timeout_s=args.timeout, on_step=lambda step: _print_check_step(json_format.MessageToDict(step), sys.stderr if args.json else sys.stdout))
    status = convert.STATUS_NAMES[report.status]
    if status == "USABLE":
        output.write_bytes(zip_bytes)
    if args.json:
        print(_as_json({"status": status, "zip": str(output) if status == "USABLE" else None, "files": [p.relative_to(directory).as_posix() for p in files], "check_report": json_format.MessageToDict(report)}))
    else:
        print(f"{directory}: {status} (checked in {time.monotonic() - started:.1f} s)")
        print(f"wrote {output}" if status == "USABLE" else "no zip written: fix the failed check above and pack again")
    if status == "USABLE":
        return 0
    return EXIT_INVALID if status == "INVALID" else EXIT_ERROR


def cmd_search(args: argparse.Namespace, client: MarketClient) -> int:
    semantic = _read_json(args.semantic)
    if args.name:
        semantic["Name"] = {"Values": args.name, "Type": "String"}
    results = client.search_learnware(semantic, args.stat, max_search_num=args.max_search_num, mixture_strategy=args.strategy)
    if args.json:
        print(_as_json(results))
    else:
        print_search(results)
    return 0


def cmd_reuse(args: argparse.Namespace, client: MarketClient) -> int:
    from tqdm import tqdm

    train_x = load_data(args.train_x) if args.train_x else None
    train_y = load_array(args.train_y).reshape(-1) if args.train_y else None
    with tqdm(total=None, unit="rows", desc=f"reuse ({args.method})", file=sys.stderr, disable=args.quiet) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        result = client.reuse(
            args.ids,
            load_data(args.data),
            args.method,
            mode=args.mode,
            task=args.task,
            train_x=train_x,
            train_y=train_y,
            user_spec=args.user_spec,
            user_semantic_spec=json.loads(Path(args.semantic).read_text()) if args.semantic else None,
            block_rows=args.block_rows,
            progress=progress,
        )
    predictions = result.predictions.reshape(result.predictions.shape[0], -1)
    for message in result.messages:
        print(f"note: {message}", file=sys.stderr)
    if args.output:
        np.savetxt(args.output, predictions, delimiter=",")
        print(f"wrote {predictions.shape[0]} predictions to {args.output}")
    else:
        np.savetxt(sys.stdout, predictions, delimiter=",", fmt="%.6g")
    return 0


def cmd_ls(args: argparse.Namespace, client: MarketClient) -> int:
    learnwares = list(client.list_learnwares(statuses=args.status or ()))
    if args.json:
        print(_as_json(learnwares))
    else:
        _print_learnwares(learnwares)
    return 0


def cmd_show(args: argparse.Namespace, client: MarketClient) -> int:
    print(_as_json(client.get_learnware(args.id)))
    return 0


def cmd_rm(args: argparse.Namespace, client: MarketClient) -> int:
    for learnware_id in args.ids:
        client.delete_learnware(learnware_id)
        print(f"deleted {learnware_id}")
    return 0


def cmd_download(args: argparse.Namespace, client: MarketClient) -> int:
    with _bytes_bar(client.get_learnware(args.id).zip_size, "download") as bar:
        path = client.download(args.id, args.output or f"{args.id}.zip", progress=lambda received: bar.update(received - bar.n))
    print(f"saved {path}")
    return 0


def cmd_info(args: argparse.Namespace, client: MarketClient) -> int:
    print(_as_json(client.market_info()))
    return 0


def cmd_clear_market(args: argparse.Namespace, client: MarketClient) -> int:
    deleted = client.clear_market()
    if args.json:
        print(_as_json({"market_id": client.market_id, "deleted_ids": deleted}))
    else:
        print(f"cleared market {client.market_id}: {len(deleted)} learnwares deleted")
    return 0


# Each entry point of this group names a function that adds its command's parser to the
# subparsers it is given and sets the parser's default `handler`: a function of the parsed
# arguments returning the exit code.
COMMANDS_GROUP = "lwm.commands"
# The commands other distributions add, with what they need: when one is not installed,
# `lwm NAME` says what to install.
PLUGIN_COMMANDS = {
    "serve": ("the market services", "lwm-market"),
    "admin": ("the organizer service", "lwm-organizer-service"),
}


def add_global_options(parser: argparse.ArgumentParser, *, with_defaults: bool) -> None:
    """--market, --market-id and --json: on `lwm` with their defaults, and on every command without,
    so they may come after the command too and a value given before it is kept."""
    market_default = os.environ.get("LWM_MARKET", DEFAULT_MARKET) if with_defaults else argparse.SUPPRESS
    market_id_default = os.environ.get("LWM_MARKET_ID", DEFAULT_MARKET_ID) if with_defaults else argparse.SUPPRESS
    parser.add_argument("--market", default=market_default, help="gateway address host:port (env LWM_MARKET)")
    parser.add_argument("--market-id", default=market_id_default, help=f"named market on that gateway (env LWM_MARKET_ID; default {DEFAULT_MARKET_ID})")
    parser.add_argument("--json", action="store_true", default=False if with_defaults else argparse.SUPPRESS, help="machine-readable output")


def add_plugin_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The commands of other installed distributions; a known one that is missing gets a
    parser that takes any arguments and says what to install (see main)."""
    for entry_point in sorted(entry_points(group=COMMANDS_GROUP), key=lambda e: e.name):
        entry_point.load()(sub)
    for name, (needs, distribution) in PLUGIN_COMMANDS.items():
        if name not in sub.choices:
            missing = sub.add_parser(name, add_help=False, help=f"not installed: pip install {distribution}")
            missing.set_defaults(missing_command=f"lwm {name} needs {needs}: pip install {distribution}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lwm", description="Learnware Market: share, find and reuse trained models.")
    add_global_options(parser, with_defaults=True)
    sub = parser.add_subparsers(dest="command", required=True)

    spec = sub.add_parser("spec", help="make a statistical specification from local data")
    spec.add_argument("kind", choices=["table", "image", "text"])
    spec.add_argument("input", help="table: .csv or .npy (n, d); image: .npy (N, C, H, W); text: .txt (one sentence a line) or .csv")
    spec.add_argument("-o", "--output", required=True, help="spec JSON to write")
    spec.add_argument("--column", help="text from a .csv: the column holding the sentences (default: the first)")

    init = sub.add_parser("init-learnware", help="create a learnware folder to fill in (model class, learnware.yaml, semantic spec, requirements)")
    init.add_argument("directory", help="new (or empty) folder")
    init.add_argument("--name", help="learnware name (default: the folder's name)")
    init.add_argument("--task", choices=TASKS, default=CLASSIFICATION)
    init.add_argument("--input-dim", type=int, required=True, help="number of input columns")
    init.add_argument("--output-dim", type=int, default=2, help="classification: number of classes (default 2); regression has one output")

    pack = sub.add_parser("pack", help="check a learnware folder locally with the market's checks (model run in the sandbox) and zip it")
    pack.add_argument("directory")
    pack.add_argument("-o", "--output", help="zip to write (default: the folder's name + .zip beside it)")
    pack.add_argument("--semantic", help="semantic specification JSON (default: the one learnware.yaml names)")
    pack.add_argument("--timeout", type=float, default=120.0, help="seconds each call to the model may take (default 120)")

    upload = sub.add_parser("upload", help="upload a learnware zip")
    upload.add_argument("zip")
    upload.add_argument("--semantic", required=True, help="semantic specification JSON")
    upload.add_argument(
        "--wait",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="follow the check while the learnware is PENDING and print its report (the default); "
        "--no-wait prints the id and PENDING at once (follow it later with `lwm show ID`)",
    )
    upload.add_argument("--wait-timeout", type=float, default=1800.0, help="stop following the check after this many seconds (default 1800)")

    search = sub.add_parser("search", help="search learnwares")
    search.add_argument("--semantic", help="semantic specification JSON (empty fields match everything)")
    search.add_argument("--name", help="text to look for in names and descriptions")
    search.add_argument("--stat", help="statistical specification JSON made with `lwm spec`")
    search.add_argument("--max-search-num", type=int, default=5, help="most learnwares in a mixture")
    search.add_argument("--strategy", choices=["greedy", "auto"], default="greedy", help="mixture search strategy")

    reuse = sub.add_parser("reuse", help="reuse learnwares on your data")
    reuse.add_argument("--method", required=True, choices=REUSE_METHODS)
    reuse.add_argument("--ids", nargs="+", required=True, help="learnware ids")
    reuse.add_argument("--data", required=True, help=".csv or .npy file of the rows to predict; for text learnwares a UTF-8 .txt file, one text a line (job_selector, averaging, ensemble_pruning)")
    reuse.add_argument("--mode", default="mean", choices=AVERAGING_MODES, help="averaging mode")
    reuse.add_argument("--task", choices=TASKS, help="task of ensemble_pruning, feature_augment and hetero_align")
    reuse.add_argument("--semantic", help="hetero_align: your semantic specification JSON whose Input describes the columns of --data")
    reuse.add_argument("--train-x", help="labelled rows (.csv/.npy, or .txt texts, one a line) for ensemble_pruning and feature_augment (optional for hetero_align)")
    reuse.add_argument("--train-y", help="their labels or targets (.csv/.npy, one column)")
    reuse.add_argument("--user-spec", help="job_selector: your statistical specification JSON (`lwm spec`) for the mixture weights")
    reuse.add_argument("--block-rows", type=int, default=0, help="rows per streamed block (default: the market's, 10000)")
    reuse.add_argument("--quiet", action="store_true", help="no progress bar")
    reuse.add_argument("-o", "--output", help="write predictions to this CSV instead of stdout")

    ls = sub.add_parser("ls", help="list learnwares")
    ls.add_argument("--status", action="append", choices=["PENDING", "INVALID", "NONUSABLE", "USABLE"], help="only these statuses")
    show = sub.add_parser("show", help="show one learnware with its check report")
    show.add_argument("id")
    rm = sub.add_parser("rm", help="delete learnwares")
    rm.add_argument("ids", nargs="+")
    download = sub.add_parser("download", help="download a learnware zip")
    download.add_argument("id")
    download.add_argument("-o", "--output")
    sub.add_parser("info", help="what the market is and holds")
    sub.add_parser("clear-market", help="delete every learnware of the --market-id market (its owner or an admin)")
    add_plugin_commands(sub)
    for command in sub.choices.values():
        add_global_options(command, with_defaults=False)
    return parser


CLIENT_COMMANDS = {"upload": cmd_upload, "search": cmd_search, "reuse": cmd_reuse, "ls": cmd_ls, "show": cmd_show, "rm": cmd_rm, "download": cmd_download, "info": cmd_info, "clear-market": cmd_clear_market}


def main(argv: Sequence[str] | None = None) -> int:
    configure_logging()  # LWM_LOG_LEVEL, LWM_LOG_FORMAT (text or json)
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if hasattr(args, "missing_command"):  # its arguments are unknown here: they are the missing distribution's
        print(args.missing_command, file=sys.stderr)
        return EXIT_USAGE
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        if hasattr(args, "handler"):  # a command of another distribution (COMMANDS_GROUP)
            handler: Callable[[argparse.Namespace], int] = args.handler
            return handler(args)
        if args.command == "spec":
            return cmd_spec(args)
        if args.command == "init-learnware":
            return cmd_init_learnware(args)
        if args.command == "pack":
            return cmd_pack(args)
        with MarketClient(args.market, market_id=args.market_id) as client:
            return CLIENT_COMMANDS[args.command](args, client)
    except MarketError as error:
        hint = f"; is a market serving at {args.market}? (--market or LWM_MARKET)" if isinstance(error, UnavailableError) else ""
        print(f"lwm: {error.message} ({error.code.name}){hint}", file=sys.stderr)
        if isinstance(error, NotFoundError):
            return EXIT_NOT_FOUND
        if isinstance(error, InvalidArgumentError):
            return EXIT_INVALID
        return EXIT_ERROR
    except MissingDistributionError as error:
        print(f"lwm {args.command}: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (OSError, ValueError) as error:
        print(f"lwm: {error}", file=sys.stderr)
        return EXIT_INVALID


if __name__ == "__main__":
    sys.exit(main())
