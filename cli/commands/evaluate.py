"""`facekit evaluate`: scoring files as the lecturer does."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from facekit_cli.options import JsonOpt, Split, load_models, ranged
from facekit_cli.ui import console, fail, print_json, progress_bar, reason


def evaluate(
    models: Annotated[list[str], typer.Argument(help="A, B or .keras paths.")],
    data: Annotated[Path, typer.Option(help="Labelled folder (UTKFace names).")],
    tta: Annotated[bool, typer.Option("--tta", metavar="",
                                      help="Also report test-time flip averaging at run time.")] = False,
    plots: Annotated[Path | None, typer.Option(help="Write scatter, MAE-by-band and worst-case sheets here.")]
    = None,
    worst: Annotated[int, ranged(low=0, help="How many worst predictions to list.")] = 10,
    split: Annotated[Split, typer.Option(help="all, or the val / train part of the models' run (its "
                                         "split.json): score held-out images.")] = Split("all"),
    val_split: Annotated[float, ranged(above=0, below=1, help="Validation fraction for --split.")] = 0.2,
    seed: Annotated[int, typer.Option(help="Split seed for --split.")] = 0,
    run: Annotated[Path | None, typer.Option(help="With --split: the run folder whose recorded split to use "
                                             "(default: the models' own run folders).")] = None,
    project: Annotated[str, typer.Option(help="Runs folder searched for A / B.")] = "runs",
    json_out: JsonOpt = False,
) -> None:
    """Score models the way the lecturer does: cv2.imread / 255, no alignment, MAE and gender accuracy.

    --split val scores exactly the images the models' run held out (its split.json); a model outside a
    run folder falls back to re-splitting the folder by the course template."""
    from rich.table import Table

    from facekit.data.labelled import load_labelled
    from facekit.inference.evaluate import evaluate as run_evaluate
    from facekit.inference.evaluate import held_out_names, write_plots

    try:
        loaded = load_models(models, project)
        names, split_info = held_out_names([lm.path for lm in loaded], split.value, run)
        with progress_bar(f"read {data.name}", quiet=json_out) as bar:
            labelled = load_labelled(data, progress=bar, split=split.value, val_split=val_split, seed=seed, names=names)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    report, preds = run_evaluate(loaded, labelled, tta=tta, worst=worst)
    if split_info:
        report["split"] = {"part": split.value, **split_info}
        if "warning" in split_info:
            report["warnings"].append(split_info["warning"])
        if split_info.get("val_twins_in_train"):
            report["warnings"].append(f"{split_info['val_twins_in_train']} of these validation images have a "
                                      "pixel-identical copy among the training images (UTKFace duplicates)")
    if plots:
        try:
            report["plots"] = [str(p) for p in write_plots(report, preds, labelled, plots)]
        except OSError as exc:
            fail(f"--plots: {reason(exc)}")
    if json_out:
        print_json(report)
        return
    for w in report["warnings"]:
        console.print(f"[yellow]warning:[/] {escape(str(w))}", highlight=False)
    if report["rejected"]:
        console.print(f"{len(report['rejected'])} files not scored (name not labelled):", highlight=False)
        for r in report["rejected"]:
            console.print(f"  {r['file']}: {r['detail']}", markup=False, highlight=False)
    for u in report["unreadable"]:
        console.print(f"  unreadable: {u}", markup=False, highlight=False)
    for d in report["damaged"]:
        console.print(f"  damaged (scored as cv2 decodes it): {d}", markup=False, highlight=False)
    ms = report["models"]
    table = Table(title=f"{report['images']} images from {data}")
    table.add_column("")
    for label in ms:
        table.add_column(label, justify="right")
    table.add_row("age MAE", *[f"{m['mae']:.2f}" for m in ms.values()])
    table.add_row("gender accuracy", *[f"{m['gender_accuracy']:.1%}" for m in ms.values()])
    if tta:
        table.add_row("age MAE, flip TTA", *[f"{m['tta']['mae']:.2f}" for m in ms.values()])
        table.add_row("gender accuracy, flip TTA", *[f"{m['tta']['gender_accuracy']:.1%}" for m in ms.values()])
    from facekit.data.labels import AGE_BANDS

    for band in AGE_BANDS:
        vals = [m["mae_by_band"].get(band) for m in ms.values()]
        if any(vals):
            table.add_row(f"MAE {band} (n)", *[f"{v['mae']:.2f} ({v['n']})" if v else "-" for v in vals])
    for g in ("male", "female"):
        vals = [m["accuracy_by_gender"].get(g) for m in ms.values()]
        table.add_row(f"accuracy {g}", *[f"{v['accuracy']:.1%}" if v else "-" for v in vals])
    cells = []
    for m in ms.values():
        (mm, mf), (fm, ff) = m["confusion"]["matrix"]
        cells.append(f"{mm}/{mf} | {fm}/{ff}")
    table.add_row("confusion: true M as M/F | true F as M/F", *cells)
    console.print(table)
    for label, m in ms.items():
        console.print(f"worst predictions of {label}:")
        for w in m["worst"]:
            console.print(f"  {w['file']}: true {w['true_age']} {'F' if w['true_gender'] else 'M'}, "
                          f"predicted {w['pred_age']:.1f} (p female {w['p_female']:.2f})", highlight=False)
    for p in report.get("plots", []):
        console.print(f"plot: {p}", highlight=False)


