"""The test's stand-in for the SageMaker scikit-learn *serving* container, run as a child process.

It does what the container does with the project's inference script: puts the unpacked code
folder (sourcedir.tar.gz) first on the path, imports ``sagemaker_inference`` from it, and runs
``model_fn`` -> ``input_fn`` -> ``predict_fn`` -> ``output_fn`` on one request body::

    python sagemaker_container.py --code DIR --model-dir DIR --content-type T --accept A IN OUT

The model's container Environment (MODEL_VERSION, MODEL_SHA256) comes in as environment
variables, as in the container. Exit code 0 on success; the error on stderr otherwise.

The container's scikit-learn: a prebuilt image has the scikit-learn of its framework version
(``sagemaker-scikit-learn:1.9-0-cpu-py3`` has 1.9), and the stand-ins run the scikit-learn the
project's lock pins. :func:`container_mismatch` says when they differ - the stand-in then cannot
be that container, and the job fails naming both versions - and :func:`load_model` refuses a
model pickled by another scikit-learn (which the real container would only load with an
``InconsistentVersionWarning``, "might lead to breaking code or invalid results").
"""

from __future__ import annotations

import argparse
import re
import sys
import warnings
from pathlib import Path
from typing import Any

LOCK = Path(__file__).resolve().parent.parent / "requirements.txt"
_SKLEARN_IMAGE = re.compile(r"/sagemaker-scikit-learn:(\d+)\.(\d+)")


def locked_sklearn() -> str:
    """The scikit-learn version the project's lock (requirements.txt) pins."""
    for line in LOCK.read_text().splitlines():
        if line.startswith("scikit-learn=="):
            return line.split("==", 1)[1].split()[0]
    raise RuntimeError(f"{LOCK} pins no scikit-learn")


def container_mismatch(image: str) -> str | None:
    """Why the stand-in cannot run as the container ``image`` (None when it can).

    Only the prebuilt scikit-learn images are emulated, and only one whose framework version
    (major.minor) is the lock's: the stand-in runs the lock's scikit-learn.
    """
    found = _SKLEARN_IMAGE.search(image or "")
    if found is None:
        return f"the stand-in runs only the prebuilt sagemaker-scikit-learn images, not {image!r}"
    framework, locked = f"{found[1]}.{found[2]}", locked_sklearn()
    if locked.split(".")[:2] != framework.split("."):
        return (
            f"the container {image} has scikit-learn {framework}, but the project's lock pins "
            f"scikit-learn {locked}: set [aws] sklearn_version to a {'.'.join(locked.split('.')[:2])} "
            "image, or lock the container's version"
        )
    return None


def load_model(script: Any, model_dir: str) -> Any:
    """The script's ``model_fn``, refusing a model pickled by another scikit-learn."""
    from sklearn.exceptions import InconsistentVersionWarning

    with warnings.catch_warnings():
        warnings.simplefilter("error", InconsistentVersionWarning)
        try:
            return script.model_fn(model_dir)
        except InconsistentVersionWarning as exc:
            raise RuntimeError(
                f"the model was trained with another scikit-learn than the container's: {exc}"
            ) from None


def main() -> int:
    """Serve one request from a file into a file."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--code", required=True)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--content-type", required=True)
    parser.add_argument("--accept", required=True)
    parser.add_argument("input")
    parser.add_argument("output")
    args = parser.parse_args()
    # only the code folder, as in the container: not the project root the virtualenv's .pth adds
    root = str(Path(__file__).resolve().parent.parent)
    sys.path[:] = [args.code, *(p for p in sys.path if p.rstrip("/") != root and p not in ("", "."))]
    import sagemaker_inference as script

    model = load_model(script, args.model_dir)
    frame = script.input_fn(Path(args.input).read_bytes(), args.content_type)
    body, _ = script.output_fn(script.predict_fn(frame, model), args.accept)
    Path(args.output).write_text(body)
    print(f"inference script loaded from {script.__file__}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
