"""The one model-file loader: what a file is, and what is wrong with it, named with the file."""

import pytest

from facekit.model.files import BadModelFile, merge_files, model_file, open_model


def test_a_plain_two_output_model_opens_but_is_no_facekit_export(foreign):
    f = open_model(foreign["plain"])
    assert f.roles == ["age", "gender"] and f.how == "by output names" and not f.facekit_export
    with pytest.raises(BadModelFile, match="plain_B.keras: not a facekit export .*age_dist"):
        merge_files([foreign["plain"], foreign["plain"]])


@pytest.mark.parametrize(("which", "says"), [
    ("single", "single.keras: not an age and gender model"),
    ("lambda", "lambda_B.keras: Keras .* could not load it: .*Lambda"),
    ("zip", "renamed.keras: not a Keras 3 .keras file"),
    ("run", "exp: a folder, not a model file; the hand-in file in it is .*age_gender_B.keras"),
])
def test_each_unusable_file_is_named_with_its_reason(foreign, which, says):
    with pytest.raises(ValueError, match=says):
        open_model(foreign[which])


def test_a_missing_path_is_not_a_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.keras: no such model file"):
        model_file(tmp_path / "nowhere.keras")
