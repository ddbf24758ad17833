"""The ``diagnose`` and ``plot`` subcommands (imported to build the parser: nothing heavy at module level)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from netspec.arguments import seed
from netspec.errors import UsageError

EXIT_OK, EXIT_FAILED = 0, 1
MAX_BATCH = 65536


def add_parsers(sub: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    d = sub.add_parser("diagnose", help="signal propagation: activation and gradient statistics per layer",
                       description="Run SPEC in evaluation mode on a batch and report, per layer, the mean and std "
                       "of pre-activations and outputs, saturated and dead-ReLU fractions, and per parameter the "
                       "gradient std and |grad|/|w| for a stated loss (gradients need the torch extra).")  # fmt: skip
    d.add_argument("spec", metavar="SPEC")
    d.add_argument("--batch", type=_batch, default=256, metavar="N", help="batch size, 1..65536 (default 256)")
    d.add_argument("--input", action="append", metavar="X",
                   help="a .npy batch instead of random inputs (NAME=FILE per input for several)")  # fmt: skip
    d.add_argument("--seed", type=seed, help="the weights' seed (default: the spec's)")
    d.add_argument("--data-seed", type=seed, default=0, metavar="N", help="seed of the random batch (default 0)")
    d.add_argument("--compare", metavar="INIT[,INIT...]", default="",
                   help="also run with each initializer in place of the spec's weights initializers")  # fmt: skip
    d.add_argument("--loss", choices=["auto", "mean", "cross_entropy"], default="auto",
                   help="loss for gradients: auto (cross_entropy with random labels for softmax outputs, else "
                   "mean of the outputs)")  # fmt: skip
    d.add_argument("--no-gradients", action="store_true", help="forward statistics only")
    d.add_argument("--fail-if", action="append", default=[], metavar="COND",
                   help="exit 1 when COND holds for the spec's run: std_ratio<X, std_ratio>X, dead>X, saturated>X "
                   "(repeatable)")  # fmt: skip
    d.add_argument("--json", action="store_true", help="print the statistics as JSON")
    d.add_argument("--plot", metavar="OUT", help="write the figure (.png or .svg; needs the plot extra)")
    d.add_argument("--html", metavar="OUT", help="write a self-contained HTML report (needs the plot extra)")

    p = sub.add_parser("plot", help="plots of initializer formulas", description="Plots of initializer formulas.")
    kinds = p.add_subparsers(dest="plot", metavar="KIND", required=True)
    b = kinds.add_parser("bounds", help="bound (or std) against the number of inputs, as Brownlee's article plots",
                         description="Each initializer's uniform bound, or normal std, against fan_in.")  # fmt: skip
    b.add_argument("--init", required=True, metavar="INIT[,INIT...]", help="initializer names")
    b.add_argument("--fan-in", default="1..100", metavar="A..B", help="range of fan_in (default 1..100)")
    b.add_argument("--fan-out", type=_positive, metavar="M", help="fixed fan_out (default: equal to fan_in)")
    b.add_argument("-o", "--output", required=True, metavar="OUT", help="the figure, .png or .svg")
    return {"diagnose": run_diagnose, "plot": run_plot}


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _batch(text: str) -> int:
    value = _positive(text)
    if value > MAX_BATCH:
        raise argparse.ArgumentTypeError(f"at most {MAX_BATCH}, got {value}")
    return value


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def run_diagnose(args: argparse.Namespace) -> int:
    from netspec.diagnose import plots
    from netspec.diagnose.report import Condition, as_json, diagnose, table
    from netspec.diagnose.stats import default_batch
    from netspec.spec.compiler import compile_file

    conditions = [Condition.parse(c) for c in args.fail_if]
    if args.plot:
        plots.check_path(args.plot)
    if args.html:
        plots.check_folder(args.html)
    from netspec.io.files import require_file

    require_file(args.spec)
    net = compile_file(args.spec, seed=args.seed)
    if args.input:
        from netspec.nn.inputs import InputError, read_inputs

        values = read_inputs(args.input, net.inputs, net.compute_dtype)
        values = {k: v[None] if v.shape == tuple(net.inputs[k]) else v for k, v in values.items()}  # one sample
        empty = [f"{k} {list(v.shape)}" for k, v in values.items() if v.size == 0]
        if empty:  # eval gives the empty output; statistics of no value are not a diagnosis
            raise InputError(f"--input: nothing to diagnose, the input is empty ({', '.join(empty)}); statistics "
                             "need at least one value")  # fmt: skip
        x = values if len(values) > 1 else next(iter(values.values()))
    else:
        x = default_batch(net, args.batch, args.data_seed)
    runs = diagnose(net, x, _names(args.compare), args.loss, gradients=not args.no_gradients)
    text = table(runs)
    if args.json:
        rows = len(next(iter(x.values())) if isinstance(x, dict) else x)
        document = as_json(net, runs, rows, None if args.input else args.data_seed, args.loss)
        json.dump(document, sys.stdout, indent=1, allow_nan=False)
        sys.stdout.write("\n")
    else:
        print(text)
    if args.plot:
        plots.save(plots.diagnose_figure(runs), args.plot)
    if args.html:
        html = plots.html_report(f"netspec diagnose {net.name}", [("statistics", plots.diagnose_figure(runs))],
                                 [("table", text)])  # fmt: skip
        from netspec.io.weights import atomic_write

        with atomic_write(args.html) as fh:
            fh.write(html.encode())
    failures = [msg for c in conditions for msg in c.failures(runs[0])]
    for msg in failures:
        print(f"netspec diagnose: check failed: {msg}", file=sys.stderr)
    if runs[0].gradients and not args.no_gradients:  # the forward statistics above are complete
        print(f"netspec diagnose: note: gradients skipped: {runs[0].gradients}", file=sys.stderr)
    return EXIT_FAILED if failures else EXIT_OK


def run_plot(args: argparse.Namespace) -> int:
    from netspec.diagnose import plots
    from netspec.errors import InitializerError

    plots.check_path(args.output)
    low, sep, high = args.fan_in.partition("..")
    if not sep or not low.isdigit() or not high.isdigit() or not 1 <= int(low) <= int(high) <= 1_000_000:
        raise UsageError(f"--fan-in {args.fan_in!r}: expected A..B with 1 <= A <= B <= 1000000")
    inits = _names(args.init)
    if not inits:
        raise UsageError("--init needs at least one initializer name")
    try:
        fig = plots.bounds_figure(inits, range(int(low), int(high) + 1), args.fan_out)
    except InitializerError as exc:
        raise UsageError(f"--init: {exc}") from None
    plots.save(fig, args.output)
    print(f"wrote {args.output}")
    return EXIT_OK
