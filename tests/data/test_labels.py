from hypothesis import given
from hypothesis import strategies as st

from facekit.data.labels import MAX_AGE, Label, Rejection, parse_name


def test_clean_name():
    assert parse_name("26_1_0_20170116174525125.jpg.chip.jpg") == Label(26, 1, 0, "20170116174525125")


def test_space_before_extension_is_repaired_and_noted():
    lab = parse_name("24_0_1_20170116220224657 .jpg.chip.jpg")
    assert isinstance(lab, Label) and (lab.age, lab.gender, lab.race) == (24, 0, 1)
    assert lab.notes == ("whitespace before the extension",)


def test_missing_dot_is_repaired_and_noted():
    lab = parse_name("55_0_0_20170116232725357jpg.chip.jpg")
    assert isinstance(lab, Label) and lab.datetime == "20170116232725357"
    assert "missing dot" in lab.notes[0]


def test_three_fields_never_guess_gender():
    rej = parse_name("39_1_20170116174525125.jpg.chip.jpg")
    assert isinstance(rej, Rejection) and rej.reason == "missing-field"
    assert "gender" in rej.detail


def test_long_and_short_timestamps_are_fine():
    for stamp in ("2017011617452512", "201701161745251253", "20170116174525125"):
        assert isinstance(parse_name(f"30_0_2_{stamp}.jpg.chip.jpg"), Label)


def test_plain_extensions():
    assert isinstance(parse_name("30_0_2_20170116174525125.jpg"), Label)
    assert isinstance(parse_name("30_0_2_20170116174525125.PNG"), Label)


def test_rejections_have_reasons():
    cases = {
        "notes.txt": "bad-extension",
        ".jpg": "bad-extension",
        "117_0_0_20170116174525125.jpg.chip.jpg": "out-of-range",
        "30_2_0_20170116174525125.jpg.chip.jpg": "out-of-range",
        "30_0_5_20170116174525125.jpg.chip.jpg": "out-of-range",
        "30__0_20170116174525125.jpg.chip.jpg": "empty-field",
        "3x_0_0_20170116174525125.jpg.chip.jpg": "not-a-number",
        "30_0_0_1_2.jpg": "field-count",
        "30_0_0_²³.jpg": "not-a-number",
    }
    for name, reason in cases.items():
        got = parse_name(name)
        assert isinstance(got, Rejection), name
        assert got.reason == reason, (name, got)
        assert got.detail


@given(st.text(max_size=60))
def test_random_strings_never_crash(name):
    got = parse_name(name)
    assert isinstance(got, Label | Rejection)
    if isinstance(got, Label):
        assert 0 <= got.age <= MAX_AGE and got.gender in (0, 1) and 0 <= got.race <= 4


@given(st.integers(0, MAX_AGE), st.integers(0, 1), st.integers(0, 4), st.from_regex(r"[0-9]{8,20}", fullmatch=True))
def test_valid_names_round_trip(age, gender, race, stamp):
    assert parse_name(f"{age}_{gender}_{race}_{stamp}.jpg.chip.jpg") == Label(age, gender, race, stamp)
