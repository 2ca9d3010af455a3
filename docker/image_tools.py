"""Helpers the Docker builds run. Standard library only: the first one runs before anything is installed.

    python image_tools.py requirements EXTRA [PYPROJECT]
        Print the requirements that ``pip install '.[EXTRA]'`` asks for (the base dependencies plus the
        extra, with the project's references to its own extras expanded), one per line. The images install
        these with ``-c constraints.txt`` before copying the source, so a code change does not reinstall
        every dependency; the project itself is then installed editable with ``--no-deps``.

    python image_tools.py verify worker --torch VERSION
    python image_tools.py verify studio
        Check the finished environment and exit non-zero naming every problem found.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

# Modules the studio image must not have: the studio talks to Redis only and never loads a model.
ENGINE_ONLY_MODULES = ("torch", "onnxruntime", "onnx", "tensorrt")
STUDIO_MODULES = ("gradio", "redis", "rq", "autovoice.cli")
# The CUDA driver library comes from the host at run time (NVIDIA Container Toolkit), not from the image.
HOST_PROVIDED_LIBRARIES = ("libcuda.so",)


def normalize(name: str) -> str:
    """A distribution name in PEP 503 normal form (``Foo_Bar`` -> ``foo-bar``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def extra_requirements(pyproject: Path, extra: str) -> list[str]:
    """The requirement strings ``pip install '.[extra]'`` resolves from, in first-seen order.

    Raises:
        SystemExit: ``extra`` (or an extra it refers to) is not defined in ``pyproject``.
    """
    import tomllib

    project = tomllib.loads(pyproject.read_text())["project"]
    name = normalize(project["name"])
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})
    self_ref = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*\[([^\]]*)\]\s*")
    requirements: list[str] = []
    expanded: set[str] = set()

    def add(items: list[str]) -> None:
        for item in items:
            match = self_ref.fullmatch(item)
            if match and normalize(match.group(1)) == name:
                for sub in match.group(2).split(","):
                    expand(sub.strip())
            elif item not in requirements:
                requirements.append(item)

    def expand(key: str) -> None:
        if key in expanded:
            return
        if key not in optional:
            raise SystemExit(f"image_tools: {pyproject} defines no extra {key!r}")
        expanded.add(key)
        add(optional[key])

    add(list(project.get("dependencies", [])))
    expand(extra)
    return requirements


def installed_distributions() -> set[str]:
    return {normalize(d.metadata["Name"]) for d in importlib.metadata.distributions() if d.metadata["Name"]}


def missing_libraries(shared_object: Path) -> list[str]:
    """Libraries ``ldd`` cannot find for ``shared_object``, apart from the host's driver library."""
    result = subprocess.run(["ldd", str(shared_object)], capture_output=True, text=True, check=False)
    missing = []
    for line in result.stdout.splitlines():
        if "not found" in line:
            library = line.split("=>")[0].strip()
            if not library.startswith(HOST_PROVIDED_LIBRARIES):
                missing.append(library)
    return missing


def verify_worker(torch_version: str) -> list[str]:
    problems: list[str] = []
    dists = installed_distributions()
    if "onnxruntime" in dists:
        problems.append("the CPU package onnxruntime is installed: it and onnxruntime-gpu ship the same "
                        "module, so only onnxruntime-gpu may be installed")
    if "onnxruntime-gpu" not in dists:
        problems.append("onnxruntime-gpu is not installed")
    else:
        import onnxruntime

        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            problems.append("onnxruntime has no CUDAExecutionProvider: this is not the GPU build")
        provider = Path(onnxruntime.__file__).parent / "capi" / "libonnxruntime_providers_cuda.so"
        if not provider.exists():
            problems.append(f"{provider} is missing")
        else:
            missing = missing_libraries(provider)
            if missing:
                problems.append(f"ONNX Runtime's CUDA provider needs libraries this image lacks: "
                                f"{', '.join(missing)} (its CUDA major must match the base image's)")
    try:
        import tensorrt
    except ImportError as exc:
        problems.append(f"the base image's TensorRT Python bindings do not import: {exc}")
    else:
        if not tensorrt.__version__.startswith("10."):
            problems.append(f"TensorRT {tensorrt.__version__} is not 10.x")
    import torch

    if torch.__version__.split("+")[0] != torch_version:
        problems.append(f"torch {torch.__version__} is installed, the pin is {torch_version}")
    base_cuda = os.environ.get("CUDA_VERSION", "")
    torch_cuda = torch.version.cuda or ""
    if not torch_cuda:
        problems.append(f"torch {torch.__version__} is a CPU-only build")
    elif base_cuda and torch_cuda.split(".")[0] != base_cuda.split(".")[0]:
        problems.append(f"torch is built for CUDA {torch_cuda}, the base image carries CUDA {base_cuda}")
    return problems


def verify_studio() -> list[str]:
    problems: list[str] = []
    dists = installed_distributions()
    for module in ENGINE_ONLY_MODULES:
        if importlib.util.find_spec(module) is not None or module in dists:
            problems.append(f"{module} is installed: the studio image takes only the studio extra")
    for module in STUDIO_MODULES:
        if importlib.util.find_spec(module) is None:
            problems.append(f"{module} does not import")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="image_tools.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    req = sub.add_parser("requirements", help="print an extra's requirements")
    req.add_argument("extra")
    req.add_argument("pyproject", nargs="?", default="pyproject.toml", type=Path)
    ver = sub.add_parser("verify", help="check the installed environment of an image")
    ver.add_argument("image", choices=("worker", "studio"))
    ver.add_argument("--torch", help="the torch version the worker must have (the Makefile's pin)")
    args = parser.parse_args(argv)

    if args.command == "requirements":
        print("\n".join(extra_requirements(args.pyproject, args.extra)))
        return 0
    if args.image == "worker":
        if not args.torch:
            parser.error("verify worker needs --torch VERSION")
        problems = verify_worker(args.torch)
    else:
        problems = verify_studio()
    for problem in problems:
        print(f"image_tools: {args.image} image: {problem}", file=sys.stderr)
    if not problems:
        print(f"image_tools: {args.image} image: ok")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
