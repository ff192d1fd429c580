"""`facekit train`: its options are generated from TrainConfig's declarations; the run itself is facekit.engine's.

Each TrainConfig field declares its help, range or choices and each model's
default once (facekit.engine.recipe); this module turns them into Typer options
whose values are checked while parsing (exit 2, the option named, before
TensorFlow is imported), and into the option table of docs/train.md.
"""

from __future__ import annotations

import inspect
import typing
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from facekit.engine.recipe import TrainConfig, check_value, flag
from facekit_cli.options import (
    JsonOpt,
    Task,
    choice_enum,
    parse_keras_option,
    print_check,
    range_words,
    ranged,
)
from facekit_cli.ui import console, err_console, fail, print_json, reason

DOCS_TABLE = ("<!-- options:begin (python -m facekit_cli.commands.train) -->", "<!-- options:end -->")


def spelling(name: str, opt: Any) -> str:
    """The CLI spelling of a TrainConfig field: its declared flag, else --field-name."""
    return opt.spelled(name)


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value)) if value else "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def defaults_text(default: Any, opt: Any) -> str:
    """``60 scratch, 40 finetune`` or ``64``: each model's default, from the declaration."""
    a, b = opt.default_for("scratch", default), opt.default_for("finetune", default)
    if opt.panel is not None or a == b:
        return _shown(b if opt.panel and "finetune" in opt.panel else a)
    return f"{_shown(a)} scratch, {_shown(b)} finetune"


def range_text(opt: Any) -> str:
    return range_words(low=opt.low, high=opt.high, above=opt.above, below=opt.below)


def _checker(name: str, opt: Any):
    """A click callback: the declaration's range and choices, enforced while parsing (exit 2, option named)."""
    def check(value: Any) -> Any:
        raw = value.value if isinstance(value, Enum) else value
        try:
            check_value(name, raw, opt)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        # typer before 0.16 runs its converter again on what a callback returns (an enum member became None,
        # so `--augment strong` was silently the default; None for --teacher crashed): hand back what every
        # typer converts the same way, the choice's text and an empty list.
        return [] if raw is None and name == "teachers" else raw
    return check


def _number_type(name: str) -> type | None:
    """int or float when the TrainConfig field is one of them (``int | None`` included), else None."""
    hint = typing.get_type_hints(TrainConfig)[name]
    found = [t for t in (typing.get_args(hint) or (hint,)) if t in (int, float)]
    return found[0] if found else None


def _param(name: str, default: Any, opt: Any) -> inspect.Parameter:
    annotation: Any
    said = [f"default: {defaults_text(default, opt)}"] if default is not None else []  # None: the help says
    said += [range_text(opt)] if range_text(opt) else []
    help_text = opt.help + (f" ({'; '.join(said)})" if said else "")
    decls = [spelling(name, opt)]
    extra: dict[str, Any] = {"rich_help_panel": opt.panel} if opt.panel else {}
    if opt.choices is not None:
        annotation = choice_enum(name.title().replace("_", ""), opt.choices) | None
    elif isinstance(default, bool):
        # --full is an on-switch; the others say both ways, since each model has its own default
        decls = [decls[0]] if name == "full" else [f"{decls[0]}/--no-{decls[0][2:]}"]
        annotation = bool | None
        extra["metavar"] = ""
    elif name == "teachers":
        annotation = list[Path] | None
    elif name == "check_keras":
        annotation = str | None
    elif name in ("cache", "raw_dir", "model_dir"):
        annotation = Path | None
    elif (number := _number_type(name)) is not None:  # int or float, read from the field's own annotation
        annotation = number | None
    else:
        annotation = str | None
    if name == "full":
        annotation = bool
    info = typer.Option(*decls, help=help_text, callback=_checker(name, opt), show_default=False, **extra)
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=False if name == "full" else None,
                             annotation=Annotated[annotation, info])


def config_values(task: str, options: dict[str, Any]) -> dict[str, Any]:
    """Parsed option values as TrainConfig takes them (None: the model's own default)."""
    out: dict[str, Any] = {}
    for name, _, opt in TrainConfig.options():
        if not opt.cli or name not in options:
            continue
        value = options[name]
        if isinstance(value, Enum):
            value = value.value
        elif isinstance(value, Path):
            value = str(value)
        if name == "teachers":
            value = tuple(map(str, value)) if value else None
        elif name == "check_keras" and value is not None:
            value = parse_keras_option(value)
        elif name == "full":
            value = value or None
        out[name] = value
    given = [(n, o) for n, _, o in TrainConfig.options() if o.panel and out.get(n) is not None]
    a_only = [flag(n) for n, o in given if "scratch" in o.panel]
    b_only = [flag(n) for n, o in given if "finetune" in o.panel]
    if task == "scratch" and b_only:
        every = [flag(n) for n, _, o in TrainConfig.options() if o.panel and "finetune" in o.panel]
        raise ValueError(f"{', '.join(b_only)} given, but {', '.join(every[:-1])} and {every[-1]} apply to "
                         "`train finetune` only")
    if task == "finetune" and a_only:
        raise ValueError(f"{', '.join(a_only)} applies to `train scratch` only (Model B's architecture is its "
                         "--backbone)")
    return out


def options_table() -> str:
    """docs/train.md's option table, from the declarations (`python -m facekit_cli.commands.train` rewrites it)."""
    rows = ["| option | default | allowed | what |", "| --- | --- | --- | --- |"]
    for name, default, opt in TrainConfig.options():
        spelled = f"`{spelling(name, opt)}`" if opt.cli else f"`{name}` (library and `--set`)"
        if name == "task":
            spelled = "`TASK` (the argument)"
        allowed = " \\| ".join(opt.choices) if opt.choices else range_text(opt) or "-"
        what = opt.help + (f" {opt.panel}." if opt.panel else "")
        rows.append(f"| {spelled} | {defaults_text(default, opt)} | {allowed} | {what} |")
    return "\n".join(rows) + "\n"


def train(task: Task, *, refit: bool = False, members: int = 1, resume: Path | None = None,
          check_after: bool = True, json_out: bool = False, **options: Any) -> None:
    """Train Model A (scratch) or Model B (finetune) on a prep cache; writes a run folder."""
    # Lazy: training imports TensorFlow, which must not slow down --help or the option checks above it.
    from facekit.data.cache import CacheError
    from facekit.engine.runs import MEMBERS_FILE
    from facekit.engine.train import TrainingInterrupted
    from facekit.engine.train import train as run_train
    from facekit.utils.modelfiles import ModelFileError
    from facekit_cli.train_progress import RichProgress

    try:
        values = config_values(task.value, options)
        cfg = TrainConfig.for_task(task.value, **values)
    except (TypeError, ValueError) as exc:
        fail(str(exc))
    if refit and options.get("full"):
        fail("--refit runs the split itself and then the refit on all images; leave out --full")
    ensemble = None
    try:
        if members > 1 or (resume is not None and (resume / MEMBERS_FILE).is_file()):
            from facekit.engine.members import train_members

            def bars(i: int, count: int, epochs: int) -> list:
                return [RichProgress(epochs, prefix=f"member {i + 1}/{count}: ")]

            ensemble = train_members(cfg, members, refit, None if json_out else bars, resume,
                                     given={k: v for k, v in values.items() if v is not None})
        elif refit:
            from facekit.engine.refit import refit as run_refit

            chosen, result = run_refit(cfg, None if json_out else lambda epochs: [RichProgress(epochs)], resume)
            if not json_out:
                cm = chosen.metrics
                console.print(f"[green]split run[/] {escape(str(chosen.run_dir))}: best epoch {cm['best_epoch']}, "
                              "validation "
                              f"age MAE {cm['val_age_mae']:.2f}, gender accuracy {cm['val_gender_accuracy']:.1%}")
        else:
            result = run_train(cfg, callbacks=[] if json_out else [RichProgress(cfg.epochs)], resume=resume,
                               given={k: v for k, v in values.items() if v is not None})
    except TrainingInterrupted as exc:
        fail(str(exc), code=130)
    except (OSError, ValueError, CacheError, ModelFileError) as exc:
        fail(reason(exc))
    if ensemble is not None:
        _finish_members(ensemble, check_after, options, json_out)
        return
    report = _check_run(result.run_dir, result.metrics, check_after, options, json_out)
    if json_out:
        return
    m = result.metrics
    which = f"best epoch {m['best_epoch']} by {m['monitor']}" if m["monitor"] else \
        "no validation (--full): last epoch saved"
    if m.get("refit_of"):
        which = f"all images for the split run's best {m['refit_of']['best_epoch']} epochs, last epoch saved"
    console.print(f"[green]done[/] in {m['train_seconds']:.0f} s ({m['backend']}, {m['gpu'] or 'CPU'}): "
                  f"{m['epochs_run']} epoch{'s' if m['epochs_run'] != 1 else ''}, {which}")
    if m["val_age_mae"] is not None:
        console.print(f"validation: age MAE {m['val_age_mae']:.2f}, gender accuracy "
                      f"{m['val_gender_accuracy']:.1%} ({m['val_images']} images)"
                      + (f", score {m['val_score']:.2f}" if m.get("val_score") is not None else ""))
    console.print(f"model: {result.model_path}\nrun folder: {result.run_dir}", markup=False)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    if report is not None:
        _print_report(report, result.model_path, "the run folder is complete")


def _check_run(run_dir: Path, metrics: dict[str, Any], check_after: bool, options: dict[str, Any],
               json_out: bool) -> Any:
    """The end-of-training check of a run's (or an ensemble's) hand-in file, recorded in ``metrics``; with
    --json, the whole result printed (exit 1 for a failed file). Returns the check's report, if it ran."""
    from facekit.engine.run_check import check_run

    report = None
    if check_after:
        # A resumed run keeps its args.json; an explicit --check-keras still wins for this check.
        versions = parse_keras_option(options["check_keras"]) if options.get("check_keras") is not None else None
        with err_console.status("checking the hand-in file", spinner="dots") as spin:
            report = check_run(run_dir, versions, status=None if json_out else lambda msg: spin.update(f"check: {msg}"))
        metrics["check"] = report.to_json()
    if json_out:
        print_json({"run_dir": str(run_dir), **metrics})
        if report is not None and report.failed:
            raise typer.Exit(1)
    return report


def _finish_members(ensemble: Any, check_after: bool, options: dict[str, Any], json_out: bool) -> None:
    """An ensemble's end: its merged file checked as a run's is, then what each member and the merge scored."""
    report = _check_run(ensemble.run_dir, ensemble.metrics, check_after, options, json_out)
    if json_out:
        return
    m = ensemble.metrics
    console.print(f"[green]done[/] in {m['train_seconds']:.0f} s of training ({m['backend']}, {m['gpu'] or 'CPU'}): "
                  f"{len(m['members'])} members merged")
    for i, member in enumerate(m["members"], start=1):
        figures = ("refit on all images" if member.get("refit_of") else
                   f"validation age MAE {member['val_age_mae']:.2f}, gender accuracy "
                   f"{member['val_gender_accuracy']:.1%}" if member.get("val_age_mae") is not None else "")
        console.print(f"member {i} (init seed {member['init_seed']}): {escape(member['run_dir'])}"
                      + (f": {figures}" if figures else ""), highlight=False)
    if m["val_age_mae"] is not None:
        console.print(f"merged, validation: age MAE {m['val_age_mae']:.2f}, gender accuracy "
                      f"{m['val_gender_accuracy']:.1%} ({m['val_images']} images), score {m['val_score']:.2f}")
    else:
        console.print("merged: no validation figures (refit members trained on every image)")
    console.print(f"model: {ensemble.model_path}\nensemble folder: {ensemble.run_dir}", markup=False)
    for note in ensemble.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    if report is not None:
        _print_report(report, ensemble.model_path, "the members and the merge are on disk")


def _print_report(report: Any, path: Path, kept: str) -> None:
    """The end-of-training check: every line, a loud note for untested versions, exit 1 for a failed file."""
    print_check(report)
    if report.untested and not report.failed:  # training worked and nothing that ran failed: exit 0, loudly
        err_console.print(f"[bold yellow]NOT VERIFIED[/] on {len(report.untested)} Keras version(s) (above); "
                          f"verify later where they can be built: {escape(report.verify_later())}",
                          highlight=False, soft_wrap=True)
    if report.failed:
        fail(f"{path} did not pass `facekit check` (above); {kept}, but this file may not score on the "
             "lecturer's machine")


TASK_ARG = Annotated[Task, typer.Argument(help="scratch: Model A, a CNN from random weights; finetune: Model B, "
                                          "an ImageNet backbone.")]
EXTRA = {
    "refit": Annotated[bool, typer.Option("--refit", metavar="", help="After the run, train again on all images for "
                                          "its best epoch count (a second run folder, NAME-full); that run's file "
                                          "is the hand-in. With --resume RUN, finishes an interrupted refit.")],
    "members": Annotated[int, ranged("--members", low=1, metavar="K", help="Train K members (initialisation "
                                     "seeds --init-seed, +1, ...; with --refit each a refit) and hand in their "
                                     "merge, in a folder of its own (NAME; members NAME-member1 ...). With "
                                     "--resume NAME, finishes an interrupted ensemble.")],
    "resume": Annotated[Path | None, typer.Option(help="Continue the run in this folder, with the options in its "
                                                       "args.json; of the options given with it, only those that "
                                                       "change how it runs (--workers, --check-keras, --model-dir, "
                                                       "--cache-mode, --eager) may differ.")],
    "check_after": Annotated[bool, typer.Option("--check/--no-check", metavar="", help="Run `facekit check` on the "
                                                "hand-in file at the end (recorded in metrics.json).")],
    "json_out": JsonOpt,
}
EXTRA_DEFAULTS = {"refit": False, "members": 1, "resume": None, "check_after": True, "json_out": False}


def _signature() -> inspect.Signature:
    params = [inspect.Parameter("task", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=TASK_ARG)]
    params += [_param(name, default, opt) for name, default, opt in TrainConfig.options() if opt.cli]
    params += [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=EXTRA_DEFAULTS[n], annotation=a)
               for n, a in EXTRA.items()]
    return inspect.Signature(params)


train.__signature__ = _signature()  # type: ignore[attr-defined]
train.__annotations__ = {p.name: p.annotation for p in train.__signature__.parameters.values()}


def write_docs_table(page: Path) -> bool:
    """Rewrite the generated table in ``page``; True when it changed."""
    text = page.read_text()
    head, rest = text.split(DOCS_TABLE[0], 1)
    _, tail = rest.split(DOCS_TABLE[1], 1)
    new = head + DOCS_TABLE[0] + "\n" + options_table() + DOCS_TABLE[1] + tail
    if new != text:
        page.write_text(new)
    return new != text


if __name__ == "__main__":
    docs = Path(__file__).resolve().parents[2] / "docs" / "train.md"
    print(f"{docs}: {'rewritten' if write_docs_table(docs) else 'up to date'}")
