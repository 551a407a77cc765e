"""The test's stand-in for the SageMaker scikit-learn *serving* container, run as a child process.

It does what the container does with the project's inference script: puts the unpacked code
folder (sourcedir.tar.gz) first on the path, imports ``sagemaker_inference`` from it, and runs
``model_fn`` -> ``input_fn`` -> ``predict_fn`` -> ``output_fn`` on one request body::

    python sagemaker_container.py --code DIR --model-dir DIR --content-type T --accept A IN OUT

The model's container Environment (MODEL_VERSION, MODEL_SHA256) comes in as environment
variables, as in the container. Exit code 0 on success; the error on stderr otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


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

    model = script.model_fn(args.model_dir)
    frame = script.input_fn(Path(args.input).read_bytes(), args.content_type)
    body, _ = script.output_fn(script.predict_fn(frame, model), args.accept)
    Path(args.output).write_text(body)
    print(f"inference script loaded from {script.__file__}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
