from setuptools import find_packages, setup

setup(
    name="t5core",
    version="0.1.0",
    description="T5 in pure TensorFlow / Keras 3: every public checkpoint, fast training and decoding",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["t5core", "t5core.*"]),
    # The same programs as `python scripts/<name>.py` (t5core/commands/).
    entry_points={"console_scripts": [
        "t5core-train = t5core.commands.train:main",
        "t5core-generate = t5core.commands.generate:main",
        "t5core-evaluate = t5core.commands.evaluate:main",
        "t5core-export = t5core.commands.export:main",
        "t5core-convert = t5core.commands.convert_checkpoint:main",
        "t5core-inspect = t5core.commands.inspect_model:main",
        "t5core-sweep = t5core.commands.sweep:main",
    ]},
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3.0",
        "tensorflow-text",
        "sentencepiece",
        "numpy",
        "absl-py",
        "tensorflow-datasets",
        "safetensors",
        "h5py",
        "msgpack",
        "ml_dtypes",
        "tqdm",
        "tensorboard",
        "regex",  # Unicode's grapheme clusters: cutting text without splitting a character
    ],
    extras_require={
        "metrics": ["sacrebleu>=2.0", "rouge-score>=0.1.2", "seqeval>=1.2.2", "scikit-learn>=1.0",
                    "scipy>=1.7"],
        "inspect": ["matplotlib"],
        "t5x": ["tensorstore"],
        "torch": ["torch"],
        "sweep": ["optuna>=4.0", "pyyaml"],
        "benchmark": ["keras-hub>=0.32"],
        # Everything the suite imports (scikit-learn: the reference the metrics are checked
        # against).
        "test": ["pytest", "sacrebleu>=2.0", "rouge-score>=0.1.2", "seqeval>=1.2.2",
                 "scikit-learn>=1.0", "scipy>=1.7", "matplotlib", "optuna>=4.0", "pyyaml",
                 "hypothesis>=6.0", "tensorstore"],
    },
)
