#!/usr/bin/env bash
# Install stylesynth on Debian 12 (or Ubuntu): system packages, a virtual environment in .venv, the package itself.
#
#   bash scripts/install.sh          # to run the server
#   bash scripts/install.sh --test   # also what the test suite needs
#
# Idempotent: a second run checks what is present (dpkg -s, the venv, a stamp of pyproject.toml) and skips it, so
# it takes about a second. Quiet: one line per step; a failing step prints its name and its log, and exits 1.
#
# Environment:
#   STYLESYNTH_TORCH_INDEX  a pip index URL to take torch (==2.13.0, as pinned in pyproject.toml) from before the
#                           rest, e.g. PyTorch's CPU-only index in the Docker image, where pip would otherwise
#                           download the multi-GB CUDA build. Empty (default): pip's own configuration decides.
#   PYTHON                  the Python (>= 3.11) to build the venv with; found automatically when unset.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Needed to run the server: Pure Data (patches), JACK (audio/MIDI graph), PortAudio (sounddevice has no bundled
# copy on Linux), libsndfile (soundfile).
APT_PACKAGES=(puredata-core jackd2 libportaudio2 libsndfile1 libjack-jackd2-0)
# Needed only by the test suite, on top of the above (the Pd, JACK and MIDI tests use the packages above):
# the shellcheck linter checks this script and .ci/run (tests/test_setup.py); Chromium is the real browser the web
# page's tests drive through Playwright (tests/test_web_page.py; never 'playwright install', which downloads one).
TEST_APT_PACKAGES=(shellcheck chromium)
# Installed only when no Python >= 3.11 with venv and ensurepip is found.
PYTHON_APT_PACKAGES=(python3 python3-venv python3-dev)
VENV=.venv

usage() {
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
}

with_test=0
for arg in "$@"; do
    case "$arg" in
        --test) with_test=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown option '$arg' (expected --test or --help)" >&2; exit 2 ;;
    esac
done

LOG=$(mktemp "${TMPDIR:-/tmp}/stylesynth-install.XXXXXX")
trap 'rm -f "$LOG"' EXIT

# step NAME COMMAND...: run quietly, print one line; on failure show the step's name and output, then stop.
step() {
    local name=$1
    shift
    printf '%-52s' "==> $name"
    if "$@" >"$LOG" 2>&1; then
        echo " ok"
    else
        local code=$?
        echo " FAILED"
        echo "install.sh: step '$name' failed (exit $code): $*" >&2
        tail -n 40 "$LOG" >&2
        exit 1
    fi
}

skip() {
    printf '%-52s %s\n' "==> $1" "${2:-already done}"
}

# Root runs apt directly; anyone else needs sudo.
if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
else
    SUDO=()
fi

apt_updated=0
apt_install() {
    if [ "$(id -u)" -ne 0 ] && [ ${#SUDO[@]} -eq 0 ]; then
        echo "not root and no sudo: install these as root: apt-get install $*" >&2
        return 1
    fi
    if [ "$apt_updated" -eq 0 ]; then
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        apt_updated=1
    fi
    # jackd2 asks whether to enable realtime limits; answer "no" so the install never waits for a person.
    echo "jackd2 jackd/tweak_rt_limits boolean false" | "${SUDO[@]}" debconf-set-selections
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "$@"
}

# The packages of the list that dpkg does not report as installed.
missing_packages() {
    local pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || echo "$pkg"
    done
}

# A Python that can build our venv: >= 3.11 (pyproject's requires-python), with venv and ensurepip (Debian splits
# ensurepip into python3-venv, so a bare python3 is not enough).
python_ok() {
    "$1" -c 'import sys, venv, ensurepip; sys.exit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1
}

find_python() {
    local candidate
    for candidate in ${PYTHON:-} python3 python3.11 python3.12 python3.13; do
        if command -v "$candidate" >/dev/null 2>&1 && python_ok "$candidate"; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

# 1. System packages.
wanted=("${APT_PACKAGES[@]}")
if [ "$with_test" -eq 1 ]; then
    wanted+=("${TEST_APT_PACKAGES[@]}")
fi
if ! python=$(find_python); then
    wanted+=("${PYTHON_APT_PACKAGES[@]}")
fi
mapfile -t missing < <(missing_packages "${wanted[@]}")
if [ ${#missing[@]} -gt 0 ]; then
    step "system packages (${missing[*]})" apt_install "${missing[@]}"
else
    skip "system packages" "already installed"
fi

if ! python=$(find_python); then
    # Ubuntu 22.04 (the CUDA base images) ships python3 3.10; its python3.11 packages are the way to 3.11.
    step "python 3.11 (python3.11 python3.11-venv)" apt_install python3.11 python3.11-venv python3.11-dev
    python=$(find_python) || { echo "install.sh: no Python >= 3.11 with venv found after installing it" >&2; exit 1; }
fi

# 2. The virtual environment.
if [ -x "$VENV/bin/python" ] && python_ok "$VENV/bin/python"; then
    skip "virtual environment $VENV" "already there"
else
    step "virtual environment $VENV ($($python --version 2>&1))" "$python" -m venv "$VENV"
fi

# 3. The package (editable, so a git pull needs no reinstall), with the test extra when asked. A stamp of what was
# installed skips pip on re-runs; it changes when pyproject.toml or the --test choice does.
if [ "$with_test" -eq 1 ]; then target='.[test]'; else target='.'; fi
stamp_file="$VENV/.stylesynth-install-stamp"
stamp="$target $(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ -f "$stamp_file" ] && grep -qxF -- "$stamp" "$stamp_file" \
        && "$VENV/bin/python" -c 'import stylesynth' 2>/dev/null; then
    skip "python packages ($target)" "up to date"
else
    if [ -n "${STYLESYNTH_TORCH_INDEX:-}" ]; then
        # Exactly the pinned version, from the given index, so the step below finds torch already satisfied.
        torch_pin=$(grep -oE '"torch==[^"]+"' pyproject.toml | tr -d '"')
        step "torch ($torch_pin from STYLESYNTH_TORCH_INDEX)" \
            "$VENV/bin/python" -m pip install -q --index-url "$STYLESYNTH_TORCH_INDEX" "$torch_pin"
    fi
    step "python packages (pip install -e '$target')" "$VENV/bin/python" -m pip install -q -e "$target"
    echo "$stamp" >"$stamp_file"
fi

step "check: stylesynth --version" "$VENV/bin/stylesynth" --version
echo "stylesynth is installed: $VENV/bin/stylesynth --help"
