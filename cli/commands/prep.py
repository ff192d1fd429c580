"""`facekit prep` and `facekit template`: folders of images in, a cache or a template out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from facekit_cli.options import JsonOpt, ModelDirOpt, WorkersOpt, ranged
from facekit_cli.ui import console, err_console, fail, print_json, progress_bar, reason


def prep(
    folder: Annotated[Path, typer.Argument(help="Folder of UTKFace-style images (labels in the file names).")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Cache file (default: cache/<folder>.h5).")] = None,
    align: Annotated[bool, typer.Option("--align/--no-align", metavar="", help="Detect and align faces (--no-align: "
                                        "keep images as they are, resized to 128 x 128).")] = True,
    drop_unaligned: Annotated[bool, typer.Option(metavar="", help="Leave out images where no face was found.")] = False,
    min_confidence: Annotated[float, ranged(low=0.0, high=1.0, help="Minimum face detection confidence.")]
    = 0.5,
    force: Annotated[bool, typer.Option("--force", "-f", metavar="",
                                        help="Detect every image again, even where an up-to-date cache (or an "
                                        "interrupted run's rows) could be reused.")] = False,
    template: Annotated[Path | None, typer.Option(help="Alignment template JSON from `facekit template` "
                                                  "(default: the one facekit ships).")] = None,
    detections: Annotated[Path | None, typer.Option(
        help="Align from the face points saved by --save-detections instead of detecting (same crops; "
        "no MediaPipe needed where every image's pixels match).")] = None,
    save_detections: Annotated[Path | None, typer.Option(
        help="Also write the cache's face points to this JSON file (about 360 bytes an image), for "
        "--detections on another machine.")] = None,
    workers: WorkersOpt = None,
    model_dir: ModelDirOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Detect, align and label every face image of FOLDER into an HDF5 cache, with a quality report."""
    from facekit.data.cache import CacheError
    from facekit.data.report import summary_lines
    from facekit.face.template import read_template
    from facekit.prep.pipeline import prep as run_prep
    from facekit.prep.workers import PrepError, PrepOptions
    from facekit.utils.modelfiles import ModelFileError

    if not folder.is_dir():
        fail(f"{folder}: not a directory (prep takes the folder of images)")
    try:
        options = PrepOptions(align=align, drop_unaligned=drop_unaligned, min_confidence=min_confidence)
        tpl = read_template(template) if template else None
        with progress_bar(f"prep {folder.name}", quiet=json_out) as bar:
            result = run_prep(folder, out, options, workers=workers, force=force, template=tpl,
                              model_dir=str(model_dir) if model_dir else None, progress=bar,
                              detections=detections, save_detections_to=save_detections,
                              on_wait=lambda message: err_console.print(message, markup=False, highlight=False,
                                                                        soft_wrap=True))
    except (OSError, ValueError, CacheError, ModelFileError, PrepError) as exc:
        fail(reason(exc))
    except KeyboardInterrupt:
        from facekit.prep.pipeline import default_cache_path, sidecar
        from facekit.prep.reuse import PARTIAL

        kept = sidecar(out or default_cache_path(folder), PARTIAL)
        fail("interrupted; the cache was not written (it is replaced only when complete)"
             + (f"; the images done so far are kept in {kept} and the same command resumes from them"
                if kept.exists() else ""), code=130)
    if json_out:
        print_json({"cache": str(result.cache), "reused": result.reused, "report": result.report,
                    "detections_saved": str(save_detections) if save_detections else None})
        return
    if result.reused:
        console.print(f"[green]cache up to date[/]: {escape(str(result.cache))} (use --force to rebuild)")
    else:
        reused = (f" ({result.reused_rows} unchanged images reused, not detected again)" if result.reused_rows
                  else "")
        if result.from_detections:
            reused += f" ({result.from_detections} aligned from {detections}, not detected)"
        console.print(f"[green]wrote[/] {escape(str(result.cache))}{reused}")
    for line in summary_lines(result.report):
        console.print(line, highlight=False, markup=False)
    console.print(f"report: {result.report_path}")
    if save_detections:
        console.print(f"detections: {save_detections}")
    if result.samples_png:
        console.print(f"samples: {result.samples_png}")
    if result.pairs_png:
        console.print(f"original vs aligned: {result.pairs_png}")


def template(
    folder: Annotated[Path, typer.Argument(help="Folder of UTKFace chips (all one square size).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the template JSON (never over the "
                                      "one facekit ships); use it with `facekit prep --template`.")]
    = Path("template.json"),
    limit: Annotated[int | None, ranged(low=1, help="Use a random sample of this many chips.")] = None,
    workers: WorkersOpt = None,
    model_dir: ModelDirOpt = None,
) -> None:
    """Re-derive the alignment template from the chips' own landmarks (median of each point).

    Models trained from a cache built with it keep a copy in their run folder, and predict frames faces with it."""
    from facekit.face.template import check_destination, save_template
    from facekit.prep.derive_template import derive_template
    from facekit.prep.workers import PrepError
    from facekit.utils.modelfiles import ModelFileError

    if not folder.is_dir():
        fail(f"{folder}: not a directory (template takes the folder of chips)")
    try:
        check_destination(out)  # before minutes of measuring
        with progress_bar(f"measure {folder.name}") as bar:
            tpl = derive_template(folder, limit=limit, workers=workers,
                                  model_dir=str(model_dir) if model_dir else None, progress=bar)
        save_template(tpl, out)
    except (OSError, ValueError, ModelFileError, PrepError) as exc:
        fail(reason(exc))
    console.print(f"[green]wrote[/] {escape(str(out))} from {tpl.meta['faces']} faces; use it with "
                  f"`facekit prep DIR --template {out}`", highlight=False)
    for name, (x, y) in zip(tpl.to_json()["point_names"], tpl.points):
        console.print(f"  {name:12s} x {x:6.2f}  y {y:6.2f}")
