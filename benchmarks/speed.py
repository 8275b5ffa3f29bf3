"""Speed of t5core beside keras-hub and HF transformers, measured in one run.

Work measured, random weights, dropout 0 by default (`dropout_rate` changes it for
every side), t5-small shape by default:
  train      one AdamW step at batch 8, inputs 256, targets 64: s/step, tokens/s, MFU
  greedy_b1, greedy_b32  (work "greedy") 64 input tokens -> 32 new tokens (EOS disabled, so every side decodes 32)
  beam_b8    (work "beam") 4 beams, batch 8, the same lengths
  data       input-pipeline rows/s (t5core only; `t5core.data.benchmark`)
  memory     peak RSS of training steps (t5-base, batch 8 x 512/128), with and without remat

Each implementation ("side") runs in its own subprocesses, one after another, so no two compete
for the cores and each keeps its own thread pools and global state (Keras dtype policy, torch
threads). Each mode (graph, XLA) of a side, and within it the training and the decoding work,
gets a fresh process too: measured on this CPU, t5core's greedy decoding at batch 32 took
740-770 ms in a process that had trained first, and 675-705 ms alone (beam: 700 against 600 ms).
This module imports neither TensorFlow nor torch at import time: the HF side runs this file as a
script under another interpreter (a venv with torch and no TensorFlow).
Every side is timed in each mode it offers (graph / XLA); the table shows each side's fastest.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import traceback

SIDES = ("t5core", "keras_hub", "hf")
WORKS = ("train", "greedy", "beam", "data")  # greedy at each of spec["greedy_batches"]
PRECISIONS = ("float32", "mixed_bfloat16")


def default_spec(**overrides) -> dict:
    """Everything a side needs to know, as plain JSON (it crosses process boundaries)."""
    spec = {
        "preset": "t5-small", "config": None,  # config: T5Config kwargs, wins over preset
        "dropout_rate": 0.0,  # in training, on every side (decoding never drops)
        "batch_size": 8, "inputs_length": 256, "targets_length": 64,
        "train_steps": 5, "warmup_steps": 2,
        "precisions": list(PRECISIONS), "modes": ["graph", "xla"],
        "input_length": 64, "new_tokens": 32, "num_beams": 4, "beam_batch": 8,
        "greedy_batches": [1, 32], "decode_repeats": 3,
        "works": list(WORKS), "data_dir": None, "vocab": None, "data_batches": 50,
        "peak_seconds": 1.0, "seed": 0,
        "extras": True,  # t5core also measures the matmul peaks and the data pipelines
        "decode_floor": True,  # and, with the extras, the batch-1 decoding floor
    }
    unknown = set(overrides) - set(spec) - {"hf_config"}
    if unknown:
        raise ValueError(f"unknown benchmark setting(s) {sorted(unknown)}; known: {sorted(spec)}")
    spec.update(overrides)
    return spec


# ---------------------------------------------------------------------------------- timing


def time_calls(fn, repeats, warmup=1) -> dict:
    """Median and minimum wall time of `fn()` after `warmup` untimed calls (compilation)."""
    start = time.perf_counter()
    for _ in range(warmup):
        fn()
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"seconds": statistics.median(times), "seconds_min": min(times),
            "seconds_all": [round(t, 4) for t in times], "warmup_seconds": round(first, 2)}


def synthetic_batch(vocab_size, batch, inputs_length, targets_length, seed=0) -> dict:
    """NumPy features of full (unpadded) rows; ids avoid pad 0 and EOS 1."""
    import numpy as np

    rng = np.random.default_rng(seed)
    high = min(vocab_size, 32000)
    targets = rng.integers(2, high, (batch, targets_length)).astype(np.int32)
    return {"encoder_input_tokens": rng.integers(2, high, (batch, inputs_length)).astype(np.int32),
            "decoder_target_tokens": targets,
            "decoder_input_tokens": np.concatenate(
                [np.zeros((batch, 1), np.int32), targets[:, :-1]], axis=1),
            "decoder_loss_weights": np.ones((batch, targets_length), np.float32)}


def _decode_works(spec):
    works = []
    for b in spec["greedy_batches"]:
        works.append((f"greedy_b{b}", "greedy", b))
    works.append((f"beam_b{spec['beam_batch']}", "beam", spec["beam_batch"]))
    return [w for w in works if w[1] in spec["works"]]


def _record(side, work, **fields):
    return {"side": side, "work": work, **fields}


def _guarded(records, side, work, fn, **fields):
    """Runs one measurement; a failure becomes an error record instead of ending the run."""
    try:
        records.append(_record(side, work, **fields, **fn()))
    except Exception as error:  # noqa: BLE001 - reported in the table and the JSON
        records.append(_record(side, work, **fields, error=f"{type(error).__name__}: {error}",
                               traceback=traceback.format_exc(limit=3)))
    print(json.dumps(records[-1])[:300], file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------- t5core


def _t5core_config(spec):
    from t5core.config import T5Config

    config = T5Config(**spec["config"]) if spec.get("config") else T5Config.from_preset(
        spec["preset"])
    return config.replace(dropout_rate=spec["dropout_rate"])


def t5core_train_step(config, precision, jit_compile, batch, remat=False):
    """The trainer's AdamW step (`StepBuilder.train_step()`) on one device, and the features
    (NumPy `batch` as tensors) to call it with: what the benchmark times and the profiler
    traces."""
    import tensorflow as tf

    from t5core.model import T5Model
    from t5core.optimizers import make_optimizer
    from t5core.training.steps import StepBuilder

    model = T5Model(config, dtype=precision, **({"remat": True} if remat else {}))
    optimizer = make_optimizer("adamw", 1e-4, weight_decay=0.01)
    optimizer.build(model.trainable_variables)
    step = StepBuilder(model, optimizer, tf.distribute.get_strategy(),
                       jit_compile=jit_compile).train_step()
    return step, {k: tf.constant(v) for k, v in batch.items()}


def t5core_train_step_seconds(config, precision, jit_compile, batch, steps, warmup=2,
                              remat=False) -> dict:
    """Times `t5core_train_step`."""
    step, features = t5core_train_step(config, precision, jit_compile, batch, remat)
    return time_calls(lambda: float(step(features)["loss"]), steps, warmup)


def t5core_decode_seconds(model, method, batch, num_beams, jit_compile, spec) -> dict:
    """One case of the decoding helper's `benchmark_decoding` (generate with EOS disabled)."""
    from decoding_speed import benchmark_decoding

    result, = benchmark_decoding(
        model=model, cases=[(method, batch, num_beams if method == "beam" else 1)],
        input_length=spec["input_length"], new_tokens=spec["new_tokens"],
        jit_compile=jit_compile, repeats=spec["decode_repeats"], seed=spec["seed"], log=None)
    return {"seconds": result["seconds"], "cpu_seconds": result["cpu_seconds"],
            "warmup_seconds": round(result["first_call_s"], 2),
            "tokens": batch * spec["new_tokens"]}


def matmul_peaks(seconds=1.0) -> dict:
    """Measured FLOP/s of a 2048^2 matmul: fp32 and bf16, TF graph (oneDNN) and XLA."""
    import tensorflow as tf

    from t5core.training.flops import measure_matmul_peak

    peaks = {}
    for dtype in (tf.float32, tf.bfloat16):
        for mode in ("graph", "xla"):
            peaks[f"{dtype.name}_{mode}"] = measure_matmul_peak(
                dtype, n=2048, seconds=seconds, jit_compile=mode == "xla")
    return peaks


def run_t5core(spec) -> list:
    from t5core.model import T5Model
    from t5core.training.flops import training_flops

    config = _t5core_config(spec)
    records = []
    if spec["extras"]:
        _guarded(records, "t5core", "peaks",
                 lambda: {"peaks": matmul_peaks(spec["peak_seconds"])})
        if spec["decode_floor"]:
            from decoding_speed import decode_weight_floor
            _guarded(records, "t5core", "decode_floor",
                     lambda: {"decode_floor": decode_weight_floor(config, spec["new_tokens"])})
    b, li, lt = spec["batch_size"], spec["inputs_length"], spec["targets_length"]
    if "train" in spec["works"]:
        batch = synthetic_batch(config.vocab_size, b, li, lt, spec["seed"])
        flops = training_flops(config, b, li, lt)
        for precision in spec["precisions"]:
            for mode in spec["modes"]:
                _guarded(records, "t5core", "train", lambda: {
                    **t5core_train_step_seconds(config, precision, mode == "xla", batch,
                                                spec["train_steps"], spec["warmup_steps"]),
                    "flops": flops, "tokens": b * (li + lt)}, precision=precision, mode=mode)
    decode = _decode_works(spec)
    if decode:
        model = T5Model(config)
        for work, method, batch_size in decode:
            for mode in spec["modes"]:
                _guarded(records, "t5core", work, lambda: t5core_decode_seconds(
                    model, method, batch_size, spec["num_beams"], mode == "xla", spec),
                    precision="float32", mode=mode)
    if "data" in spec["works"] and spec["extras"]:
        _guarded(records, "t5core", "data", lambda: _data_rows(spec))
    return records


def _data_rows(spec) -> dict:
    """Rows/s of the data helper's pipelines (span corruption 512/114; packed translation)."""
    from pipeline_speed import pipeline_rows_per_second
    from t5core.tokenizer import Tokenizer

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    data_dir = spec["data_dir"] or os.path.join(root, "..", "shared", "data", "multi30k")
    vocab = spec["vocab"] or os.path.join(root, "tests", "fixtures", "t5_vocab", "spiece.model")
    for path in (data_dir, vocab):
        if not os.path.exists(path):
            raise FileNotFoundError(f"data benchmark needs {path} (set --data_dir / --vocab)")
    tokenizer = Tokenizer(vocab)
    pipelines = {}
    for name in ("span_corruption", "translation_packed"):
        pipelines[name] = pipeline_rows_per_second(name, data_dir, tokenizer, batch_size=8,
                                                   num_batches=spec["data_batches"])
    return {"pipelines": pipelines,
            "rows_per_second": pipelines["span_corruption"]["rows_per_second"]}


def measure_train_memory(preset="t5-base", batch_size=8, inputs_length=512, targets_length=128,
                         precision="float32", remat=False, steps=2) -> dict:
    """Peak RSS (bytes) of this process over `steps` graph-mode training steps (run it alone in
    a fresh process: the peak is the process's, not the step's)."""
    import resource

    from t5core.config import T5Config

    config = T5Config.from_preset(preset).replace(dropout_rate=0.0)
    batch = synthetic_batch(config.vocab_size, batch_size, inputs_length, targets_length)
    timing = t5core_train_step_seconds(config, precision, False, batch, steps, warmup=1,
                                       remat=remat)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"preset": preset, "batch": f"{batch_size}x{inputs_length}/{targets_length}",
            "precision": precision, "remat": remat, "peak_rss_bytes": peak_kib * 1024,
            "peak_rss_gib": round(peak_kib / 2**20, 2), **timing}


# ---------------------------------------------------------------------------------- keras-hub


def _keras_hub_lm(hf, dtype):
    import keras_hub

    ffn = hf["feed_forward_proj"]
    if hf["num_decoder_layers"] != hf["num_layers"]:
        raise ValueError("keras-hub's T5Backbone needs as many decoder as encoder layers")
    backbone = keras_hub.models.T5Backbone(
        vocabulary_size=hf["vocab_size"], num_layers=hf["num_layers"],
        num_heads=hf["num_heads"], hidden_dim=hf["d_model"], intermediate_dim=hf["d_ff"],
        key_value_dim=hf["d_kv"], dropout=hf["dropout_rate"], activation=ffn.split("-")[-1],
        use_gated_activation=ffn.startswith("gated-"),
        layer_norm_epsilon=hf["layer_norm_epsilon"],
        tie_embedding_weights=hf["tie_word_embeddings"], dtype=dtype)
    return keras_hub.models.T5Seq2SeqLM(backbone=backbone, preprocessor=None)


def run_keras_hub(spec) -> list:
    import keras
    import keras_hub
    import numpy as np

    hf = spec["hf_config"]
    records = []
    b, li, lt = spec["batch_size"], spec["inputs_length"], spec["targets_length"]
    version = {"version": keras_hub.__version__}
    if "train" in spec["works"]:
        batch = synthetic_batch(hf["vocab_size"], b, li, lt, spec["seed"])
        x = {"encoder_token_ids": batch["encoder_input_tokens"],
             "encoder_padding_mask": batch["encoder_input_tokens"] != 0,
             "decoder_token_ids": batch["decoder_input_tokens"],
             "decoder_padding_mask": np.ones_like(batch["decoder_input_tokens"], bool)}
        for precision in spec["precisions"]:
            for mode in spec["modes"]:
                def train(precision=precision, mode=mode):
                    lm = _keras_hub_lm(hf, precision)
                    lm.compile(optimizer=keras.optimizers.AdamW(1e-4, weight_decay=0.01),
                               loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                               jit_compile=mode == "xla")
                    step = lambda: lm.train_on_batch(  # noqa: E731
                        x, batch["decoder_target_tokens"],
                        sample_weight=batch["decoder_loss_weights"])
                    return {**time_calls(step, spec["train_steps"], spec["warmup_steps"]),
                            "tokens": b * (li + lt), **version}
                _guarded(records, "keras_hub", "train", train, precision=precision, mode=mode)
    decode = _decode_works(spec)
    if decode:
        lm = _keras_hub_lm(hf, "float32")
        rng = np.random.default_rng(spec["seed"])
        length = spec["new_tokens"] + 1  # the start token, then the new ones
        for work, method, batch_size in decode:
            tokens = rng.integers(2, min(hf["vocab_size"], 32000),
                                  (batch_size, spec["input_length"])).astype(np.int32)
            inputs = {"encoder_token_ids": tokens, "encoder_padding_mask": tokens != 0,
                      "decoder_token_ids": np.zeros((batch_size, length), np.int32),
                      "decoder_padding_mask": np.arange(length)[None, :].repeat(batch_size, 0)
                      < 1}
            for mode in spec["modes"]:
                def run(method=method, mode=mode, inputs=inputs):
                    sampler = ("greedy" if method == "greedy" else
                               keras_hub.samplers.BeamSampler(num_beams=spec["num_beams"]))
                    lm.compile(sampler=sampler, jit_compile=mode == "xla")
                    call = lambda: lm.generate(inputs, stop_token_ids=None)  # noqa: E731
                    return {**time_calls(call, spec["decode_repeats"], warmup=1),
                            "tokens": inputs["encoder_token_ids"].shape[0] * spec["new_tokens"],
                            **version}
                _guarded(records, "keras_hub", work, run, precision="float32", mode=mode)
    return records


# ---------------------------------------------------------------------------------- HF


def run_hf(spec) -> list:
    import numpy as np
    import torch
    import transformers

    torch.manual_seed(spec["seed"])
    torch.set_num_threads(os.cpu_count() or 1)
    hf = {k: v for k, v in spec["hf_config"].items() if k != "architectures"}
    config = transformers.T5Config(**hf)  # hf_config: t5core's, dropout_rate included
    version = {"version": f"transformers {transformers.__version__}, torch {torch.__version__}"}
    records = []
    b, li, lt = spec["batch_size"], spec["inputs_length"], spec["targets_length"]
    if "train" in spec["works"]:
        batch = {k: torch.from_numpy(v) for k, v in
                 synthetic_batch(config.vocab_size, b, li, lt, spec["seed"]).items()}
        labels = batch["decoder_target_tokens"].long()
        for precision in spec["precisions"]:
            def train(precision=precision):
                model = transformers.T5ForConditionalGeneration(config).train()
                optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)

                def step():
                    with torch.autocast("cpu", torch.bfloat16,
                                        enabled=precision == "mixed_bfloat16"):
                        loss = model(input_ids=batch["encoder_input_tokens"].long(),
                                     decoder_input_ids=batch["decoder_input_tokens"].long(),
                                     labels=labels).loss
                    loss.backward()
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                    return float(loss)
                return {**time_calls(step, spec["train_steps"], spec["warmup_steps"]),
                        "tokens": b * (li + lt), **version}
            _guarded(records, "hf", "train", train, precision=precision, mode="eager")
    decode = _decode_works(spec)
    if decode:
        model = transformers.T5ForConditionalGeneration(config).eval()
        rng = np.random.default_rng(spec["seed"])
        for work, method, batch_size in decode:
            tokens = torch.from_numpy(rng.integers(
                2, min(config.vocab_size, 32000), (batch_size, spec["input_length"]))).long()
            beams = spec["num_beams"] if method == "beam" else 1

            def run(tokens=tokens, beams=beams):
                n = spec["new_tokens"]

                def call():  # min_new_tokens masks EOS, so all n tokens are decoded
                    with torch.inference_mode():
                        model.generate(input_ids=tokens, attention_mask=torch.ones_like(tokens),
                                       max_new_tokens=n, min_new_tokens=n, num_beams=beams,
                                       do_sample=False)
                return {**time_calls(call, spec["decode_repeats"], warmup=1),
                        "tokens": tokens.shape[0] * n, **version}
            _guarded(records, "hf", work, run, precision="float32", mode="eager")
    return records


RUNNERS = {"t5core": run_t5core, "keras_hub": run_keras_hub, "hf": run_hf}


# ---------------------------------------------------------------------------------- driver


def run_side_subprocess(side, spec, python=None, timeout=3600, env=None) -> list:
    """Runs one side in a fresh interpreter (this file as a script); returns its records."""
    import tempfile

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as tmp:
        spec_path, out_path = os.path.join(tmp, "spec.json"), os.path.join(tmp, "out.json")
        with open(spec_path, "w") as f:
            json.dump(spec, f)
        command = [python or sys.executable, os.path.abspath(__file__), "--worker", side,
                   "--spec", spec_path, "--out", out_path]
        child_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
                     "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", ""),
                     **(env or {})}
        done = subprocess.run(command, env=child_env, timeout=timeout, capture_output=True,
                              text=True)
        if done.returncode != 0 or not os.path.exists(out_path):
            tail = (done.stderr or "")[-2000:]
            return [_record(side, "all", error=f"{side} worker exited {done.returncode}: {tail}")]
        with open(out_path) as f:
            return json.load(f)


def run_memory(settings, python=None) -> dict:
    """`measure_train_memory(**settings)` in a fresh process (its peak RSS is the step's)."""
    result = run_side_subprocess("memory", settings, python)
    return result[0] if isinstance(result, list) else result


def run_benchmarks(spec, sides=SIDES, pythons=None, log=print, rounds=1) -> dict:
    """Every side in turn, `rounds` times over, then the comparison; returns {"spec",
    "records", "rows", "peaks"}.

    On a shared host the speed of the machine drifts over minutes; with several rounds every
    side is measured early and late, and the table takes each measurement's median over rounds
    (see `_best`).
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    if rounds > 1:
        records = []
        for index in range(rounds):
            log(f"[benchmark] round {index + 1} of {rounds}")
            records += [{**r, "round": index}
                        for r in run_benchmarks(spec, sides, pythons, log)["records"]]
        return summarize({**spec, "hf_config": _t5core_config(spec).to_dict()}, records)
    spec = {**spec, "hf_config": _t5core_config(spec).to_dict()}
    records = []
    groups = [[w for w in group if w in spec["works"]] for group in (["train"], ["greedy", "beam"])]
    floor = spec["decode_floor"] and bool(_decode_works(spec))  # only when decoding is timed
    for side in sides:
        runs = []
        if side == "t5core":  # the matmul peaks, decoding floor and data pipelines, once
            runs.append(([], [w for w in spec["works"] if w == "data"], True))
        # HF runs eagerly: it has no modes to separate.
        for modes in [spec["modes"]] if side == "hf" else [[mode] for mode in spec["modes"]]:
            runs += [(modes, works, False) for works in groups if works]
        for modes, works, extras in runs:
            label = " ".join(filter(None, ["eager" if side == "hf" else "/".join(modes),
                                           *works, "peaks" if extras else ""]))
            log(f"[benchmark] {side} {label} ...")
            start = time.perf_counter()
            records += run_side_subprocess(
                side, {**spec, "modes": modes, "works": works, "extras": extras,
                       "decode_floor": floor},
                (pythons or {}).get(side))
            log(f"[benchmark] {side} {label} done in {time.perf_counter() - start:.0f} s")
    return summarize(spec, records)


def _lower_median(items, key):
    """The median item by `key`; of an even count, the lower of the middle two (for times, the
    faster)."""
    return sorted(items, key=key)[(len(items) - 1) // 2]


def _best(records, side, work, precision):
    """The fastest mode's record of a side for a work (and precision for training); over
    several rounds, each mode's median record (by seconds; of an even count, the faster of the
    middle two) stands for it."""
    found = [r for r in records if r["side"] == side and r["work"] == work and "seconds" in r
             and (precision is None or r.get("precision") == precision)]
    by_mode = {}
    for record in found:
        by_mode.setdefault(record.get("mode"), []).append(record)
    medians = [_lower_median(rs, lambda r: r["seconds"]) for rs in by_mode.values()]
    return min(medians, key=lambda r: r["seconds"]) if medians else None


def summarize(spec, records) -> dict:
    """Rows of the side-by-side table: each side's fastest mode and the speed ratios."""
    measured = [r["peaks"] for r in records if r["work"] == "peaks" and "peaks" in r]
    peaks = {k: statistics.median(p[k] for p in measured if k in p)
             for k in (measured[0] if measured else {})}
    rows = []
    train_works = [("train", p) for p in spec["precisions"]] if "train" in spec["works"] else []
    for work, precision in train_works + [(w, None) for w, _, _ in _decode_works(spec)]:
        row = {"work": work, "precision": precision, "sides": {}, "ratios": {}}
        for side in SIDES:
            best = _best(records, side, work, precision)
            if best is None:
                continue
            entry = {"seconds": best["seconds"], "mode": best.get("mode"),
                     "tokens_per_second": best["tokens"] / best["seconds"]}
            if work == "train" and peaks:
                dtype = "bfloat16" if precision == "mixed_bfloat16" else "float32"
                peak = max(peaks.get(f"{dtype}_graph", 0), peaks.get(f"{dtype}_xla", 0))
                flops = next((r["flops"] for r in records if r.get("flops")), None)
                if flops and peak:
                    entry["mfu"] = flops / best["seconds"] / peak
            row["sides"][side] = entry
        ours = row["sides"].get("t5core")
        for side in ("keras_hub", "hf"):
            if ours and side in row["sides"]:
                row["ratios"][side] = row["sides"][side]["seconds"] / ours["seconds"]
        rows.append(row)
    data = next((r for r in records if r["work"] == "data" and "rows_per_second" in r), None)
    errors = [r for r in records if "error" in r]
    # Over rounds, the floor is a time like the table's: its lower median, as `_best` takes.
    floors = [r["decode_floor"] for r in records if "decode_floor" in r]
    floor = _lower_median(floors, lambda f: f["seconds_per_step"]) if floors else None
    return {"spec": spec, "peaks": peaks, "rows": rows, "records": records,
            "data": data and data["pipelines"], "errors": errors, "decode_floor": floor}


def format_table(summary) -> str:
    """A Markdown table: seconds (mode) per side, tokens/s and MFU for ours, speed ratios."""
    names = {"t5core": "t5core", "keras_hub": "keras-hub", "hf": "HF transformers"}
    head = ("| work | " + " | ".join(names.values())
            + " | t5core tokens/s | t5core MFU | vs keras-hub | vs HF |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for row in summary["rows"]:
        label = row["work"] + (f" {row['precision']}" if row["precision"] else "")
        cells = []
        for side in names:
            entry = row["sides"].get(side)
            cells.append(f"{entry['seconds']:.3f} s ({entry['mode']})" if entry else "-")
        ours = row["sides"].get("t5core", {})
        tps = f"{ours['tokens_per_second']:.0f}" if ours else "-"
        mfu = f"{ours['mfu']:.0%}" if "mfu" in ours else "-"
        ratios = []
        for side in ("keras_hub", "hf"):
            ratio = row["ratios"].get(side)
            ratios.append(f"{ratio:.2f}x" if ratio else "-")
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {tps} | {mfu} | "
                     + " | ".join(ratios) + " |")
    text = "\n".join(lines)
    if summary["peaks"]:
        text += "\n\nMeasured matmul peak (2048^2, GFLOP/s): " + ", ".join(
            f"{k} {v / 1e9:.0f}" for k, v in summary["peaks"].items())
    floor = summary.get("decode_floor")
    if floor:
        tokens = summary["spec"]["new_tokens"]
        text += (f"\nDecoding floor at batch 1 (decoder and output weights, "
                 f"{floor['bytes_per_step'] / 1e6:.0f} MB per token, read by XLA's matrix-vector "
                 f"products at {floor['gb_per_second']:.0f} GB/s): "
                 f"{floor['seconds_per_step'] * 1e3:.2f} ms per token, "
                 f"{floor['seconds_per_step'] * tokens:.3f} s for {tokens} tokens")
    if summary.get("data"):
        text += "\nData pipelines (rows/s, batch 8): " + ", ".join(
            f"{k} {v['rows_per_second']}" for k, v in summary["data"].items())
    for error in summary["errors"]:
        text += (f"\nERROR {error['side']} {error['work']} {error.get('precision', '')} "
                 f"{error.get('mode', '')}: {error['error'][:300]}")
    return text


def _worker_main(argv):
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", choices=SIDES + ("memory",), required=True)
    parser.add_argument("--spec", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    with open(args.spec) as f:
        spec = json.load(f)
    if args.worker == "memory":
        result = measure_train_memory(**spec)
    else:
        result = RUNNERS[args.worker](spec)
    with open(args.out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    _worker_main(sys.argv[1:])
