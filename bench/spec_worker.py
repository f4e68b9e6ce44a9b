"""One measured spec generation, run in a fresh process by bench/spec_bench.py.

    python bench/spec_worker.py ours|reference table|image|text|text-rkme DATA OUT_JSON [STEPS]

DATA is a .npy (table, image; text: the sentences as a .npy of str, with
their MiniLM embeddings in DATA + ".embeddings.npy"). The reference cannot
download its embedding model here, so it always takes those embeddings;
text-rkme gives them to ours too (language detection + RKME only), text
runs ours end to end. Runs under our .venv (ours) or .bench-venv (the
reference package). Prints one JSON line: wall and CPU seconds of the
generation alone (imports, data loading and warm-up excluded) and the peak
resident memory it added.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))


def status_mb(field: str) -> float:
    """VmRSS (resident now) or VmHWM (peak resident) of this process, in MiB."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak_rss() -> None:
    """Make VmHWM restart from the current RSS (Linux >= 4.0), so imports and warm-up do not count."""
    with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
        f.write("5")


def ours(kind: str, data, steps: int | None, embeddings_path: str):
    from lwm.spec import generate_stat_spec

    if kind == "text-rkme":  # the reference's situation: embeddings given, no model run
        import lwm.spec.text

        embeddings = np.load(embeddings_path)
        lwm.spec.text.embed_sentences = lambda X, device="cpu", verbose=False: embeddings[: len(X)]
        kind = "text"
    generate_stat_spec(kind, X=data[:50], device="cpu", steps=0)  # warm-up: imports, thread pools, the text model
    kwargs = {} if steps is None else {"steps": steps}
    return lambda: generate_stat_spec(kind, X=data, device="cpu", **kwargs)


def reference(kind: str, data, steps: int | None, embeddings_path: str):
    from learnware.specification import RKMEImageSpecification, RKMETextSpecification, generate_stat_spec

    sys.path.insert(0, os.path.join(BENCH_DIR, "reference_shim"))  # after importing learnware
    if kind == "table":
        generate_stat_spec(type="table", X=data[:50].copy(), cuda_idx=-1)  # warm-up
        return lambda: generate_stat_spec(type="table", X=data.copy(), cuda_idx=-1)
    if kind == "image":

        def make_image_spec():
            spec = RKMEImageSpecification(cuda_idx=-1)
            spec.generate_stat_spec_from_data(data, steps=100 if steps is None else steps, verbose=False)
            return spec

        return make_image_spec
    embeddings = np.load(embeddings_path)
    RKMETextSpecification.get_sentence_embedding = staticmethod(lambda X: embeddings[: len(X)])

    def make_text_spec():
        spec = RKMETextSpecification(cuda_idx=-1)
        spec.generate_stat_spec_from_data(list(data))
        return spec

    return make_text_spec


def main() -> None:
    impl, kind, data_path, out_path = sys.argv[1:5]
    steps = int(sys.argv[5]) if len(sys.argv) > 5 else None
    data = np.load(data_path, allow_pickle=False)
    if kind.startswith("text"):
        data = [str(s) for s in data]
    embeddings_path = data_path + ".embeddings.npy"
    make = ours(kind, data, steps, embeddings_path) if impl == "ours" else reference(kind, data, steps, embeddings_path)
    reset_peak_rss()
    before = status_mb("VmRSS")
    wall, cpu = time.perf_counter(), time.process_time()
    spec = make()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak_extra = status_mb("VmHWM") - before
    spec.save(out_path)
    print(json.dumps({"wall_s": wall, "cpu_s": cpu, "peak_extra_mb": max(0.0, peak_extra)}))


if __name__ == "__main__":
    main()
