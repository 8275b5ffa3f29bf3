from setuptools import find_packages, setup

setup(
    name="t5core",
    version="0.1.0",
    description="T5 in pure TensorFlow / Keras 3: every public checkpoint, fast training and decoding",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["t5core", "t5core.*"]),
    include_package_data=True,
    package_data={"t5core": ["data/embedded/*"]},
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
        "tqdm",
    ],
    extras_require={
        "metrics": ["sacrebleu", "rouge-score", "seqeval", "scikit-learn", "scipy"],
        "inspect": ["matplotlib"],
        "t5x": ["tensorstore"],
        "test": ["pytest", "sacrebleu", "rouge-score", "seqeval", "scikit-learn", "scipy",
                 "matplotlib"],
    },
)
