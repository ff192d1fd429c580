"""What k members in one file are worth: MAE, accuracy, file size and inference time for k = 1..K.

    python -m benchmarks.ensemble MEMBER MEMBER [MEMBER ...] [--data ../shared/data/train_val]
                                  [--holdout RUN] [--age-from N ...] [--gender-from N ...] [--tag NAME]

Each MEMBER is a finished training run of one task on one split (for example
the seeds of ``benchmarks.accuracy``: runs/accuracy/finetune/finetune-seed0 ...),
which stands for its hand-in file, or a .keras file inside such a run folder
(its ``last-epoch-*.keras``: the epoch another monitor would have kept).
The first k members' files are merged (``facekit merge``: mean age,
sigmoid of the mean gender logit, built-in layers) for every k, and each
merged file is scored on the split's held-out chips read as the lecturer
reads them, beside each member scored alone (the gain columns: the merged file
against the mean of its own members). A run whose split differs is refused: its "held-out" chips would
be another run's training images. ``--holdout RUN`` scores members of different splits (a refit and
the run beside it) on RUN's held-out chips instead, once every member's recorded split shows it never
trained on them; a member that chose its epoch on them is allowed and marked, since that flatters it.
``--age-from`` / ``--gender-from`` (members numbered from 1) also score one
merge of all the members whose outputs average only those members
(``facekit merge --age-from``): a recipe better at age beside one better at
gender. Writes benchmarks/results/ensemble[-TAG].json and .md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmarks.common import TRAIN_VAL, check_unseen, held_out, mean_sd, plus_minus, report, save, table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("members", type=Path, nargs="+", help="run folders, or .keras files inside run folders")
    ap.add_argument("--data", type=Path, default=TRAIN_VAL)
    ap.add_argument("--holdout", type=Path, default=None, metavar="RUN",
                    help="score on this run's held-out chips; members may have other splits if none trained on them")
    ap.add_argument("--age-from", type=int, nargs="+", default=None, metavar="N",
                    help="also score a merge whose age averages only these members (numbered from 1)")
    ap.add_argument("--gender-from", type=int, nargs="+", default=None, metavar="N",
                    help="... and whose gender averages only these")
    ap.add_argument("--tag", default="")
    args = ap.parse_args()

    from facekit.engine.recipe import TrainConfig
    from facekit.inference.evaluate import evaluate
    from facekit.inference.load import load
    from facekit.model.ensemble import output_members
    from facekit.model.export import save_hand_in
    from facekit.model.files import merge_files

    chosen = args.age_from is not None or args.gender_from is not None
    try:  # before anything is loaded
        ages, genders = output_members(len(args.members), args.age_from, args.gender_from)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    runs = [m.parent if m.suffix == ".keras" else m for m in args.members]
    cfgs = [TrainConfig.load(r / "args.json") for r in runs]
    if args.holdout is None:
        splits = {(c.task, c.seed, c.val_split, c.full, c.limit) for c in cfgs}
        if len(splits) != 1 or cfgs[0].full:
            raise SystemExit(f"the runs must share one task and one held-out split (not --full), or name the "
                             f"chips to score on with --holdout RUN; got {sorted(splits)}")
        val = held_out(runs, args.data)
        chose = [True] * len(runs)
    else:
        if len(tasks := {c.task for c in cfgs}) != 1:
            raise SystemExit(f"the runs must share one task; got {sorted(tasks)}")
        try:
            val = held_out([args.holdout], args.data)
            chose = check_unseen(runs, val.names)
        except ValueError as exc:
            raise SystemExit(str(exc)) from None
    files = [m if m.suffix == ".keras" else m / c.export_name for m, c in zip(args.members, cfgs)]

    def score(path: Path, label: str) -> dict:
        lm = load(path, label=label)
        start = time.perf_counter()
        scored, _ = evaluate([lm], val)
        seconds = time.perf_counter() - start
        m = scored["models"][lm.label]
        return {"mae": m["mae"], "gender_accuracy": m["gender_accuracy"],
                "megabytes": round(path.stat().st_size / 2**20, 2),
                "ms_per_image": round(1000 * seconds / len(val.names), 2)}

    # Each member alone, so a merged file is judged against what its own members score,
    # not against whichever member happens to come first.
    alone = [{"run": str(r), "file": str(f), "init_seed": c.run_seed, "chose_epoch_on_holdout": ch,
              **score(f, f"member{i}")} for i, (r, f, c, ch) in enumerate(zip(runs, files, cfgs, chose))]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(1, len(files) + 1):
            path = files[0] if k == 1 else Path(tmp) / f"k{k}_{cfgs[0].export_name}"
            if k > 1:
                save_hand_in(merge_files(files[:k], cfgs[0].output_order), path)
            row = {"members": k, **(alone[0] if k == 1 else score(path, f"k{k}"))}
            own = alone[:k]
            row["alone_mae"] = mean_sd([a["mae"] for a in own])
            row["alone_accuracy"] = mean_sd([a["gender_accuracy"] for a in own])
            row["gain_mae"] = row["alone_mae"]["mean"] - row["mae"]
            row["gain_accuracy"] = row["gender_accuracy"] - row["alone_accuracy"]["mean"]
            rows.append(row)
            print(row)
        split = None
        if chosen:
            path = Path(tmp) / f"split_{cfgs[0].export_name}"
            save_hand_in(merge_files(files, cfgs[0].output_order, ages, genders), path)
            split = {"age_from": ages, "gender_from": genders, **score(path, "split"),
                     "age_members_alone_mae": mean_sd([alone[i - 1]["mae"] for i in ages]),
                     "gender_members_alone_accuracy": mean_sd([alone[i - 1]["gender_accuracy"] for i in genders])}
            print(split)
    name = "ensemble" + (f"-{args.tag}" if args.tag else "")
    result = {"task": cfgs[0].task, "runs": [str(r) for r in runs], "files": [str(f) for f in files],
              "holdout": str(args.holdout) if args.holdout else None,
              "validation_images": len(val.names), "alone": alone, "rows": rows,
              **({"split": split} if split else {})}
    print(f"wrote {save(name, result)}")
    about = (f"{cfgs[0].task}; {len(val.names)} held-out chips"
             + (f" (those of {args.holdout}; no member trained on them)" if args.holdout else "")
             + " read as cv2.imread / 255; members: " + ", ".join(str(f) for f in files))
    members = table(["member", "file", "init seed", "chose its epoch on these chips", "MAE alone", "accuracy alone"],
                    [[i + 1, a["file"], a["init_seed"], "yes" if a["chose_epoch_on_holdout"] else "no",
                      f"{a['mae']:.2f}", f"{a['gender_accuracy'] * 100:.1f} %"] for i, a in enumerate(alone)])
    merged = table(["members", "MAE", "gender accuracy", "its members alone: MAE", "alone: accuracy %", "MAE gain",
                    "accuracy gain", "file MB", "ms per image (batch 64, this machine)"],
                   [[r["members"], f"{r['mae']:.2f}", f"{r['gender_accuracy'] * 100:.1f} %",
                     plus_minus(r["alone_mae"]), plus_minus(r["alone_accuracy"], 100), f"{r['gain_mae']:+.2f}",
                     f"{r['gain_accuracy'] * 100:+.1f}", r["megabytes"], r["ms_per_image"]] for r in rows])
    blocks = [members, merged]
    if split is not None:
        blocks.append(table(
            ["age from members", "gender from members", "MAE", "gender accuracy", "its age members alone: MAE",
             "its gender members alone: accuracy %", "file MB", "ms per image (batch 64, this machine)"],
            [[", ".join(map(str, split["age_from"])), ", ".join(map(str, split["gender_from"])),
              f"{split['mae']:.2f}", f"{split['gender_accuracy'] * 100:.1f} %",
              plus_minus(split["age_members_alone_mae"]), plus_minus(split["gender_members_alone_accuracy"], 100),
              split["megabytes"], split["ms_per_image"]]]))
    report(name, [about], *blocks)


if __name__ == "__main__":
    main()
