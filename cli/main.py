"""The ``facekit`` command: thin wrappers that parse options, call the library and print results."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from facekit_cli.ui import console, fail, print_json, progress_bar

app = typer.Typer(
    name="facekit",
    help="Age and gender models from UTKFace-style face images: prep, train, check, predict, evaluate.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

ModelDirOpt = Annotated[
    Path | None,
    typer.Option("--model-dir", help="Directory with local model files (mediapipe/, keras/); "
                 "default: $FACEKIT_MODEL_DIR, else download into ~/.cache/facekit/models."),
]
WorkersOpt = Annotated[int | None, typer.Option("--workers", "-w", help="Worker processes (default: all cores).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of text.")]


@app.command()
def prep(
    folder: Annotated[Path, typer.Argument(help="Folder of UTKFace-style images (labels in the file names).")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Cache file (default: cache/<folder>.h5).")] = None,
    align: Annotated[bool, typer.Option("--align/--no-align", help="Detect and align faces (--no-align: "
                                        "keep images as they are, resized to 128 x 128).")] = True,
    drop_unaligned: Annotated[bool, typer.Option(help="Leave out images where no face was found.")] = False,
    min_confidence: Annotated[float, typer.Option(help="Minimum face detection confidence.")] = 0.5,
    force: Annotated[bool, typer.Option("--force", "-f", help="Rebuild even if an up-to-date cache exists.")] = False,
    workers: WorkersOpt = None,
    model_dir: ModelDirOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Detect, align and label every face image of FOLDER into an HDF5 cache, with a quality report."""
    from facekit.cache import CacheError
    from facekit.modelfiles import ModelFileError
    from facekit.prep import PrepOptions
    from facekit.prep import prep as run_prep
    from facekit.report import summary_lines

    options = PrepOptions(align=align, drop_unaligned=drop_unaligned, min_confidence=min_confidence)
    try:
        with progress_bar(f"prep {folder.name}", quiet=json_out) as bar:
            result = run_prep(folder, out, options, workers=workers, force=force,
                              model_dir=str(model_dir) if model_dir else None, progress=bar)
    except (FileNotFoundError, NotADirectoryError, ValueError, CacheError, ModelFileError) as exc:
        fail(str(exc))
    if json_out:
        print_json({"cache": str(result.cache), "reused": result.reused, "report": result.report})
        return
    if result.reused:
        console.print(f"[green]cache up to date[/]: {result.cache} (use --force to rebuild)")
    else:
        console.print(f"[green]wrote[/] {result.cache}")
    for line in summary_lines(result.report):
        console.print(line, highlight=False, markup=False)
    console.print(f"report: {result.report_path}")
    if result.samples_png:
        console.print(f"samples: {result.samples_png}")
    if result.pairs_png:
        console.print(f"original vs aligned: {result.pairs_png}")


@app.command()
def template(
    folder: Annotated[Path, typer.Argument(help="Folder of UTKFace chips (all one square size).")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Where to write the template JSON "
                                             "(default: the one facekit ships).")] = None,
    limit: Annotated[int | None, typer.Option(help="Use a random sample of this many chips.")] = None,
    workers: WorkersOpt = None,
    model_dir: ModelDirOpt = None,
) -> None:
    """Re-derive the alignment template from the chips' own landmarks (median of each point)."""
    from facekit.modelfiles import ModelFileError
    from facekit.prep import derive_template
    from facekit.template import DEFAULT_TEMPLATE, save_template

    try:
        with progress_bar(f"measure {folder.name}") as bar:
            tpl = derive_template(folder, limit=limit, workers=workers,
                                  model_dir=str(model_dir) if model_dir else None, progress=bar)
    except (FileNotFoundError, ValueError, ModelFileError) as exc:
        fail(str(exc))
    dest = out or DEFAULT_TEMPLATE
    save_template(tpl, dest)
    console.print(f"[green]wrote[/] {dest} from {tpl.meta['faces']} faces")
    for name, (x, y) in zip(tpl.to_json()["point_names"], tpl.points):
        console.print(f"  {name:12s} x {x:6.2f}  y {y:6.2f}")


def main() -> None:
    app()
