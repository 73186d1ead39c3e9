"""``stylesynth data``: make procedural training datasets, write example sets to listen to, summarise a dataset."""
from __future__ import annotations

import argparse

from stylesynth.cli import CliError

MODELS = ("hits", "env")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def register(subparsers) -> None:
    parser = subparsers.add_parser("data", help="make procedural training data and example sets",
                                   description="Make procedural training datasets, write example sets to listen "
                                               "to and look at, summarise a dataset.")
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION")
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])

    make = sub.add_parser("make", help="generate a dataset folder of labelled spectrograms",
                          description="Generate N labelled procedural clips as float16 spectrogram shards "
                                      "(safetensors) + labels.jsonl + dataset.json. The same --seed gives the same "
                                      "bytes for any --workers; use another seed for a held-out split.")
    make.add_argument("--model", required=True, choices=MODELS, help="hits: 2.048 s impacts; env: 4.096 s scenes")
    make.add_argument("--n", required=True, type=_positive_int, help="number of clips")
    make.add_argument("--out", required=True, help="output folder (must not already hold a dataset)")
    make.add_argument("--seed", type=_seed, default=0, help="dataset seed (default 0)")
    make.add_argument("--workers", type=_positive_int, default=2, help="processes (default 2)")
    make.add_argument("--shard-size", type=_positive_int, default=1000, help="clips per shard (default 1000)")
    make.add_argument("--no-progress", action="store_true", help="no progress bar")
    make.set_defaults(func=run_make)

    examples = sub.add_parser("examples", help="write an example set (or a class) as wavs + a spectrogram grid",
                              description="Render N clips of a semantic-control example set (brightness/tinny, "
                                          "brightness/muffled, rate/1..rate/7, impact/hits, impact/scratches) or of "
                                          "a training class (Hits, Modal, Water, Rain, DogBark, ...) as 16 kHz wavs, "
                                          "their labels (labels.jsonl) and one PNG grid of their spectrograms.")
    examples.add_argument("--set", required=True, dest="set_name", metavar="NAME",
                          help="example set or class name")
    examples.add_argument("--n", type=_positive_int, default=4, help="number of clips (default 4)")
    examples.add_argument("--out", required=True, help="output folder")
    examples.add_argument("--seed", type=_seed, default=0, help="seed (default 0)")
    examples.set_defaults(func=run_examples)

    show = sub.add_parser("show", help="summarise a dataset folder (class counts, parameters)")
    show.add_argument("dir", help="dataset folder")
    show.add_argument("--no-verify", action="store_true", help="skip the shard checksums")
    show.set_defaults(func=run_show)


def run_make(args) -> int:
    import time

    from stylesynth import dataset

    start = time.perf_counter()
    try:
        out = dataset.make(args.model, args.n, args.out, seed=args.seed, workers=args.workers,
                           shard_size=args.shard_size, progress=not args.no_progress)
    except (ValueError, FileExistsError) as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    seconds = time.perf_counter() - start
    print(f"wrote {args.n} {args.model} clips to {out} in {seconds:.1f} s ({args.n / seconds:.1f} clips/s)")
    return 0


def _render_examples(name: str, n: int, seed: int):
    """(clips, representation) for an example-set name or a class name; CliError listing both kinds if neither."""
    import numpy as np

    from stylesynth import procedural
    from stylesynth.procedural import environment, example_sets

    if name in example_sets.SET_NAMES:
        return example_sets.example_set(name, n, seed), procedural.REPRESENTATIONS["hits"]
    if name in procedural.CLASSES:
        model = "env" if name in environment.CLASSES else "hits"
        rep = procedural.REPRESENTATIONS[model]
        clips = [procedural.render_class(name, np.random.default_rng([seed, i]), rep.n_samples) for i in range(n)]
        return clips, rep
    raise CliError(f"unknown set {name!r}; example sets: {', '.join(example_sets.SET_NAMES)}; "
                   f"classes: {', '.join(procedural.CLASSES)}")


def run_examples(args) -> int:
    import json
    from pathlib import Path

    import soundfile as sf

    from stylesynth import plots, spectrogram

    clips, rep = _render_examples(args.set_name, args.n, args.seed)
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"cannot create {out}: {exc.strerror or exc}") from None
    stem = args.set_name.replace("/", "-")
    specs, titles = [], []
    with open(out / f"{stem}.labels.jsonl", "w", encoding="utf-8") as labels:
        for i, (audio, label) in enumerate(clips):
            sf.write(out / f"{stem}-{i:03d}.wav", audio, rep.sample_rate, subtype="PCM_16")
            labels.write(json.dumps(label, sort_keys=True) + "\n")
            specs.append(spectrogram.encode(audio, rep))
            titles.append(f"{label['class']} #{i}: {label['n_events']} ev, {label['centroid_hz']:.0f} Hz")
    plots.spectrogram_grid(specs, rep, out / f"{stem}.png", titles=titles)
    print(f"wrote {len(clips)} wavs, {stem}.labels.jsonl and {stem}.png to {out}")
    return 0


def run_show(args) -> int:
    from stylesynth import dataset

    try:
        data = dataset.load(args.dir, verify=not args.no_verify)
    except dataset.DatasetError as exc:
        raise CliError(str(exc)) from None
    meta = data.meta
    print(f"{data.path}: model {meta['model']}, {len(data)} clips, seed {meta.get('seed')}, "
          f"generator v{meta.get('generator_version')}, {len(meta['shards'])} shard(s), "
          f"specs {tuple(data.specs.shape)} {data.specs.dtype}")
    counts = data.class_counts()
    width = max(len(k) for k in counts)
    for name, count in counts.items():
        print(f"  {name:<{width}}  {count:6d}  {100.0 * count / len(data):5.1f} %")
    events = [lab["n_events"] for lab in data.labels if "n_events" in lab]
    if events:
        print(f"  events per clip: mean {sum(events) / len(events):.2f}, min {min(events)}, max {max(events)}")
    centroids = sorted(lab["centroid_hz"] for lab in data.labels if "centroid_hz" in lab)
    if centroids:
        mid = centroids[len(centroids) // 2]
        print(f"  spectral centroid: median {mid:.0f} Hz, range {centroids[0]:.0f}-{centroids[-1]:.0f} Hz")
    return 0
