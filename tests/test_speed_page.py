"""The results page's Speed section: every speed results file's figures, read from the file."""

import json
from pathlib import Path

import pytest

from benchmarks.common import RESULTS, ROOT, cpu_model
from benchmarks.speed_page import HEADLINES, benchmark_of, speed_block
from facekit.utils.machine import this_cpu

SPEED_FILES = sorted(p for p in RESULTS.glob("*.json") if benchmark_of(p.stem))


def test_every_speed_benchmark_has_a_headline():
    modules = {p.stem for p in (ROOT / "benchmarks").glob("*.py")}
    speed = {m for m in modules if m.endswith("_speed")} | {"prep", "pipeline", "scale"}
    assert speed <= set(HEADLINES), f"no headline for {sorted(speed - set(HEADLINES))}"
    assert benchmark_of("train_speed-cpu-jax") == "train_speed" and benchmark_of("accuracy-ema") is None


@pytest.mark.parametrize("path", SPEED_FILES, ids=lambda p: p.stem)
def test_each_speed_headline_quotes_its_own_file(path: Path):
    data = json.loads(path.read_text())
    line = HEADLINES[benchmark_of(path.stem)](data)
    numbers = {  # one figure each benchmark's readers look for first
        "prep": lambda d: f"{d['parallel_images_per_s']} images/s",
        "pipeline": lambda d: f"{d['rows'][0]['images_per_s']:,.0f} images/s",
        "predict_speed": lambda d: f"{d['model_B']['single_image']['median_ms_per_face']} ms a face",
        "train_speed": lambda d: f"{next(iter(d['rows'].values()))['train_images_per_second']} training images/s",
        "fit_speed": lambda d: f"x{d['speedup']}",
        "scale": lambda d: f"after adding 1 % {d['prep_after_adding_1_percent']['seconds']:,.0f} s",
        "serve_speed": lambda d: f"{d['http'][0]['requests_per_second']} requests/s",
        "video_speed": lambda d: f"{d['rows'][0]['frames_per_second']} frames/s",
    }
    assert numbers[benchmark_of(path.stem)](data) in line
    row = next(r for r in speed_block({path.stem: data}) if path.stem in r)
    assert data["commit"] in row and data["date"][:10] in row


def test_machine_names_the_instruction_sets_that_change_cpu_timings(tmp_path: Path):
    info = tmp_path / "cpuinfo"
    info.write_text("model name\t: AMD EPYC\nflags\t\t: fpu sse avx2 avx512f avx512bw\n")
    assert cpu_model(info) == "AMD EPYC, AVX-512"
    info.write_text("model name\t: AMD EPYC\nflags\t\t: fpu sse avx2\n")
    assert cpu_model(info) == "AMD EPYC"
    info.write_text("model name\t: Intel(R) Xeon(R)\nflags\t\t: avx512f amx_tile amx_bf16\n")
    assert cpu_model(info) == "Intel(R) Xeon(R), AVX-512, AMX"
    info.write_text("processor\t: 0\nFeatures\t: fp asimd\n")  # an ARM CPU lists no x86 flags: no claim either way
    assert this_cpu(info).avx512 is None and cpu_model(info) == "unknown"


def test_files_from_before_the_label_name_avx512_where_their_machine_had_it():
    from benchmarks.speed_page import AVX512_BEFORE_LABEL, machine

    old = {"machine": "vm x86_64, 2 cores, AMD EPYC"}
    assert set(AVX512_BEFORE_LABEL) <= {p.stem for p in SPEED_FILES}  # no stale name
    assert machine("train_speed-a-residual", old) == "vm x86_64, 2 cores, AMD EPYC, AVX-512"
    assert machine("train_speed-cpu-tensorflow", old) == old["machine"]
    new = {"machine": "vm x86_64, 2 cores, AMD EPYC, AVX-512"}
    assert machine("fit_speed", new) == new["machine"]  # labelled once
