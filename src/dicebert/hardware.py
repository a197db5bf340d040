"""Which precision this machine runs fast: native bf16 on the CPU, or float32.

bf16 autocast on a CPU is only fast where the CPU has bf16 matrix instructions (AVX-512 BF16 or
AMX on x86, the BF16 extension on Arm). Elsewhere oneDNN emulates it: measured 0.046x the
float32 samples/s (22 times slower) on an AVX2 machine. The default trainer therefore picks
bf16-mixed only where it is native (:func:`auto_precision`): there it trained about 2x faster at the
same test macro-F1 within the seed spread (3 seeds x 2 corpora, docs/results/bf16_cpu).
``trainer=cpu_bf16`` and a typed ``trainer.precision=bf16-mixed`` are refused on a CPU that would
emulate bf16.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import torch

from dicebert.errors import ConfigError

log = logging.getLogger("dicebert")

#: /proc/cpuinfo flags of native bf16 arithmetic: x86 AVX-512 BF16 and AMX, Arm's BF16 extension.
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")
#: Set to 1 to run bf16 on a CPU without it anyway (e.g. to measure how slow it is).
ALLOW_SLOW_BF16 = "DICEBERT_ALLOW_SLOW_BF16"
FIX = "use trainer.precision=32-true (float32)"


@dataclass(frozen=True)
class CpuFeatures:
    """The CPU's model name, its instruction-set flags and torch's dispatch level."""

    model: str
    flags: frozenset[str]
    capability: str

    @property
    def bf16_flags(self) -> list[str]:
        return [flag for flag in BF16_FLAGS if flag in self.flags]

    @property
    def native_bf16(self) -> bool:
        return bool(self.bf16_flags)

    def describe(self) -> str:
        """One line for the run log and the benchmark: what was found and what it means."""
        found = ", ".join(self.bf16_flags) or "none of " + "/".join(BF16_FLAGS)
        verdict = "bf16 autocast is native" if self.native_bf16 else "bf16 would be emulated (slow): float32"
        model = self.model or "unknown"
        return f"CPU {model}; torch kernels {self.capability}; bf16 flags: {found} -> {verdict}"


def parse_cpuinfo(text: str) -> tuple[str, frozenset[str]]:
    """Model name and flags from ``/proc/cpuinfo`` text (x86 ``flags``, Arm ``Features``)."""
    model, flags = "", frozenset[str]()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = frozenset(value.split())
    return model, flags


def _torch_flags() -> frozenset[str]:
    """Where /proc/cpuinfo is missing (macOS, Windows): torch's own CPUID probes, if it has them."""
    probes = {"avx512_bf16": "_is_avx512_bf16_supported", "amx_bf16": "_is_amx_tile_supported"}
    found = set()
    for flag, probe in probes.items():
        check = getattr(torch.cpu, probe, None)
        if check is not None and check():
            found.add(flag)
    return frozenset(found)


@cache
def detect_cpu(cpuinfo: str | None = None) -> CpuFeatures:
    """This machine's CPU features (``cpuinfo``: the text of ``/proc/cpuinfo``, read if not given)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    model, flags = parse_cpuinfo(cpuinfo)
    if not flags:
        flags = _torch_flags()
    return CpuFeatures(model, flags, torch.backends.cpu.get_cpu_capability())


def checked_precision(precision: str, accelerator: str = "cpu", cpu: CpuFeatures | None = None) -> str:
    """``precision`` unchanged, unless it asks for bf16 on a CPU that would emulate it: then refuse.

    Used by ``conf/trainer/cpu_bf16.yaml`` (Hydra instantiates it into ``trainer.precision``).
    """
    precision = str(precision)
    if accelerator != "cpu" or "bf16" not in precision:
        return precision
    cpu = cpu or detect_cpu()
    if cpu.native_bf16 or os.environ.get(ALLOW_SLOW_BF16) == "1":
        return precision
    raise ConfigError(
        f"trainer.precision={precision} on a CPU without native bf16 ({cpu.model or 'unknown CPU'}: no "
        f"{'/'.join(BF16_FLAGS)} flag) runs about 20x slower than float32; {FIX}, "
        f"or set {ALLOW_SLOW_BF16}=1 to run it anyway"
    )


def auto_precision(accelerator: str = "cpu", cpu: CpuFeatures | None = None) -> str:
    """bf16-mixed where it is native (a bf16 GPU, or a CPU with bf16 instructions), else 32-true."""
    if accelerator in ("gpu", "cuda"):
        return "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "32-true"
    cpu = cpu or detect_cpu()
    return "bf16-mixed" if cpu.native_bf16 else "32-true"


def resolve_precision(trainer_cfg: Mapping[str, Any]) -> str:
    """The precision a run trains and tests in, as one string: the trainer config's choice made concrete.

    ``trainer=default`` asks :func:`auto_precision` (a node with a ``_target_``, instantiated here);
    a typed string such as ``trainer.precision=bf16-mixed`` is checked against the CPU. Resolved once,
    before any data is read, so the loggers' hyperparameters and the checkpoint carry what ran; the
    run log gets one line with the CPU's features and the choice.
    """
    from hydra.utils import instantiate  # config-only dependency: the rest of this module needs none

    precision = trainer_cfg.get("precision", "32-true")
    how = "typed"
    if isinstance(precision, Mapping):
        how = str(precision.get("_target_", "")).rpartition(".")[2] or "config"
        precision = instantiate(precision)
    chosen = checked_precision(str(precision), str(trainer_cfg.get("accelerator", "cpu")))
    log.info("%s; trainer.precision=%s (%s)", detect_cpu().describe(), chosen, how)  # one line per run
    return chosen
