"""Peak RSS reading a large .safetensors file tensor by tensor, three ways.

  python benchmarks/safetensors_memory.py [--gib 1]

streaming: t5core's plain seek-and-read path (what gs:// files take); library: the
`safetensors` library, opened per tensor (what local files take); whole-file: the file's bytes
read into memory and parsed by `safetensors.numpy.load`, the library's only way to read a file
it cannot open by path. Each runs in a fresh process; the figure is its peak RSS (VmHWM, reset
after imports through /proc/self/clear_refs) minus its RSS after imports.
"""

import argparse
import os
import subprocess
import sys
import tempfile


def _status_kib(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def _measure(mode, path):
    from safetensors.numpy import load

    from t5core.checkpoints.safetensors_io import SafetensorsReader

    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets the peak RSS to the current RSS
    base = _status_kib("VmRSS")
    if mode == "whole-file":
        with open(path, "rb") as f:
            tensors = load(f.read())
        for name in sorted(tensors):
            float(tensors[name].reshape(-1)[0])
    else:
        reader = SafetensorsReader(path)
        if mode == "streaming":
            for file_reader in set(reader._where.values()):
                file_reader._library = False
        for name in sorted(reader.shapes):
            array = reader.read(name)
            float(array.reshape(-1)[0])
            del array
    peak = _status_kib("VmHWM")
    print(f"{mode}: peak RSS {(peak - base) / 1024:.0f} MiB above the {base / 1024:.0f} MiB "
          "after imports")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--measure", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        return _measure(*args.measure)
    tensors = 16
    each = int(args.gib * (1 << 30)) // tensors // 4
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.safetensors")
        # In a child process, so that no measuring process inherits the arrays' pages.
        subprocess.run([sys.executable, "-c", "import sys, numpy as np; from safetensors.numpy "
                        "import save_file; n, each = int(sys.argv[2]), int(sys.argv[3]); "
                        "save_file({f't{i:02d}': np.full(each, i, np.float32) "
                        "for i in range(n)}, sys.argv[1])", path, str(tensors), str(each)],
                       check=True)
        print(f"{os.path.getsize(path) / (1 << 20):.0f} MiB file, {tensors} tensors of "
              f"{each * 4 / (1 << 20):.0f} MiB")
        for mode in ("streaming", "library", "whole-file"):
            subprocess.run([sys.executable, __file__, "--measure", mode, path], check=True)


if __name__ == "__main__":
    main()
