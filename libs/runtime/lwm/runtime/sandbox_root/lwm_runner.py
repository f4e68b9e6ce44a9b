"""Serve one learnware model to the parent process over stdin/stdout frames.

Started as `python lwm_runner.py` inside the learnware's own environment, so it
uses only the standard library and numpy. The frame format is the one in
lwm/runtime/framing.py (keep the two in step): 4-byte big-endian header length,
JSON header, raw little-endian C-order array payloads described in
header["arrays"]. Requests: load, predict, fit, finetune, ping, shutdown.
Replies: {"ok": true, ...} or {"ok": false, "error", "error_type", "traceback"}.
A 1-D array of strings reaches the model as a list of str, the input the
reference gives text learnwares.
"""

import importlib
import importlib.util
import json
import math
import os
import site
import socket
import struct
import sys
import traceback

HEADER_LEN = struct.Struct(">I")
MAX_HEADER_BYTES = 16 * 1024**2
MAX_ARRAY_BYTES = 8 * 1024**3
WIRE_KINDS = "biufcSU"
PACKAGE_NAME = "lwm_learnware"  # the name the learnware folder is imported under

np = None  # numpy, imported in main() once the protocol pipes are private


class ProtocolError(Exception):
    pass


def tag_tuples(value):
    if isinstance(value, tuple):
        return {"__tuple__": [tag_tuples(v) for v in value]}
    if isinstance(value, list):
        return [tag_tuples(v) for v in value]
    if isinstance(value, dict):
        return {k: tag_tuples(v) for k, v in value.items()}
    return value


def untag_tuple(obj):
    return tuple(obj["__tuple__"]) if obj.keys() == {"__tuple__"} else obj


def read_exact(stream, n):
    buf = bytearray(n)
    view = memoryview(buf)
    pos = 0
    while pos < n:
        got = stream.readinto(view[pos:])
        if not got:
            raise EOFError("the parent closed the pipe")
        pos += got
    return buf


def read_frame(stream):
    (size,) = HEADER_LEN.unpack(read_exact(stream, HEADER_LEN.size))
    if size > MAX_HEADER_BYTES:
        raise ProtocolError("frame header over the size limit")
    header = json.loads(bytes(read_exact(stream, size)).decode("utf-8"), object_hook=untag_tuple)
    arrays = []
    for meta in header.get("arrays", []):
        dtype = np.dtype(meta["dtype"])
        shape = tuple(int(d) for d in meta["shape"])
        nbytes = int(meta["nbytes"])
        if dtype.kind not in WIRE_KINDS or nbytes != dtype.itemsize * math.prod(shape) or nbytes > MAX_ARRAY_BYTES:
            raise ProtocolError("bad array description %r" % (meta,))
        arrays.append(np.frombuffer(read_exact(stream, nbytes), dtype=dtype).reshape(shape))
    return header, arrays


def write_frame(stream, header, arrays=()):
    wire = []
    for arr in arrays:
        if arr.dtype.byteorder == ">":
            arr = arr.astype(arr.dtype.newbyteorder("<"))
        wire.append(np.ascontiguousarray(arr))
    header = dict(header, arrays=[{"dtype": a.dtype.str, "shape": list(a.shape), "nbytes": a.nbytes} for a in wire])
    raw = json.dumps(tag_tuples(header)).encode("utf-8")
    stream.write(HEADER_LEN.pack(len(raw)) + raw)
    for arr in wire:
        stream.write(memoryview(arr.reshape(-1).view(np.uint8)))
    stream.flush()


def jsonable(value):
    """Shapes and similar metadata as JSON-friendly values (tuples kept as tuples)."""
    if isinstance(value, (tuple, list)):
        return type(value)(jsonable(v) for v in value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return repr(value)


def to_array(result, method):
    """A model's return value as an array that can travel (torch tensors are converted)."""
    if hasattr(result, "detach") and hasattr(result, "cpu"):
        result = result.detach().cpu().numpy()
    arr = np.asarray(result)
    if arr.dtype.kind not in WIRE_KINDS:
        raise TypeError(
            "%s returned %s (dtype %s); expected a numeric or string array" % (method, type(result).__name__, arr.dtype)
        )
    return arr


def model_input(arr):
    """The array as the model receives it: a 1-D string array becomes a list of str (texts)."""
    if arr.dtype.kind == "U" and arr.ndim == 1:
        return arr.tolist()
    return arr


def import_model_module(learnware_dir, module_path):
    """Import the learnware folder as a package, so relative imports between its modules work."""
    if not module_path.endswith(".py"):
        return importlib.import_module(module_path)
    init_path = os.path.join(learnware_dir, "__init__.py")
    spec = importlib.util.spec_from_file_location(PACKAGE_NAME, init_path, submodule_search_locations=[learnware_dir])
    package = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE_NAME] = package
    if os.path.exists(init_path):
        spec.loader.exec_module(package)
    if module_path == "__init__.py":
        return package
    return importlib.import_module(PACKAGE_NAME + "." + module_path[: -len(".py")].replace("/", "."))


class Server:
    def __init__(self):
        self.model = None

    def load(self, header, arrays):
        learnware_dir = os.path.abspath(header["learnware_dir"])
        class_name = header["class_name"]
        # Some learnwares import sibling modules absolutely (`from model import Net`).
        sys.path.append(learnware_dir)
        module = import_model_module(learnware_dir, header.get("module_path", "__init__.py"))
        if not hasattr(module, class_name):
            raise AttributeError("the learnware module defines no class %r" % class_name)
        cls = getattr(module, class_name)
        # As the reference does: pickles made in a script refer to __main__.<class_name>.
        setattr(sys.modules["__main__"], class_name, cls)
        self.model = cls(**header.get("kwargs", {}))
        return {
            "input_shape": jsonable(getattr(self.model, "input_shape", None)),
            "output_shape": jsonable(getattr(self.model, "output_shape", None)),
            "python": sys.version.split()[0],
        }, []

    def _loaded(self):
        if self.model is None:
            raise RuntimeError("no model is loaded; send 'load' first")
        return self.model

    def predict(self, header, arrays):
        return {}, [to_array(self._loaded().predict(model_input(arrays[0])), "predict")]

    def fit(self, header, arrays):
        self._loaded().fit(model_input(arrays[0]), arrays[1])
        return {}, []

    def finetune(self, header, arrays):
        self._loaded().finetune(model_input(arrays[0]), arrays[1])
        return {}, []

    def ping(self, header, arrays):
        return {}, []


def error_reply(exc):
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-10)
    return {
        "ok": False,
        "error": "%s: %s" % (type(exc).__name__, exc),
        "error_type": type(exc).__name__,
        "traceback": "".join(lines)[-8000:],
    }


def serve(proto_in, proto_out):
    server = Server()
    handlers = {name: getattr(server, name) for name in ("load", "predict", "fit", "finetune", "ping")}
    while True:
        try:
            header, arrays = read_frame(proto_in)
        except EOFError:
            return
        cmd = header.get("cmd")
        if cmd == "shutdown":
            write_frame(proto_out, {"ok": True})
            return
        try:
            if cmd not in handlers:
                raise ValueError("unknown command %r" % (cmd,))
            reply, out = handlers[cmd](header, arrays)
            reply["ok"] = True
        except BaseException as exc:  # the learnware's errors, sys.exit() included, go back to the parent
            if isinstance(exc, KeyboardInterrupt):
                raise
            reply, out = error_reply(exc), []
        try:
            write_frame(proto_out, reply, out)
        except TypeError as exc:  # metadata that JSON cannot hold
            write_frame(proto_out, error_reply(exc))


def drop_privileges():
    """Switch to the sandbox's unprivileged uid/gid when the parent asks for it (bubblewrap run as root)."""
    uid, gid = os.environ.get("LWM_SANDBOX_UID"), os.environ.get("LWM_SANDBOX_GID")
    if uid is None or gid is None:
        return
    os.setgroups([])
    os.setgid(int(gid))
    os.setuid(int(uid))
    if os.getuid() != int(uid) or os.geteuid() != int(uid):
        raise SystemExit("lwm_runner: could not switch to the sandbox uid")


def limit_processes():
    """Cap the processes and threads of this uid (in this sandbox) before any learnware code runs."""
    limit = os.environ.get("LWM_SANDBOX_MAX_PROCESSES")
    if limit:
        import resource

        resource.setrlimit(resource.RLIMIT_NPROC, (int(limit), int(limit)))


def main():
    global np
    drop_privileges()
    limit_processes()
    if sys.flags.no_site:
        # Started with -S so that no installed package's .pth code ran before the drop.
        site.main()
    # Frames travel over stdin/stdout, or over a unix socket in the scratch folder
    # when the parent names one (a container, whose stdio is not a plain pipe).
    socket_path = os.environ.get("LWM_RUNNER_SOCKET")
    if socket_path:
        channel = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        channel.connect(socket_path)
        proto_in, proto_out = channel.makefile("rb"), channel.makefile("wb")
    else:
        # Keep private copies of the protocol pipes.
        proto_in = os.fdopen(os.dup(0), "rb")
        proto_out = os.fdopen(os.dup(1), "wb")
    # Point fd 0 at /dev/null and fd 1 at stderr, so whatever the learnware reads or prints cannot touch frames.
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)

    # The `learnware` stand-in next to this script is only a fallback: a real
    # `learnware` package installed in the learnware's environment wins.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here] + [here]

    import numpy

    np = numpy
    serve(proto_in, proto_out)


if __name__ == "__main__":
    main()
