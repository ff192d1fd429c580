"""`facekit check` and `facekit merge`: judging hand-in files and averaging several into one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from facekit_cli.options import (
    Backend,
    JsonOpt,
    KerasOpt,
    Kind,
    OutputOrder,
    parse_keras_option,
    print_check,
    ranged,
    value_of,
)
from facekit_cli.ui import console, err_console, fail, print_json, reason


def check(
    models: Annotated[list[str], typer.Argument(help="A, B (the newest trained file of that kind) or .keras "
                                                "paths.")],
    data: Annotated[Path | None, typer.Option(help="Folder of labelled chips for the sanity test "
                                              "(an even sample of --samples images).")] = None,
    samples: Annotated[int, ranged(low=1, help="How many images of --data to use.")] = 32,
    kind: Annotated[Kind | None, typer.Option(help="A or B (default: from the file name); "
                                              "A adds the feature-map rule.")] = None,
    backend: Annotated[Backend | None, typer.Option(help="Keras backend to load with (default: KERAS_BACKEND or "
                                                    "tensorflow).")] = None,
    keras_versions: KerasOpt = None,
    project: Annotated[str, typer.Option(help="Runs folder searched for A / B.")] = "runs",
    json_out: JsonOpt = False,
) -> None:
    """Verify the lecturer's contract, on the lecturer's Keras: loads without facekit on this and older Keras
    versions with the same predictions, float32, input, outputs, gender unit, A's map rule."""
    from facekit.inference.check import check_models, sample_images
    from facekit.inference.load import resolve_model

    versions = parse_keras_option(keras_versions)
    if data is not None and not data.is_dir():
        fail(f"{data}: not a directory")
    try:
        images = sample_images(data, samples) if data else []
    except ValueError as exc:
        fail(str(exc))
    try:
        paths = [resolve_model(m, project) for m in models]
    except (FileNotFoundError, ValueError) as exc:  # ValueError: a folder given for a file (BadModelFile)
        fail(str(exc))
    try:
        with err_console.status(f"checking {', '.join(str(p) for p in paths)}", spinner="dots") as spin:
            reports = check_models(paths, [kind.value if kind else None] * len(paths), images,
                                   backend=value_of(backend), keras_versions=versions,
                                   status=lambda msg: spin.update(f"check: {msg}"))
    except FileNotFoundError as exc:
        fail(str(exc))
    if json_out:
        print_json([r.to_json() for r in reports])
    else:
        for r in reports:
            print_check(r)
    if not all(r.passed for r in reports):
        raise typer.Exit(1)


def merge(
    models: Annotated[list[Path], typer.Argument(help="Two or more hand-in files of one kind (e.g. runs with "
                                                 "different --init-seed).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The merged file (a .keras name, e.g. "
                                      "age_gender_B.keras).")],
    output_order: Annotated[OutputOrder | None, typer.Option(help="Order of the two outputs (default "
                                                             "age,gender).")] = None,
    age_from: Annotated[list[int] | None, typer.Option(
        metavar="<N>", help="Members (numbered from 1, as given) whose age the age output averages; repeat it. "
        "Default: all.")] = None,
    gender_from: Annotated[list[int] | None, typer.Option(
        metavar="<N>", help="Members whose gender the gender output averages; repeat it. Default: all.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Join several trained models into one hand-in file that averages them (built-in layers only); each
    output may average a subset of them (--age-from, --gender-from)."""
    from facekit.contract import DEFAULT_OUTPUT_ORDER, hand_in_kind
    from facekit.model.ensemble import output_members
    from facekit.model.export import save_hand_in
    from facekit.model.files import merge_files
    from facekit.utils.atomic import output_path

    if out.suffix != ".keras":
        fail(f"{out}: the merged file must end in .keras")
    twice = sorted({str(p) for p in models if sum(q.resolve() == p.resolve() for q in models) > 1})
    if twice:
        fail(f"{', '.join(twice)}: named more than once; a merge averages different runs")
    try:
        output_path(out)  # a directory or a device: refused before minutes of loading
    except OSError as exc:
        fail(reason(exc))
    kinds = {k for k in (hand_in_kind(p) for p in models) if k}
    if len(kinds) > 1:
        fail("members of Model A and Model B cannot be merged: Model A must stay a network trained from scratch")
    try:
        ages, genders = output_members(len(models), age_from, gender_from)
        with err_console.status(f"merging {len(models)} models", spinner="dots"):
            model = merge_files(models, value_of(output_order) or DEFAULT_OUTPUT_ORDER, ages, genders)
            save_hand_in(model, out)
    except (OSError, ValueError) as exc:
        fail(reason(exc))
    size = out.stat().st_size / 2**20
    if json_out:
        print_json({"out": str(out), "members": [str(p) for p in models], "age_from": ages, "gender_from": genders,
                    "megabytes": round(size, 2)})
        return
    every = list(range(1, len(models) + 1))
    which = ("age is their mean, P(female) the sigmoid of their mean logit" if ages == genders == every else
             f"age from member{'s' * (len(ages) > 1)} {', '.join(map(str, ages))}, gender from "
             f"member{'s' * (len(genders) > 1)} {', '.join(map(str, genders))}")
    console.print(f"[green]merged[/] {len(models)} models into {escape(str(out))} ({size:.1f} MB): {which}",
                  highlight=False)
    console.print(f"next: facekit check {out} --data DIR", highlight=False)


