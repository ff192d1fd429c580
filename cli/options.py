"""What several commands share: choice options from the library's own lists, common options, the check printout."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from facekit.choices import (
    AUGMENT_STRENGTHS,
    BACKENDS,
    CACHE_MODES,
    ENGINES,
    MIXES,
    MONITORS,
    PRECISIONS,
    SCRATCH_ARCHS,
    SPLITS,
    VAL_IMAGES,
)
from facekit.contract import CHECK_KERAS, OUTPUT_ORDERS
from facekit.utils.numbers import check_range
from facekit_cli.ui import console, fail


def choice_enum(name: str, values: tuple[str, ...]) -> type[Enum]:
    """A choice option from the library's own list: help shows the values, anything else is refused (exit 2)."""
    return Enum(name, [(v, v) for v in values], type=str)  # type: ignore[return-value]


Augment = choice_enum("Augment", AUGMENT_STRENGTHS)
Mix = choice_enum("Mix", MIXES)
Precision = choice_enum("Precision", PRECISIONS)
OutputOrder = choice_enum("OutputOrder", OUTPUT_ORDERS)
Split = choice_enum("Split", SPLITS)
Backend = choice_enum("Backend", BACKENDS)
Engine = choice_enum("Engine", ENGINES)
CacheMode = choice_enum("CacheMode", CACHE_MODES)
ValImages = choice_enum("ValImages", VAL_IMAGES)
Arch = choice_enum("Arch", SCRATCH_ARCHS)
Monitor = choice_enum("Monitor", MONITORS)
FINETUNE_ONLY = "Model B only (train finetune)"
SCRATCH_ONLY = "Model A only (train scratch)"


def ranged(*decls: str, help: str, low: float | None = None, high: float | None = None,
           above: float | None = None, below: float | None = None, **kw: Any) -> Any:
    """A numeric option refused outside its range while the command line is parsed (exit 2, the option named,
    before TensorFlow is imported), NaN and infinities included: the training options' own check."""
    words = range_words(low=low, high=high, above=above, below=below)

    def check(value: Any) -> Any:
        try:
            check_range("the value", value, low=low, high=high, above=above, below=below)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        return value
    return typer.Option(*decls, help=f"{help} ({words})" if words else help, callback=check, **kw)


def range_words(low: float | None = None, high: float | None = None, above: float | None = None,
                below: float | None = None) -> str:
    """'>= 0 and < 1': a range as the help texts say it."""
    parts = [f">= {low:g}" if low is not None else "", f"<= {high:g}" if high is not None else "",
             f"> {above:g}" if above is not None else "", f"< {below:g}" if below is not None else ""]
    return " and ".join(p for p in parts if p)


def value_of(choice: Enum | None) -> str | None:
    return None if choice is None else choice.value


ModelDirOpt = Annotated[
    Path | None,
    typer.Option("--model-dir", help="Directory with local model files (mediapipe/, keras/); "
                 "default: $FACEKIT_MODEL_DIR, else download into ~/.cache/facekit/models."),
]
WorkersOpt = Annotated[int | None, ranged("--workers", "-w", low=1,
                                          help="Parallel workers: processes (default: all cores).")]
JsonOpt = Annotated[bool, typer.Option("--json", metavar="", help="Print machine-readable JSON instead of text.")]
KerasOpt = Annotated[str | None, typer.Option(
    "--keras", help="Keras versions to load the file with too, each in an isolated environment created with "
    "pip on first use (in ~/.cache/facekit/keras-envs, or $FACEKIT_KERAS_ENVS); 'none': this environment's "
    f"Keras only. Default: {','.join(CHECK_KERAS)} (the oldest supported and Colab's since 2025).")]


def parse_keras_option(text: str | None) -> tuple[str, ...]:
    from facekit.contract.keras_envs import parse_specs

    if text is None:
        return CHECK_KERAS
    try:
        return parse_specs(text)
    except ValueError as exc:
        fail(str(exc))


def print_check(report) -> None:
    console.print(f"[bold]{escape(str(report.path))}[/] (Model {report.kind or '?'})", highlight=False)
    for c in report.checks:
        mark = "[yellow]SKIP[/]" if c.untested else {True: "[green]PASS[/]", False: "[red]FAIL[/]",
                                                     None: "[blue]INFO[/]"}[c.ok]
        console.print(f"  {mark} {c.name}: ", end="", highlight=False)
        console.print(c.detail, markup=False, highlight=False)
    if report.passed:
        verdict = "[green]meets the contract[/]"
    elif all(c.ok is not False for c in report.checks):
        verdict = (f"[yellow]NOT VERIFIED[/]: {len(report.untested)} Keras version(s) could not be tested; "
                   "nothing failed where it could be tested")
    else:
        verdict = "[red]does NOT meet the contract[/]"
    console.print("  verdict: " + verdict)


class Task(str, Enum):
    scratch = "scratch"
    finetune = "finetune"


class Kind(str, Enum):
    A = "A"
    B = "B"


def load_models(specs: list[str], project: str):
    from facekit.inference.load import load_all, resolve_model

    return load_all([resolve_model(s, project) for s in specs])
