"""Install torchreid-pgflkd: PGFL-KD for occluded person re-id, as a torchreid plugin."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

# torch and torchvision: the range the code supports, so that installing the plugin keeps a
# user's working torch. torch >= 2.5 for torch.serialization.safe_globals (weights-only
# checkpoint loads) and torch.onnx.export(dynamo=...); torchvision 0.20 is 2.5's build. The
# pair this package is tested with is pinned in constraints.txt (the README's install line):
# torchvision's C extension is compiled against one torch release and fails to import with
# another (DESIGN.md section 7), so the two must always come as a matching pair.
TORCH_PAIR = ["torch>=2.5,<2.16", "torchvision>=0.20,<0.31"]

# torchreid 0.2.5 on PyPI declares no dependencies, but importing it needs these.
TORCHREID_RUNTIME = [
    "torchreid==0.2.5",
    "scipy",
    "opencv-python-headless",
    "tensorboard",
    "gdown",
    "matplotlib",
    "Pillow",
]

setup(
    name="torchreid-pgflkd",
    version="0.1.0",
    description="PGFL-KD (pose-guided feature learning with knowledge distillation) for torchreid",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["torchreid_pgflkd", "torchreid_pgflkd.*"]),
    include_package_data=True,
    install_requires=TORCH_PAIR
    + TORCHREID_RUNTIME
    + ["numpy", "tabulate", "yacs", "faiss-cpu", "h5py", "tqdm", "PyYAML"],
    extras_require={
        # setuptools: the offline install check in tests/test_plugin_install.py builds with it
        "dev": ["pytest", "ruff", "onnx", "onnxruntime", "setuptools>=70.1"],
        "export": ["onnx", "onnxruntime"],
    },
    entry_points={"console_scripts": ["pgflkd = torchreid_pgflkd.cli.main:main"]},
    license="MIT",
)
