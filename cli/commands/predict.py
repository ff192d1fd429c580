"""`facekit predict`: age and gender for every face in any photo."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from facekit_cli.options import Engine, ModelDirOpt, load_models, ranged, value_of
from facekit_cli.ui import console, err_console, fail, progress_bar, reason


def predict(
    images: Annotated[list[Path], typer.Argument(help="Photos, videos, or folders of them.")],
    model: Annotated[list[str] | None, typer.Option("--model", "-m", help="A, B (newest trained file of that "
                                                    "kind under --project) or a .keras path; repeat to compare.")]
    = None,
    annotate: Annotated[Path | None, typer.Option(help="Write annotated copies into this folder (photos as PNG, "
                                                  "videos as MP4 with track ids and running estimates).")]
    = None,
    fps: Annotated[float | None, ranged(above=0, help="Video frames sampled per second of video [default: every "
                                        "frame, at most 10 a second]")] = None,
    tta: Annotated[bool, typer.Option("--tta", metavar="",
                                      help="Test-time flip averaging at run time (a model trained with "
                                         "the default --tta has it built in: not applied twice).")] = False,
    max_faces: Annotated[int, ranged(low=1, help="Most faces to find per image.")] = 20,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", metavar="",
                                            help="Also the images in subfolders of a folder.")] = False,
    thorough: Annotated[bool, typer.Option("--thorough", metavar="",
                                           help="Search every photo twice (with and without a border), as for "
                                           "group photos with faces of very different sizes; slower.")] = False,
    scores: Annotated[bool, typer.Option("--scores", metavar="",
                                         help="Also run the face detector: a confidence score and a detector "
                                         "box per face (without it: the landmarks' extent, no score); about "
                                         "3 ms more per image.")] = False,
    batch_size: Annotated[int, ranged(low=1, help="Most faces per forward pass.")] = 32,
    engine: Annotated[Engine, typer.Option(help="What runs the models: litert (each model converted once by "
                                           "Keras and cached; about 2x faster on a CPU), keras, or auto (litert "
                                           "where it runs and agrees with Keras, else keras).")] = Engine("auto"),
    project: Annotated[str, typer.Option(help="Runs folder searched for A / B.")] = "runs",
    model_dir: ModelDirOpt = None,
    json_out: Annotated[bool, typer.Option("--json", metavar="", help="One JSON document with every record "
                                           "and a summary, printed at the end.")] = False,
    jsonl: Annotated[bool, typer.Option("--jsonl", metavar="", help="One JSON record per face and model, "
                                        "streamed a line at a time (for big folders).")] = False,
    csv_out: Annotated[bool, typer.Option("--csv", metavar="", help="The same records as CSV rows, streamed.")]
    = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the records to this file (written "
                                                "atomically) instead of standard output; the format comes from "
                                                "--json/--jsonl/--csv or the file's suffix.")] = None,
) -> None:
    """Age and gender for every face in IMAGES (chips, selfies, group photos, videos, folders).

    In a video, faces are followed across the sampled frames and each track gets one estimate pooled over its
    frames. --json, --jsonl and --csv write versioned records for scripts (docs/predict.md); progress, warnings
    and the summary line go to standard error, so standard output holds only the records. Ctrl-C stops at the
    frame or image being answered and still writes what was answered (exit 130)."""
    import time

    from facekit.contract import INPUT_SIZE
    from facekit.face.template import framing_for
    from facekit.inference.predict import FrameResult, Predictor, VideoResult, count_units, expand_inputs
    from facekit.inference.records import FORMATS, ModelInfo, RecordWriter, Tally, document_header, records
    from facekit.utils.atomic import open_output, output_path
    from facekit.utils.modelfiles import ModelFileError

    chosen = [f for f, on in (("json", json_out), ("jsonl", jsonl), ("csv", csv_out)) if on]
    if len(chosen) > 1:
        fail(f"choose one output format, not {' and '.join('--' + f for f in chosen)}", 2)
    fmt = chosen[0] if chosen else None
    to_file = output is not None and str(output) != "-"
    if fmt is None and to_file:
        fmt = output.suffix.lower().lstrip(".")
        if fmt not in FORMATS:
            fail(f"{output}: cannot tell the format from the suffix; add --json, --jsonl or --csv", 2)
    elif fmt is None and output is not None:
        fail("--output - needs --json, --jsonl or --csv", 2)
    named = output.suffix.lower().lstrip(".") if to_file else ""
    if to_file and named in FORMATS and named != fmt:
        fail(f"{output}: its name says {named}, but --{fmt} was asked; rename the file or leave the flag out", 2)
    if to_file:
        try:  # a folder named for the records is refused now, not after the models load and every image is read
            output_path(output, stream_ok=True)
        except OSError as exc:
            fail(reason(exc))
    try:
        files = expand_inputs(images, recursive)
    except (FileNotFoundError, OSError) as exc:
        fail(reason(exc))
    if not files:
        fail(f"no image or video files in {', '.join(str(p) for p in images)}" + ("" if recursive else
                                                                          " (subfolders need --recursive)"))
    try:
        models = load_models(model or ["B"], project)
        template, framing_warnings = framing_for([lm.path for lm in models], INPUT_SIZE)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    warnings = [*(lm.note for lm in models if lm.note), *framing_warnings]
    for lm in models:
        if fmt is None:
            console.print(f"model {lm.label}: {lm.path}", highlight=False, soft_wrap=True)
    for w in warnings:
        err_console.print(f"[yellow]warning:[/] {escape(str(w))}", highlight=False)
    infos = [ModelInfo.of(lm) for lm in models]
    tally = Tally()
    results = []  # photos and videos for the text tables; record formats stream
    total = count_units(files, fps)
    start = time.perf_counter()
    try:
        with err_console.status("loading the face finder (a model's first use also converts it for LiteRT, "
                                "about 10 s, once)", spinner="dots"):
            predictor = Predictor(models, template, tta=tta, max_faces=max_faces, thorough=thorough,
                                  batch_size=batch_size, model_dir=str(model_dir) if model_dir else None,
                                  annotate_dir=annotate, scores=scores, engine=value_of(engine))
        with predictor, open_output(output) as stream, progress_bar("predict") as bar:
            for note in predictor.notes:
                err_console.print(f"note: {note}", highlight=False, soft_wrap=True)
            header = document_header(infos, template.digest(), warnings)
            writer = RecordWriter(stream, fmt, header) if fmt else None

            def take(res) -> None:
                tally.add(res)
                tally.seconds = time.perf_counter() - start
                if res.error:
                    err_console.print(f"[yellow]skipped:[/] {escape(str(res.error))}", highlight=False, soft_wrap=True)
                if isinstance(res, VideoResult) and res.warning:
                    err_console.print(f"[yellow]warning:[/] {escape(res.warning)}", highlight=False, soft_wrap=True)
                    header["warnings"].append(res.warning)
                if writer:
                    writer.write(records(res, infos))
                elif not isinstance(res, FrameResult):
                    results.append(res)
                bar(tally.done, max(total, tally.done), f"{tally.faces_per_second:.1f} faces/s")

            items = predictor.stream(files, fps)
            try:
                for res in items:
                    take(res)
            except KeyboardInterrupt:
                items.close()  # the video being read commits its annotated copy up to here
                tally.interrupted = True
                partial = predictor.interrupted()
                if partial is not None:
                    take(partial)
                err_console.print("interrupted: writing what was answered so far", highlight=False)
            if writer:
                writer.close(tally.to_json())
    except (ModelFileError, ValueError, OSError) as exc:
        fail(reason(exc))
    if fmt is None:
        for table in (photo_table([r for r in results if not isinstance(r, VideoResult)], models),
                      track_table([r for r in results if isinstance(r, VideoResult)], models)):
            if table.row_count:
                console.print(table)
        for r in results:
            if r.annotated:
                console.print(f"annotated: {r.annotated}", highlight=False, soft_wrap=True)
    err_console.print(tally.line(), highlight=False)
    if to_file:
        err_console.print(f"wrote {output}", highlight=False)
    if tally.interrupted:
        raise typer.Exit(130)
    if not tally.faces:
        raise typer.Exit(1)


def result_table(columns: list[tuple[str, bool]], models: list, age_header: str) -> Table:
    """A table whose leading columns are ``columns`` (header, right-aligned) and then age and gender per model."""
    table = Table(show_lines=False)
    for header, right in columns:
        table.add_column(header, justify="right" if right else "left")
    for lm in models:
        table.add_column(f"{lm.label}: {age_header}", justify="right")
        table.add_column(f"{lm.label}: gender (p)")
    return table


def model_cells(predictions: dict, models: list, age: Callable[[dict], str]) -> list[str]:
    """The age and gender cells of one row, in ``result_table``'s model order."""
    return [cell for lm in models for cell in (age(predictions[lm.label]), gender_cell(predictions[lm.label]))]


def photo_table(photos: list, models: list) -> Table:
    """One row a face found in a photo."""
    table = result_table([("image", False), ("face", True), ("box x0,y0,x1,y1", False)], models, "age")
    for r in photos:
        for i, f in enumerate(r.faces):
            table.add_row(Path(r.path).name if i == 0 else "", str(i + 1), ",".join(f"{v:.0f}" for v in f.box),
                          *model_cells(f.predictions, models, lambda p: f"{p['age']:.1f}"))
    return table


def track_table(videos: list, models: list) -> Table:
    """One row a face tracked through a video, with its estimate pooled over the track's frames."""
    table = result_table([("video", False), ("track", True), ("frames", True), ("seen (s)", False)], models,
                         "age ± sd")
    for v in videos:
        for i, t in enumerate(v.tracks):
            table.add_row(Path(v.path).name if i == 0 else "", str(t.track), str(t.frames),
                          f"{t.first_time_s:.1f}-{t.last_time_s:.1f}",
                          *model_cells(t.predictions, models, lambda p: f"{p['age']:.1f} ± {p['age_std']:.1f}"))
    return table


def gender_cell(p: dict) -> str:
    """``female (0.94)``: the gender and the probability of that gender, as both tables show it."""
    return f"{p['gender']} ({max(p['p_female'], 1 - p['p_female']):.2f})"
