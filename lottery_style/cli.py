"""The ``lottery-style`` console script: training by default, tools as subcommands.

``lottery-style [hydra overrides]`` trains (Hydra parses the command line as
before); a first argument naming a tool runs it instead::

    lottery-style stylize --ticket runs/x/round_03 --content photos/ --style art.jpg --out styled/
    lottery-style export runs/x/round_03 --out ticket.safetensors
    lottery-style export runs/x/round_03 --format onnx --out ticket.onnx
    lottery-style export runs/x/round_03 --slim --out slim.safetensors
    lottery-style evaluate runs/ --content-dir test/content --style-dir test/style --name test
    lottery-style report runs/x runs/y --out report/
    lottery-style prepare-data /data/wikiart/train /data/wikiart/prepared-512 --size 512
    lottery-style options pruning

``lottery-style --help`` names the tools and the config groups (Hydra's own page
is ``--hydra-help``). A bad input (missing ticket, unreadable image, a ticket of
another architecture) ends the tool with one line on stderr and exit code 2; a
first word that is neither a tool nor an override ends it with one line naming
the closest tool.
"""

from __future__ import annotations

import argparse
import difflib
import sys
import textwrap
from collections.abc import Callable, Sequence

MIB = 2**20


def _device(name: str):
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but no CUDA device is available: use --device cpu")
    return torch.device(name)


def stylize(args: argparse.Namespace) -> None:
    from lottery_style.data.images import DataError, SkippedFile
    from lottery_style.tickets.loading import load_ticket
    from lottery_style.tools.stylize import image_paths, stylize_images

    device = _device(args.device)
    contents, styles = image_paths(args.content, "content"), image_paths(args.style, "style")
    model, _ = load_ticket(args.ticket, args.model)
    size = None if args.keep_size else args.size
    written = skipped = 0
    for item in stylize_images(model, contents, styles, args.out, alpha=args.alpha, size=size, device=device):
        if isinstance(item, SkippedFile):
            skipped += 1
            print(f"lottery-style stylize: skipped unreadable {item.role} image {item.path} ({item.reason})", file=sys.stderr)
        else:
            written += 1
            print(item)
    print(f"{written} stylized image(s) in {args.out}", file=sys.stderr)
    if skipped:  # the others are written, but the folder is not complete: the exit code says so
        raise DataError(f"{skipped} unreadable image(s) skipped, named above")


EXPORT_FORMATS = {  # --format: what it writes
    "ticket": "the compact ticket file (loadable by stylize)",
    "onnx": "an ONNX graph of stylize for deployment runtimes (the deploy extra)",
}


def export(args: argparse.Namespace) -> None:
    if args.format not in EXPORT_FORMATS:
        raise ValueError(f"--format {args.format!r} is unknown: expected one of {', '.join(EXPORT_FORMATS)}")
    if args.format == "onnx":
        export_graph(args)
        return
    if args.slim:
        export_slim_model(args)
        return
    from lottery_style.tickets.loading import export_round

    stats = export_round(args.round_folder, args.out, fp16=args.fp16, compress=args.compress)
    print(
        f"wrote {args.out}: {stats.file_bytes / MIB:.2f} MiB, {stats.x_smaller_than_dense:.2f}x smaller than dense fp32 "
        f"({stats.dense_bytes / MIB:.2f} MiB), {stats.ratio_to_floor:.4f}x the floor "
        f"({stats.floor_bytes / MIB:.2f} MiB = value bits x {stats.kept:,} kept + 1 bit x {stats.masked_entries:,} "
        f"+ {stats.unmasked_bytes / MIB:.2f} MiB of unpruned tensors)"
    )


def compact_flags(args: argparse.Namespace, what: str) -> None:
    """Refuse --fp16 and --compress, which shape the compact ticket file only, for ``what``."""
    flags = [flag for flag, given in (("--fp16", args.fp16), ("--compress", args.compress)) if given]
    if flags:
        raise ValueError(f"{' and '.join(flags)} apply to --format ticket only: {what} holds fp32 weights")


def export_slim_model(args: argparse.Namespace) -> None:
    """``export --slim``: the slim model of a channel ticket as a state dict and its slim config."""
    compact_flags(args, "the slim model file")
    from lottery_style.tools.slim import export_slim

    done = export_slim(args.round_folder, args.out)
    print(
        f"wrote {done.path}: {done.file_bytes / MIB:.2f} MiB, slim {done.model} with {done.params:,} parameters "
        f"({done.params / done.dense_params:.1%} of the dense {done.dense_params:,}); stylize --ticket and "
        f"export --format onnx take it"
    )


def export_graph(args: argparse.Namespace) -> None:
    """``export --format onnx``: the ticket's stylize forward as an ONNX file (``--slim``: the slim model's)."""
    compact_flags(args, "the ONNX graph")
    from lottery_style.tools.onnx_export import export_onnx

    done = export_onnx(args.round_folder, args.out, slim=args.slim)
    print(
        f"wrote {done.path}: {done.file_bytes / MIB:.2f} MiB, ONNX opset {done.opset}, {'slim ' * args.slim}{done.model} in "
        f"{done.seconds:.1f} s; inputs content and style [N, 3, H, W] in [0, 1] with H and W multiples of "
        f"{done.size_multiple}, alpha a scalar; output stylized [N, 3, H, W]"
    )


def evaluate(args: argparse.Namespace) -> None:
    from lottery_style.data.pairs import EvalSpec
    from lottery_style.tools.evaluate import evaluate_runs, evaluation_set

    device = _device(args.device)
    spec = EvalSpec(args.contents, args.styles, args.size, args.crops, args.load_size, args.seed)
    evaluation = evaluation_set(args.name, args.content_dir, args.style_dir, spec)
    done = evaluate_runs(args.runs, evaluation, args.batch_size, args.grid_pairs, device, progress=not args.quiet)
    print(
        f"evaluation {args.name}: {done.evaluated} round(s) evaluated, {done.skipped} evaluated before, on "
        f"{len(evaluation.pairs)} pairs; judge it with: lottery-style report RUNS --eval {args.name} --out REPORT"
    )


def report(args: argparse.Namespace) -> None:
    from lottery_style.tools.report import write_report

    print(write_report(args.runs, args.out, args.eval, args.margin))


def prepare_data(args: argparse.Namespace) -> None:
    from lottery_style.data.prepare import prepare_folder

    result = prepare_folder(args.source, args.target, args.size, args.workers, progress=not args.quiet)
    print(
        f"prepared {args.target} at size {args.size}: {result.written} written, {result.already} already there, "
        f"{result.unreadable} unreadable (recorded in prepared.json); train with data.content_dir or "
        f"data.style_dir={args.target} and data.load_size={args.size}"
    )


def options(args: argparse.Namespace) -> None:
    from lottery_style.tools.options import format_group, format_overview, reference_markdown

    if args.markdown:
        print(reference_markdown(), end="")
    elif args.group is None:
        print(format_overview())
    else:
        print(format_group(args.group, args.overrides))


TOOL_HELP = {  # one line each: the tool's help in `lottery-style --help` and in its own --help
    "stylize": "stylize every content image with every style image",
    "export": "write a round folder as one compact safetensors ticket file, a slim model or an ONNX graph",
    "evaluate": "judge every finished round of runs on the fixed pairs of two folders",
    "report": "figures and one HTML page from run folders",
    "prepare-data": "decode and square-resize a training folder once, for fast loading",
    "options": "a config group's options with help, default and valid values",
}
TOOLS = tuple(TOOL_HELP)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lottery-style", description="Tools for tickets (training: lottery-style [overrides])")
    tools = parser.add_subparsers(dest="tool", required=True)

    p = tools.add_parser("stylize", help=TOOL_HELP["stylize"], description=TOOL_HELP["stylize"])
    p.add_argument("--ticket", required=True, help="a round folder, a ticket export file, a slim model file or a Lightning .ckpt")
    p.add_argument("--content", required=True, help="an image or a folder of images")
    p.add_argument("--style", required=True, help="an image or a folder of images")
    p.add_argument("--out", required=True, help="output folder for <content>__<style>.png")
    p.add_argument("--alpha", type=float, default=1.0, help="style strength in [0, 1] (0: content reconstruction)")
    sizes = p.add_mutually_exclusive_group()
    sizes.add_argument("--size", type=int, default=512, help="shorter side in px, rounded to the model's multiple")
    sizes.add_argument("--keep-size", action="store_true", help="keep each image's size; output at the content's size")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--model", help="the architecture you expect (an error if the ticket holds another one)")
    p.set_defaults(run=stylize)

    p = tools.add_parser("export", help=TOOL_HELP["export"], description=TOOL_HELP["export"])
    p.add_argument("round_folder", help="a finished round_XX folder (--slim, --format onnx: also a ticket file)")
    p.add_argument("--out", required=True, help="the file to write")
    p.add_argument("--format", default="ticket",
                   help="; ".join(f"{name}: {text}" for name, text in EXPORT_FORMATS.items()) + " (default: ticket)")  # fmt: skip
    p.add_argument("--fp16", action="store_true", help="store kept values as fp16 (lossy, about half the size)")
    p.add_argument("--compress", action="store_true", help="xz-compress the file (lossless; name it .safetensors.xz)")
    p.add_argument("--slim", action="store_true",
                   help="a channel ticket's slim model: convs hold only the kept channels (with --format onnx: its graph)")  # fmt: skip
    p.set_defaults(run=export)

    from lottery_style.core.config import DataConfig

    p = tools.add_parser("evaluate", help=TOOL_HELP["evaluate"], description=TOOL_HELP["evaluate"])
    p.add_argument("runs", nargs="+", help="run folders (their branches come with them), or folders holding them")
    p.add_argument("--content-dir", required=True, help="the content images of the test set (searched recursively)")
    p.add_argument("--style-dir", required=True, help="the style images of the test set (searched recursively)")
    p.add_argument("--name", required=True, help="the evaluation's name: round_XX/evaluations/NAME/ (report --eval NAME)")
    p.add_argument("--contents", type=int, default=40, help="content images drawn from --content-dir (paper: 40)")
    p.add_argument("--styles", type=int, default=100, help="style images drawn from --style-dir (paper: 100)")
    p.add_argument("--size", type=int, default=DataConfig.eval_size, help="side of each square view in px (as data.eval_size)")
    p.add_argument("--crops", type=int, default=1, help="fixed views per image: 1 = the centre square (as data.eval_crops)")
    p.add_argument("--load-size", type=int, default=None, help="with --crops > 1: shorter side before cropping (as data.eval_load_size)")
    p.add_argument("--seed", type=int, default=DataConfig.eval_seed, help="which files are drawn (as data.eval_seed)")
    p.add_argument("--batch-size", type=int, default=DataConfig.eval_batch_size, help="pairs per forward pass")
    p.add_argument("--grid-pairs", type=int, default=DataConfig.grid_pairs, help="pairs in each round's grid.png")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=evaluate)

    p = tools.add_parser("report", help=TOOL_HELP["report"], description=TOOL_HELP["report"])
    p.add_argument("runs", nargs="+", help="run folders (IMP and controls, any seeds), or folders holding them")
    p.add_argument("--out", required=True, help="output folder for report.html, report.json and the figures")
    p.add_argument("--eval", metavar="NAME", help="judge the rounds' records of `lottery-style evaluate --name NAME`")
    p.add_argument("--margin", type=float, default=0.02,
                   help="the paired verdict's non-inferiority margin, relative to the dense E (default 0.02: 2%%)")  # fmt: skip
    p.set_defaults(run=report)

    p = tools.add_parser("prepare-data", help=TOOL_HELP["prepare-data"], description=TOOL_HELP["prepare-data"])
    p.add_argument("source", metavar="SRC", help="a training image folder (searched recursively)")
    p.add_argument("target", metavar="DST", help="the prepared folder to write or finish (outside SRC)")
    p.add_argument("--size", type=int, default=512, help="the run's data.load_size (default 512)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: every core)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=prepare_data)

    p = tools.add_parser("options", help=TOOL_HELP["options"], description=TOOL_HELP["options"])
    p.add_argument("group", nargs="?", help="a config group (pruning, model, data, ...), or GROUP=CHOICE (model=sanet)")
    p.add_argument("overrides", nargs="*", help="overrides the values shown are composed with (experiment=quickstart)")
    p.add_argument("--markdown", action="store_true", help="print the configuration reference page (every group)")
    p.set_defaults(run=options)
    return parser


HELP_FLAGS = ("-h", "--help")


def help_page() -> str:
    """``lottery-style --help``: training, every tool with one line, the config groups and their choices."""
    from lottery_style.core.conf_dir import CONF_DIR

    width = max(map(len, TOOLS)) + 2
    lines = [
        "usage: lottery-style [OVERRIDES]         train: IMP or a control (e.g. lottery-style experiment=quickstart)",
        "       lottery-style TOOL [ARGUMENTS]    run a tool",
        "",
        "tools (lottery-style TOOL --help gives a tool's arguments):",
        *(f"  {name:<{width}}{text}" for name, text in TOOL_HELP.items()),
        "",
        "config groups (GROUP=CHOICE selects one; lottery-style options GROUP lists a group's options):",
    ]
    for group in sorted(path for path in CONF_DIR.iterdir() if path.is_dir()):
        choices = ", ".join(sorted(p.stem for p in group.glob("*.yaml")))
        lines.append(textwrap.fill(choices, 110, initial_indent=f"  {group.name:<{width}}", subsequent_indent=" " * (width + 2)))
    lines += [
        "",
        "overrides: KEY=VALUE (pruning.rate=0.5), GROUP=CHOICE (model=sanet), -m for a sweep (model=adain,sanet);",
        "--cfg job prints the composed config without running; --hydra-help is Hydra's own help page.",
    ]
    return "\n".join(lines)


def unknown_word(word: str) -> str | None:
    """The one-line error for a first word that is neither a tool nor an override (``evalute``), else None.

    An override holds ``=`` (or is a ``~key`` deletion); Hydra's own flags start with ``-``.
    """
    if word in TOOLS or "=" in word or word.startswith(("-", "~")):
        return None
    closest = difflib.get_close_matches(word, TOOLS, n=1, cutoff=0.0)[0]
    return (
        f"lottery-style: {word!r} is neither a tool nor an override: did you mean {closest!r}? "
        "(lottery-style --help lists the tools; an override is KEY=VALUE)"
    )


def run_tool(argv: Sequence[str]) -> int:
    args = _parser().parse_args(argv)
    run: Callable[[argparse.Namespace], None] = args.run
    try:
        run(args)
    except (ValueError, OSError) as error:  # TicketError, DataError, ReportError, WeightsError are ValueErrors
        message = "; ".join(line.strip() for line in str(error).splitlines() if line.strip())
        print(f"lottery-style {args.tool}: error: {message or type(error).__name__}", file=sys.stderr)
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in HELP_FLAGS:
        print(help_page())
        return 0
    if argv and argv[0] in TOOLS:
        return run_tool(argv)
    if argv and unknown_word(argv[0]):
        raise SystemExit(unknown_word(argv[0]))
    from lottery_style.core.config import ConfigError
    from lottery_style.engine.validation import check_choices, check_hydra_command
    from lottery_style.train import main as train_main

    try:
        check_hydra_command(argv)
        check_choices(argv)
    except ConfigError as error:
        raise SystemExit(f"lottery-style: {error}") from None
    sys.argv = [sys.argv[0], *argv]
    train_main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
