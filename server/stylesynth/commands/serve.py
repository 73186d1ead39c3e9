"""``stylesynth serve``: load a model, open the audio output, and serve OSC, OSCQuery and MIDI until stopped.

Start-up order matters for what the user sees: the model first (a missing checkpoint is a one-line error before any
port is taken), then the audio output (falling back to headless with one log line), then OSC, OSCQuery and MIDI.
SIGINT and SIGTERM stop everything in reverse order; the audio stream is closed before the process exits so JACK
sees a clean client departure.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger("stylesynth.serve")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "serve", help="run the synthesis server (OSC, OSCQuery, MIDI, audio out)",
        description="Run the real-time server: OSC control on UDP, OSCQuery on HTTP, optional MIDI input, audio to "
                    "the sound card or JACK (or headless), and each new clip written as a wav for OSC clients.",
        epilog="Stop with Ctrl-C or SIGTERM. Logs go to stderr; --log-level debug shows every OSC refusal.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="hits",
                   help="model name in checkpoints/ or a checkpoint folder (default: hits); 'gaver' is the "
                        "model-free procedural renderer (no checkpoint needed)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where the model runs (default: cpu)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for rendering (torch, numba); default: cores - 1, at most 4, at least 1, so "
                        "the audio callback keeps a core (on 2 busy cores, 1 thread renders ~6x faster than 2)")
    # Same option as 'stylesynth --log-level', accepted after 'serve' too (SUPPRESS: does not override it).
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default=argparse.SUPPRESS,
                   help="how much to log (default: info)")
    net = p.add_argument_group("OSC")
    net.add_argument("--host", default="127.0.0.1",
                     help="address to bind; OSC has no authentication, so only widen it on a trusted network")
    net.add_argument("--osc-port", type=int, default=9000, help="UDP port for OSC (default: 9000; 0 = any free port)")
    net.add_argument("--reply-port", type=int, default=None,
                     help="send replies to this UDP port on the sender's host (default: back to the sender; a "
                          "client can also ask with /reply_port N)")
    net.add_argument("--oscquery-port", type=int, default=None,
                     help="HTTP port of the OSCQuery tree, its WebSocket and the web control page at /ui/ "
                          "(default: OSC port + 1; 0 disables)")
    net.add_argument("--no-zeroconf", action="store_true",
                     help="do not advertise _oscjson._tcp and _osc._udp over zeroconf (mDNS); by default they are "
                          "announced where the server is bound (loopback only for 127.0.0.1)")
    audio = p.add_argument_group("audio")
    out = audio.add_mutually_exclusive_group()
    out.add_argument("--audio-device", default=None,
                     help="PortAudio output device, index or part of its name (default: JACK if running, else the "
                          "system default)")
    out.add_argument("--no-audio", action="store_true", help="headless: no audio output, clips only go to clients")
    audio.add_argument("--connect", action="store_true",
                       help="under JACK, connect stylesynth's outputs to system playback")
    audio.add_argument("--block-size", type=int, default=256, help="frames per audio callback (default: 256)")
    audio.add_argument("--sample-rate", type=int, default=None,
                       help="output rate in Hz (default: the device's; JACK's rate under JACK)")
    files = p.add_argument_group("files")
    files.add_argument("--cache-dir", type=Path, default=None,
                       help="where clip wavs for OSC clients are written (default: a fresh temporary folder)")
    files.add_argument("--presets", type=Path, default=Path("presets"), help="folder of preset JSON files (default: ./presets)")
    try:
        from stylesynth import midi_in
    except ImportError:
        midi_in = None
    if midi_in is not None:
        midi_in.add_arguments(p)
        group = next((g for g in p._action_groups if g.title == "MIDI"), p)
        group.add_argument("--mapping", dest="midi_map", type=Path, metavar="FILE", default=argparse.SUPPRESS,
                           help="same as --midi-map")
    p.set_defaults(func=run)


def _check_port(name: str, port: int | None) -> None:
    from stylesynth.cli import CliError

    if port is not None and not 0 <= port <= 65535:
        raise CliError(f"{name} {port} is not a UDP/TCP port (0..65535)")


def run(args: argparse.Namespace) -> int:
    import os
    import signal
    import sys
    import threading

    from stylesynth.cli import CliError
    from stylesynth.engine import Engine
    from stylesynth.gaver_synth import load
    from stylesynth.osc_server import OscServer
    from stylesynth.oscquery import OscQueryServer
    from stylesynth.playback import open_output
    from stylesynth.presets import PresetStore
    from stylesynth.state import DEFAULT

    for name in ("osc_port", "reply_port", "oscquery_port"):
        _check_port("--" + name.replace("_", "-"), getattr(args, name))
    if args.reply_port and args.reply_port == args.osc_port:
        raise CliError(f"--reply-port {args.reply_port} is the OSC port itself: replies would loop back in")
    if args.block_size < 16 or args.block_size > 8192:
        raise CliError(f"--block-size {args.block_size} is outside 16..8192")
    threads = args.threads if args.threads is not None else max(1, min(4, (os.cpu_count() or 2) - 1))
    if threads < 1:
        raise CliError(f"--threads {args.threads} must be at least 1")
    os.environ.setdefault("NUMBA_NUM_THREADS", str(threads))  # read when numba is first imported (by PGHI)
    if args.model != "gaver" or args.device == "cuda":
        import torch
        torch.set_num_threads(threads)
    if args.device == "cuda":
        import torch
        if not torch.cuda.is_available():
            raise CliError("--device cuda: no CUDA device is available to torch here; use --device cpu")

    # The audio callback needs the GIL every period (5.3 ms at 256/48k). Python hands the GIL over only every
    # switch interval (5 ms by default) when another thread computes, which is a whole period: ask for 0.5 ms.
    sys.setswitchinterval(0.0005)
    stop = threading.Event()

    def on_signal(signum, frame):
        log.info("%s received: shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    if hasattr(signal, "SIGUSR1"):  # 'kill -USR1 PID' prints every thread's stack: for a server that seems stuck
        import faulthandler
        faulthandler.register(signal.SIGUSR1, all_threads=True)

    try:
        initial = DEFAULT.with_value("model", args.model)[0]
    except ValueError as exc:
        raise CliError(f"--model: {exc}") from None
    loader = lambda model: load(model, device=args.device)  # noqa: E731
    try:  # the model first: a missing checkpoint is reported before any port or JACK client is taken
        synth = loader(args.model)
    except Exception as exc:
        raise CliError(f"cannot load model {args.model!r}: {exc}") from None
    try:
        output = open_output(device=_device_arg(args.audio_device), no_audio=args.no_audio,
                             block_size=args.block_size, connect=args.connect, sample_rate=args.sample_rate)
    except RuntimeError as exc:
        raise CliError(str(exc)) from None
    engine = Engine(loader, output.player, state=initial)
    started = []
    try:
        # The first render compiles the numba kernels (seconds, holding the GIL): finish it before OSC opens, so a
        # client that gets an answer gets a responsive server.
        log.info("rendering the first clip (the first render after an install also compiles PGHI)")
        engine.start(synth=synth, timeout=600)
        started.append(engine)
        output.start()
        started.append(output)
        try:
            osc = OscServer(engine, host=args.host, port=args.osc_port, reply_port=args.reply_port,
                            presets=PresetStore(args.presets), cache_dir=args.cache_dir)
        except OSError as exc:
            raise CliError(f"cannot bind OSC on {args.host}:{args.osc_port}: {exc.strerror or exc}") from None
        osc.start()
        started.append(osc)
        query_port = args.oscquery_port if args.oscquery_port is not None else (
            osc.port + 1 if args.osc_port else 0)
        oscquery = None
        if query_port:
            try:
                oscquery = OscQueryServer(engine, host=args.host, port=query_port, osc_port=osc.port)
                oscquery.start()
                started.append(oscquery)
                log.info("OSCQuery on http://%s:%d/, web control page on http://%s:%d/ui/", args.host,
                         oscquery.port, args.host, oscquery.port)
            except OSError as exc:
                oscquery = None
                log.warning("OSCQuery not started: port %d unavailable (%s)", query_port, exc.strerror or exc)
        if not args.no_zeroconf:
            from stylesynth.discovery import Advertiser
            advertiser = Advertiser(args.host, oscquery.port if oscquery else None, osc.port)
            advertiser.start()
            started.append(advertiser)
        midi = _start_midi(args, engine)
        if midi is not None:
            started.append(midi)
            osc.learn = lambda name: _learned(midi.learn(name))
        log.info("serving model %r: OSC on %s:%d (udp), clips in %s, audio %s", engine.synth.name, osc.host,
                 osc.port, osc.clients.cache_dir, output.description)
        if args.host not in ("127.0.0.1", "localhost", "::1"):
            log.warning("OSC is bound to %s: anyone who can reach it can control the server (no authentication)",
                        args.host)
        while not stop.wait(0.5):
            pass
    finally:
        for part in reversed(started):
            try:
                (part.close if hasattr(part, "close") else part.stop)()
            except Exception:
                log.exception("error while stopping %s", type(part).__name__)
    log.info("stopped")
    return 0


def _device_arg(device: str | None):
    """``--audio-device 3`` is an index; anything else a name substring."""
    if device is None:
        return None
    return int(device) if device.isdigit() else device


def _start_midi(args, engine):
    if not getattr(args, "midi", None) and not getattr(args, "midi_virtual", False):
        return None
    try:
        from stylesynth import midi_in
    except ImportError:
        from stylesynth.cli import CliError
        raise CliError("MIDI input is not available in this build (stylesynth.midi_in is missing)") from None
    return midi_in.from_args(args, engine)


def _learned(control) -> str:
    label = getattr(control, "label", None)
    return label() if callable(label) else str(control)
