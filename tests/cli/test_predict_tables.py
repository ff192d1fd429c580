"""predict's tables for people: a row a face in a photo, a row a track in a video, two columns a model."""

from __future__ import annotations

from types import SimpleNamespace as NS

from rich.console import Console

from facekit_cli.commands.predict import photo_table, track_table

MODELS = [NS(label="A"), NS(label="B")]


def rendered(table) -> str:
    console = Console(record=True, width=200)
    console.print(table)
    return console.export_text()


def test_photo_table_has_a_row_a_face_and_each_models_answer():
    faces = [NS(box=(1.2, 2.0, 50.4, 60.0), predictions={"A": {"age": 31.24, "gender": "male", "p_female": 0.1},
                                                           "B": {"age": 29.0, "gender": "female", "p_female": 0.8}}),
             NS(box=(70, 2, 120, 60), predictions={"A": {"age": 5.0, "gender": "female", "p_female": 0.55},
                                                   "B": {"age": 6.5, "gender": "female", "p_female": 0.9}})]
    table = photo_table([NS(path="/photos/group.jpg", faces=faces)], MODELS)
    assert table.row_count == 2
    text = rendered(table)
    assert "A: age" in text and "B: gender (p)" in text
    first, second = [line for line in text.splitlines() if "male" in line]
    assert "group.jpg" in first and "1,2,50,60" in first and "31.2" in first and "male (0.90)" in first
    assert "female (0.80)" in first
    assert "group.jpg" not in second and "female (0.55)" in second  # the file named once, on its first face


def test_track_table_has_a_row_a_track_with_its_spread_and_time():
    pooled = {"age": 40.0, "age_std": 2.26, "gender": "male", "p_female": 0.25}
    tracks = [NS(track=1, frames=12, first_time_s=0.0, last_time_s=3.94, predictions={"A": pooled, "B": pooled})]
    table = track_table([NS(path="clip.mp4", tracks=tracks), NS(path="empty.mp4", tracks=[])], MODELS)
    assert table.row_count == 1
    (row,) = [line for line in rendered(table).splitlines() if "clip.mp4" in line]
    assert "40.0 ± 2.3" in row and "male (0.75)" in row and "0.0-3.9" in row and " 12 " in row
    assert photo_table([], MODELS).row_count == 0
