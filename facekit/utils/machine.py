"""This machine's CPU: its name and the instruction sets that decide how fast it trains.

On the 2-core machines facekit is measured on, a CPU with AVX-512 trained Model A two to three times as fast as
one without (docs/results.md, Speed: the ``train_speed`` rows), and both report the same model name, so the
name alone does not say which CPU a timing came from. ``facekit doctor`` and every benchmark's results file
describe the CPU with this module.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

PROC_CPUINFO = Path("/proc/cpuinfo")
LABELS = (("avx512f", "AVX-512"), ("amx_tile", "AMX"))  # the flags that move training speed, as people name them


@dataclass(frozen=True)
class Cpu:
    name: str
    flags: frozenset[str] | None  # None where the system lists no x86 flags (no /proc/cpuinfo, an ARM CPU)

    @property
    def avx512(self) -> bool | None:
        return None if self.flags is None else "avx512f" in self.flags

    def describe(self) -> str:
        extras = [label for flag, label in LABELS if self.flags and flag in self.flags]
        return ", ".join([self.name, *extras])


def this_cpu(cpuinfo: Path = PROC_CPUINFO) -> Cpu:
    try:
        lines = cpuinfo.read_text().splitlines()
    except OSError:
        return Cpu(platform.processor() or "unknown", None)
    name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown")
    flags = next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), None)
    return Cpu(name, None if flags is None else frozenset(flags))  # no "flags" line: not x86 (ARM lists Features)
