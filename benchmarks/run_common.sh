#!/usr/bin/env bash
# Shared by benchmarks/run_<benchmark>.sh (sourced with the script's arguments): resolves
# DATA_ROOT (first argument, else $DATA_ROOT, else reid-data) and EXTRA (the KEY VALUE
# overrides after it), finds the pgflkd command, and defines need_dir, which stops with a
# message saying what to download and where to put it when a dataset folder is missing.
set -euo pipefail

DATA_ROOT="${1:-${DATA_ROOT:-reid-data}}"
EXTRA=("${@:2}")  # KEY VALUE overrides for both commands
if [[ ! -d "$DATA_ROOT" ]]; then
  echo "error: data root $DATA_ROOT does not exist (pass it as the first argument or DATA_ROOT)" >&2
  exit 1
fi
DATA_ROOT="$(cd "$DATA_ROOT" && pwd)"  # absolute: we run from the repository root
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python}"
if command -v pgflkd >/dev/null 2>&1; then
  PGFLKD=(pgflkd)
else
  PGFLKD=("$PYTHON" -m torchreid_pgflkd.cli.main)
fi

# need_dir WHAT URL CANDIDATE...: stop with a clear message unless one candidate folder exists.
need_dir() {
  local what="$1" url="$2"
  shift 2
  local candidate
  for candidate in "$@"; do
    [[ -d "$DATA_ROOT/$candidate" ]] && return 0
  done
  {
    echo "error: $what not found under DATA_ROOT=$DATA_ROOT"
    echo "  looked for: $(for c in "$@"; do printf '%s/%s ' "$DATA_ROOT" "$c"; done)"
    echo "  download it from $url and unpack it as $DATA_ROOT/$1"
    echo "  (or pass another root: $0 /path/to/reid-data, or DATA_ROOT=/path/to/reid-data)"
  } >&2
  exit 1
}

if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "warning: no GPU found (nvidia-smi missing); training on the CPU will take days" >&2
fi

