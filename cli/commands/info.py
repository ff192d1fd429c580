"""`facekit backbones` and `facekit doctor`: what is available and what is missing."""

from __future__ import annotations

import typer

from facekit_cli.options import JsonOpt, ModelDirOpt
from facekit_cli.ui import console, err_console, print_json


def backbones(json_out: JsonOpt = False) -> None:
    """List the ImageNet backbones `train finetune --backbone` accepts."""
    from dataclasses import asdict

    from facekit.model.backbones import DEFAULT_BACKBONE, REGISTRY, resolve_weights

    rows = [{**asdict(b), "default": b.name == DEFAULT_BACKBONE, "imagenet_weights": resolve_weights(b, "imagenet")}
            for b in REGISTRY.values()]
    if json_out:
        print_json(rows)
        return
    for r in rows:
        local = "local file" if r["imagenet_weights"] != "imagenet" else "download"
        flag = " (default)" if r["default"] else ""
        console.print(f"{r['name']:18s} keras.applications.{r['builder']}{flag}; ImageNet weights: {local}"
                      + (f"; {r['note']}" if r["note"] else ""), highlight=False)


def doctor(
    model_dir: ModelDirOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """What this machine has and what facekit needs: versions, backend, GPU, model files, OpenCV packages,
    the Keras versions the hand-in check can use; each problem with its fix. Exit 1 if facekit cannot work."""
    from rich.table import Table

    from facekit.doctor import diagnose

    with err_console.status("examining this machine", spinner="dots"):
        report = diagnose(model_dir)
    if json_out:
        print_json({**report, "findings": [f.to_json() for f in report["findings"]]})
    else:
        table = Table(title=f"facekit {report['facekit']} on {report['platform']}")
        for col in ("", "status", "detail", "fix"):
            table.add_column(col, overflow="fold")
        colour = {"ok": "green", "info": "cyan", "warn": "yellow", "fail": "bold red"}
        for f in report["findings"]:
            table.add_row(f.item, f"[{colour[f.status]}]{f.status}[/]", f.detail, f.fix)
        console.print(table)
    if not report["ok"]:
        raise typer.Exit(1)


