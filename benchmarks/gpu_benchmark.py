"""One short, prepared GPU check: t5-v1_1-base bf16 training with XLA, and decoding.

  python benchmarks/gpu_benchmark.py --out $OUT/gpu_benchmark.json

Trains `--steps` AdamW steps of t5-v1_1-base (random weights, dropout 0, mixed_bfloat16, the
whole step under XLA: forward/backward and, on one replica, the fused optimizer update) at batch
128 x 512/114, then prints s/step, tokens/s and MFU against the GPU's dense bf16 peak
(--peak_tflops, default the H200's 989; the measured matmul rate is printed beside it). Then
decoding latency: greedy batch 1 and 32, beam 4 at batch 8, 64 input -> 32 new tokens (XLA),
with the weights in float32, bfloat16 (dtype "bfloat16") and int8 (Keras' quantization,
`model.quantize("int8")`), the same random weights in each (--decode_precisions).
Runs on CPU too (slowly), so the script itself can be checked without a GPU: --tiny.
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="t5-v1_1-base")
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--inputs_length", type=int, default=512)
    parser.add_argument("--targets_length", type=int, default=114)
    parser.add_argument("--steps", type=int, default=10, help="timed steps (after 3 warm-up)")
    parser.add_argument("--precision", default="mixed_bfloat16")
    parser.add_argument("--optimizer", default="adamw", choices=("adamw", "adafactor"))
    parser.add_argument("--no_jit", action="store_true", help="graph mode instead of XLA")
    parser.add_argument("--remat", action="store_true", help="rematerialise every block")
    parser.add_argument("--peak_tflops", type=float, default=989.0,
                        help="dense bf16 peak of the accelerator (H200 SXM: 989)")
    parser.add_argument("--skip_decoding", action="store_true")
    parser.add_argument("--decode_precisions", default="float32,bfloat16,int8",
                        help="comma-separated: float32, bfloat16, int8")
    parser.add_argument("--tiny", action="store_true", help="a tiny model: checks the script")
    parser.add_argument("--out", default="", help="write the results here as JSON")
    args = parser.parse_args(argv)

    import tensorflow as tf

    import speed as benchmark
    from t5core.config import T5Config
    from t5core.training.flops import measure_matmul_peak, training_flops

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:  # allocate as needed, so the printed memory use means something
        tf.config.experimental.set_memory_growth(gpu, True)
    device = tf.config.experimental.get_device_details(gpus[0]).get("device_name") if gpus \
        else "CPU"
    config = T5Config.from_preset(args.preset).replace(dropout_rate=0.0)
    if args.tiny:
        config = config.replace(d_model=32, d_ff=64, d_kv=8, num_heads=4, num_layers=2,
                                num_decoder_layers=2, vocab_size=256)
    result = {"device": device, "preset": args.preset, "tiny": args.tiny,
              "batch": [args.batch_size, args.inputs_length, args.targets_length],
              "precision": args.precision, "jit_compile": not args.no_jit, "remat": args.remat,
              "optimizer": args.optimizer}
    matmul_n = 256 if args.tiny else 8192
    result["measured_bf16_matmul_tflops"] = measure_matmul_peak(
        tf.bfloat16, n=matmul_n, seconds=0.5 if args.tiny else 2.0, jit_compile=True) / 1e12
    print(f"device {device}; bf16 {matmul_n}^2 matmul under XLA: "
          f"{result['measured_bf16_matmul_tflops']:.0f} TFLOP/s", flush=True)

    batch = benchmark.synthetic_batch(config.vocab_size, args.batch_size, args.inputs_length,
                                      args.targets_length)
    timing = _train_seconds(config, args, batch)
    flops = training_flops(config, args.batch_size, args.inputs_length, args.targets_length)
    tokens = args.batch_size * (args.inputs_length + args.targets_length)
    result["train"] = {**timing, "tokens_per_second": tokens / timing["seconds"],
                       "model_tflops_per_step": flops / 1e12,
                       "mfu": flops / timing["seconds"] / (args.peak_tflops * 1e12)}
    if gpus:
        result["train"]["peak_gpu_memory_gib"] = (
            tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**30)
    train = result["train"]
    shape = " (--tiny shape)" if args.tiny else ""
    print(f"train {args.preset}{shape} {args.precision} {'XLA' if not args.no_jit else 'graph'} "
          f"batch {args.batch_size}x{args.inputs_length}/{args.targets_length}: "
          f"{train['seconds']:.3f} s/step, {train['tokens_per_second']:.0f} tokens/s, "
          f"MFU {train['mfu']:.1%} of {args.peak_tflops:.0f} TFLOP/s "
          f"(compile + warm-up {train['warmup_seconds']} s)", flush=True)

    if not args.skip_decoding:
        result["decoding"] = {}
        for precision in args.decode_precisions.split(","):
            try:
                result["decoding"][precision] = _decode(config, precision)
            except Exception as err:  # one precision failing must not lose the others' figures
                result["decoding"][precision] = {"error": f"{type(err).__name__}: {err}"}
                print(f"decode {precision}: {type(err).__name__}: {err}", flush=True)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
        print(f"wrote {args.out}")
    return result


def _decode(config, precision):
    """Decoding latencies of a model whose weights are in `precision` (see the docstring)."""
    import keras

    from decoding_speed import benchmark_decoding
    from t5core.model import T5Model

    keras.utils.set_random_seed(0)  # the same weights for every precision
    model = T5Model(config, dtype="bfloat16" if precision == "bfloat16" else None)
    if precision == "int8":
        model.quantize("int8")
    elif precision not in ("float32", "bfloat16"):
        raise ValueError(f"--decode_precisions: unknown {precision!r}")
    return benchmark_decoding(
        model=model, cases=(("greedy", 1, 1), ("greedy", 32, 1), ("beam", 8, 4)),
        input_length=64, new_tokens=32, jit_compile=True, repeats=3,
        log=lambda line: print(f"decode {precision:8s} " + line, flush=True))


def _train_seconds(config, args, batch):
    import tensorflow as tf

    import speed as benchmark
    from t5core.model import T5Model
    from t5core.optimizers import make_optimizer
    from t5core.training.steps import StepBuilder

    model = T5Model(config, dtype=args.precision, remat=args.remat)
    optimizer = make_optimizer(args.optimizer, 1e-4 if args.optimizer == "adamw" else 1e-2)
    optimizer.build(model.trainable_variables)
    step = StepBuilder(model, optimizer, tf.distribute.get_strategy(),
                       jit_compile=not args.no_jit).train_step()
    features = {k: tf.constant(v) for k, v in batch.items()}
    losses = []
    start = time.perf_counter()
    timing = benchmark.time_calls(lambda: losses.append(float(step(features)["loss"])),
                                  args.steps, warmup=3)
    timing["total_seconds"] = time.perf_counter() - start
    timing["first_loss"], timing["last_loss"] = losses[0], losses[-1]
    return timing


if __name__ == "__main__":
    from t5core import cli

    cli.run_main(main)
