"""``stylesynth doctor``: check what the server needs and what it could use, and say how to fix what is missing.

One line per check: ``OK`` (usable), ``MISSING`` (absent: the server runs without it unless it is marked
required) or ``BROKEN`` (present but unusable), each with how to fix it. Exit code 0 when the server can run
(headless and the procedural ``gaver`` model count), 1 when something it cannot run without is missing or broken.
Meant to be fast (a couple of seconds, most of it importing torch): it reads headers and lists ports, it never
renders or compiles.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

OK, MISSING, BROKEN = "OK", "MISSING", "BROKEN"

# Imported by `stylesynth serve` itself: without any of these it does not start.
REQUIRED_PACKAGES = [("numpy", "numpy"), ("scipy", "scipy"), ("numba", "numba"), ("soundfile", "soundfile"),
                     ("safetensors", "safetensors"), ("pythonosc", "python-osc"), ("torch", "torch")]
# Needed only for one feature each.
OPTIONAL_PACKAGES = [("mido", "mido", "MIDI input"), ("rtmidi", "python-rtmidi", "MIDI input"),
                     ("jack", "JACK-Client", "JACK checks and routing"), ("pyloudnorm", "pyloudnorm",
                                                                         "loudness normalisation")]


@dataclass
class Check:
    """One line of the report.

    Parameters
    ----------
    name : str
        What was checked ("audio devices", "JACK", ...).
    status : str
        ``OK``, ``MISSING`` or ``BROKEN``.
    detail : str
        What was found.
    fix : str
        How to fix it (empty when OK).
    required : bool
        The server cannot run without it.
    """

    name: str
    status: str
    detail: str
    fix: str = ""
    required: bool = False

    @property
    def blocks(self) -> bool:
        return self.required and self.status != OK


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "doctor", help="check audio, JACK, MIDI, models, numba, torch and Pure Data; say how to fix problems",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="print the checks as JSON instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    checks = run_checks()
    can_run = not any(c.blocks for c in checks)
    if args.json:
        print(json.dumps({"can_run": can_run, "checks": [c.__dict__ for c in checks]}, indent=2))
    else:
        print(format_report(checks, can_run))
    return 0 if can_run else 1


def run_checks() -> list[Check]:
    """Every check, in report order."""
    checks = [check_python(), *check_packages()]
    torch_ok = next(c for c in checks if c.name == "package torch").status == OK
    checks.append(check_torch() if torch_ok else Check("torch device", MISSING, "torch not importable"))
    checks += [check_numba_cache(), check_models(torch_ok), check_audio(), check_jack(), *check_midi(),
               check_pd()]
    return checks


def format_report(checks: list[Check], can_run: bool) -> str:
    width = max(len(c.name) for c in checks)
    lines = []
    for c in checks:
        tag = c.status + ("*" if c.required and c.status != OK else "")
        lines.append(f"{tag:8} {c.name:{width}}  {c.detail}")
        if c.fix:
            lines.append(f"{'':8} {'':{width}}  fix: {c.fix}")
    blocking = [c.name for c in checks if c.blocks]
    if can_run:
        audio = next((c for c in checks if c.name == "audio devices"), None)
        how = "with sound" if audio is not None and audio.status == OK else "headless: no sound output"
        lines.append(f"\nThe server can run ({how}).")
    else:
        lines.append(f"\n* required. The server cannot run until these are fixed: {', '.join(blocking)}.")
    return "\n".join(lines)


# -----------------------------------------------------------------------------------------------------------------
# The checks (each quick, none raises)
# -----------------------------------------------------------------------------------------------------------------

def check_python() -> Check:
    version = ".".join(map(str, sys.version_info[:3]))
    if sys.version_info < (3, 11):
        return Check("python", BROKEN, f"Python {version}", "stylesynth needs Python >= 3.11 (tomllib): "
                     "bash scripts/install.sh builds a suitable venv", required=True)
    return Check("python", OK, f"Python {version} at {sys.executable}")


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _import(module: str) -> str | None:
    """None if ``module`` imports, else the reason."""
    try:
        importlib.import_module(module)
    except Exception as exc:   # ImportError, or OSError from a missing shared library
        return str(exc).splitlines()[0] or type(exc).__name__
    return None


def check_packages() -> list[Check]:
    checks = []
    for module, dist in REQUIRED_PACKAGES:
        problem = _import(module)
        if problem is None:
            checks.append(Check(f"package {module}", OK, f"{dist} {_version(dist)}", required=True))
        else:
            checks.append(Check(f"package {module}", MISSING, problem,
                                f"bash scripts/install.sh (or .venv/bin/pip install {dist})", required=True))
    for module, dist, use in OPTIONAL_PACKAGES:
        problem = _import(module)
        if problem is None:
            checks.append(Check(f"package {module}", OK, f"{dist} {_version(dist)} ({use})"))
        else:
            fix = ("apt-get install libjack-jackd2-0" if "jack" in problem.lower() and "library" in problem.lower()
                   else f".venv/bin/pip install {dist}")
            checks.append(Check(f"package {module}", MISSING, f"{problem} (needed for {use})", fix))
    return checks


def check_torch() -> Check:
    import torch

    threads = torch.get_num_threads()
    detail = f"torch {torch.__version__}, {threads} CPU thread(s) of {os.cpu_count()} cores"
    if torch.cuda.is_available():
        return Check("torch device", OK, f"{detail}; CUDA: {torch.cuda.get_device_name(0)} (serve --device cuda)")
    return Check("torch device", OK, f"{detail}; no CUDA device (models run on the CPU)")


def check_numba_cache() -> Check:
    """PGHI's kernels are numba-compiled with an on-disk cache: without it the first render waits for the JIT."""
    try:
        spec = importlib.util.find_spec("stylesynth.pghi")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.origin:
        return Check("numba cache", MISSING, "stylesynth.pghi not found", "reinstall: bash scripts/install.sh")
    source = Path(spec.origin)
    places = ([Path(os.environ["NUMBA_CACHE_DIR"])] if os.environ.get("NUMBA_CACHE_DIR") else []) \
        + [source.parent / "__pycache__"]
    index = [f for d in places if d.is_dir() for f in d.rglob("pghi.*.nbi")]
    warm = f"{sys.executable} -c 'from stylesynth import pghi; pghi.warmup()'"
    if index:
        where = sorted({str(f.parent) for f in index})[0]
        return Check("numba cache", OK, f"{len(index)} compiled PGHI kernel(s) cached in {where}")
    writable = [d for d in places if os.access(d if d.exists() else d.parent, os.W_OK)]
    if not writable:
        return Check("numba cache", MISSING, f"no cache, and {places[-1]} is not writable: every start compiles "
                     "PGHI again", "export NUMBA_CACHE_DIR=~/.cache/stylesynth-numba, then " + warm)
    return Check("numba cache", MISSING, "no compiled PGHI kernels yet: the first render waits for numba's JIT",
                 "warm it once: " + warm)


def check_models(torch_ok: bool) -> Check:
    """Trained models in checkpoints/: model.json readable, safetensors headers valid, sizes."""
    try:
        from stylesynth import checkpoint
    except Exception as exc:   # torch missing makes this import fail: already reported above
        return Check("models", MISSING, f"cannot inspect checkpoints ({str(exc).splitlines()[0]})",
                     "fix the torch package first")
    found, broken = [], []
    for name in checkpoint.available_models():
        try:
            folder = checkpoint.resolve(name)
            checkpoint.read_meta(folder)
            sizes = [_safetensors_summary(folder / checkpoint.GENERATOR_FILE)]
            if (folder / "controls.safetensors").is_file():
                sizes.append(_safetensors_summary(folder / "controls.safetensors"))
            found.append(f"{name} ({', '.join(sizes)})")
        except Exception as exc:
            broken.append(f"{name}: {str(exc).splitlines()[0]}")
    dirs = " or ".join(str(d) for d in checkpoint.checkpoint_dirs())
    if broken:
        return Check("models", BROKEN, "; ".join(broken + found),
                     "re-train or re-copy the broken checkpoint folder (stylesynth train --model NAME); the server "
                     "refuses it with this message")
    if not found:
        return Check("models", MISSING, f"no trained model in {dirs}; only the procedural 'gaver' model is "
                     "available", "train one (stylesynth train --model hits) or serve with --model gaver")
    return Check("models", OK, "; ".join(found))


def _safetensors_summary(path: Path) -> str:
    """``"generator.safetensors 12.3 MB, 84 tensors"`` after reading only the header; raises if it is not valid."""
    from safetensors import safe_open

    with open(path, "rb") as f:
        head = f.read(2)
    if head[:1] == b"\x80" or head[:2] == b"PK":
        raise ValueError(f"{path.name} is a pickle/zip, not safetensors (refused: pickles can run code)")
    with safe_open(str(path), framework="numpy") as f:
        count = len(list(f.keys()))
    return f"{path.name} {path.stat().st_size / 1e6:.1f} MB, {count} tensors"


def check_audio() -> Check:
    try:
        import sounddevice as sd
    except OSError as exc:
        return Check("audio devices", MISSING, f"PortAudio not found ({exc}); the server runs headless",
                     "apt-get install libportaudio2")
    except ImportError as exc:
        return Check("audio devices", MISSING, f"sounddevice not installed ({exc})", ".venv/bin/pip install "
                     "sounddevice")
    try:
        devices = sd.query_devices()
        outputs = [d for d in devices if d["max_output_channels"] > 0]
    except Exception as exc:
        return Check("audio devices", BROKEN, f"PortAudio could not list devices ({exc})",
                     "check the sound system (aplay -l) or run headless with --no-audio")
    if not outputs:
        return Check("audio devices", MISSING, "PortAudio sees no output device; the server runs headless "
                     "(clips still reach OSC clients as wav files)",
                     "plug in or enable a sound card, or start JACK (jackd -d alsa, or -d dummy to test)")
    apis = sorted({sd.query_hostapis(d["hostapi"])["name"] for d in outputs})
    try:
        default = sd.query_devices(kind="output")["name"]
    except Exception:
        default = "none"
    return Check("audio devices", OK, f"{len(outputs)} output device(s) via {', '.join(apis)}; default: {default}")


def check_jack() -> Check:
    if shutil.which("jackd") is None:
        return Check("JACK", MISSING, "jackd is not installed (optional: low-latency audio and MIDI routing)",
                     "apt-get install jackd2")
    env = dict(os.environ, JACK_NO_START_SERVER="1")
    try:
        running = subprocess.run(["jack_lsp"], env=env, capture_output=True, timeout=3).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        running = False
    if not running:
        return Check("JACK", MISSING, "installed, no JACK server running (the server uses the sound card directly)",
                     "to use JACK: jackd -R -d alsa (or -d dummy -r 48000 -p 256 with no sound card)")
    try:
        import jack
        client = jack.Client("stylesynth-doctor", no_start_server=True)
        detail = f"running: {client.samplerate} Hz, {client.blocksize} frames per period " \
                 f"({1000 * client.blocksize / client.samplerate:.1f} ms)"
        client.close()
    except Exception:
        detail = "running"
    return Check("JACK", OK, detail)


def check_midi() -> list[Check]:
    """MIDI sources per rtmidi API (JACK only when a server runs; ALSA only with a sequencer device)."""
    try:
        from stylesynth import midi_in
        apis = midi_in.available_apis()
    except Exception as exc:
        return [Check("MIDI", MISSING, f"python-rtmidi not usable ({str(exc).splitlines()[0]})",
                      ".venv/bin/pip install python-rtmidi mido")]
    checks = []
    for api in apis:
        name = f"MIDI ({api})"
        if api == "jack" and not midi_in.jack_server_running():
            checks.append(Check(name, MISSING, "no JACK server running", "start jackd, or use ALSA MIDI"))
            continue
        if api == "alsa" and sys.platform.startswith("linux") and not os.path.exists("/dev/snd/seq"):
            checks.append(Check(name, MISSING, "no ALSA sequencer (/dev/snd/seq absent)",
                                "modprobe snd-seq (on a desktop it is loaded by default), or use JACK MIDI"))
            continue
        try:
            ports = midi_in.list_input_ports(api)
        except Exception as exc:
            checks.append(Check(name, BROKEN, str(exc).splitlines()[0], f"check the {api} MIDI system"))
            continue
        shown = ", ".join(repr(p) for p in ports[:8]) + (" ..." if len(ports) > 8 else "")
        detail = f"{len(ports)} source(s): {shown}" if ports else "usable, no MIDI source connected right now"
        checks.append(Check(name, OK, detail + "; open one with serve --midi NAME, or --midi-virtual"))
    if not checks:
        checks.append(Check("MIDI", MISSING, "python-rtmidi has no MIDI API built in here",
                            ".venv/bin/pip install --force-reinstall python-rtmidi"))
    return checks


def check_pd() -> Check:
    pd = shutil.which("pd")
    if pd is None:
        return Check("Pure Data", MISSING, "pd not found (optional: the patches in patches/)",
                     "apt-get install puredata-core")
    try:
        out = subprocess.run([pd, "-version"], capture_output=True, text=True, timeout=3)
        version = (out.stdout + out.stderr).split()[0]
    except (OSError, subprocess.TimeoutExpired, IndexError):
        version = "present"
    return Check("Pure Data", OK, f"{version} at {pd} (patches in patches/)")
