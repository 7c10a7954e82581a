#!/usr/bin/env bash
# The Python package's tests: a venv (.venv at the repository root, or $RECAGENT_VENV) with
# maturin, pytest, numpy, pandas, pyarrow and polars (the last two read the Parquet output); the
# package built with `maturin develop` (a debug build in the workspace's target folder, shared
# with `cargo test`); the CLI binary for the determinism and Parquet tests ($RECAGENT_BIN,
# default target/debug/recagent, built when missing); then pytest.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
venv="${RECAGENT_VENV:-$root/.venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check maturin pytest numpy pandas pyarrow polars
export RECAGENT_BIN="${RECAGENT_BIN:-$root/target/debug/recagent}"
[ -x "$RECAGENT_BIN" ] || (cd "$root" && cargo build --bin recagent)
(cd "$here" && VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH" maturin develop --quiet)
cd "$here" && "$venv/bin/python" -m pytest -q tests "$@"
