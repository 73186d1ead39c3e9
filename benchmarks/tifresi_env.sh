#!/usr/bin/env bash
# Build tifresi (the reference PGHI implementation) in the benchmark's OWN venv, benchmarks/.venv-tifresi.
# tifresi is deliberately NOT a dependency of stylesynth: it is only compared against in benchmarks/pghi.py.
#
# Needs Debian's libfftw3-dev and liblapack-dev (ltfatpy, tifresi's dependency, compiles against them) plus
# Cython and numpy at build time. Usage: bash benchmarks/tifresi_env.sh   (idempotent; prints the reason and exits
# non-zero when it cannot be built; the benchmark then runs without the tifresi column and says why).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv-tifresi"
log="$here/.venv-tifresi.log"
python="${PYTHON:-python3}"

if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import tifresi.stft" 2>/dev/null; then
    echo "tifresi already available in $venv"
    exit 0
fi

need=()
for pkg in libfftw3-dev liblapack-dev libblas-dev gfortran; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing ${need[*]} (apt-get)"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}") >>"$log" 2>&1 \
            || { echo "cannot install ${need[*]} with apt-get (see $log)"; exit 3; }
    else
        echo "missing system packages ${need[*]} and not root: install them, then re-run"; exit 3
    fi
fi

"$python" -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip wheel setuptools >>"$log" 2>&1
# ltfatpy's build imports numpy and Cython; install them first and build without isolation so it sees them.
# Versions known to build and run together here (2026-11): ltfatpy 1.1.2, tifresi 0.1.4, numpy 1.26, Cython 0.29.
"$venv/bin/pip" install -q "numpy<2" "cython<3" scipy >>"$log" 2>&1 \
    || { echo "cannot install numpy/cython into $venv (see $log)"; exit 4; }
"$venv/bin/pip" install -q --no-build-isolation "ltfatpy==1.1.2" >>"$log" 2>&1 \
    || { echo "ltfatpy failed to build: $(grep -m1 -iE 'error' "$log" || echo 'see log') (full log: $log)"; exit 5; }
"$venv/bin/pip" install -q --no-build-isolation "tifresi==0.1.4" librosa >>"$log" 2>&1 \
    || { echo "tifresi failed to install: $(grep -m1 -iE 'error' "$log" || echo 'see log') (full log: $log)"; exit 6; }
"$venv/bin/python" -c "import tifresi.stft, tifresi.phase.pghi" >>"$log" 2>&1 \
    || { echo "tifresi installed but does not import (see $log)"; exit 7; }
echo "tifresi ready in $venv"
