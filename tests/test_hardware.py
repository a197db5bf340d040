"""CPU bf16 detection and the precision guards built on it (src/dicebert/hardware.py, conf/trainer/)."""

from __future__ import annotations

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from dicebert import hardware
from dicebert.config import config_dir
from dicebert.errors import ConfigError
from dicebert.hardware import CpuFeatures, auto_precision, checked_precision, parse_cpuinfo

SAPPHIRE_RAPIDS = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu vme avx avx2 avx512f avx512bw avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8
processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu vme avx avx2 avx512f avx512bw avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8
"""
# This project's machine: AVX-512 but no bf16 instructions (avx512_vnni is int8, not bf16).
ICE_LAKE = """model name\t: Intel(R) Xeon(R) Processor @ 2.80GHz
flags\t\t: fpu avx avx2 avx512f avx512dq avx512bw avx512vl avx512_vnni avx512_bitalg
"""
AVX2_ONLY = "model name\t: AMD EPYC 7B12\nflags\t\t: fpu sse4_2 avx avx2 fma\n"
GRAVITON3 = "processor\t: 0\nBogoMIPS\t: 2100.00\nFeatures\t: fp asimd sve bf16 i8mm\nCPU part\t: 0xd40\n"


def fake_cpu(text: str) -> CpuFeatures:
    model, flags = parse_cpuinfo(text)
    return CpuFeatures(model, flags, "AVX512")


@pytest.mark.parametrize(
    ("text", "native", "found"),
    [
        (SAPPHIRE_RAPIDS, True, ["avx512_bf16", "amx_bf16"]),
        (ICE_LAKE, False, []),
        (AVX2_ONLY, False, []),
        (GRAVITON3, True, ["bf16"]),
    ],
)
def test_native_bf16_is_read_from_cpuinfo_flags(text: str, native: bool, found: list[str]) -> None:
    cpu = fake_cpu(text)
    assert cpu.native_bf16 is native
    assert cpu.bf16_flags == found
    assert ("bf16 autocast is native" in cpu.describe()) is native


def test_cpuinfo_model_name_and_first_flags_line() -> None:
    model, flags = parse_cpuinfo(SAPPHIRE_RAPIDS)
    assert model == "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz"
    assert {"avx512f", "amx_tile"} <= flags and "avx512_vnni" in flags


def test_without_cpuinfo_torch_probes_are_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    cpu = hardware.detect_cpu.__wrapped__("")  # an empty /proc/cpuinfo: macOS, Windows
    assert cpu.native_bf16 and cpu.bf16_flags == ["avx512_bf16"]
    assert cpu.capability == torch.backends.cpu.get_cpu_capability()


@pytest.mark.parametrize("text", [ICE_LAKE, AVX2_ONLY])
def test_bf16_on_a_cpu_without_it_is_refused_in_one_line(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(hardware.ALLOW_SLOW_BF16, raising=False)
    with pytest.raises(ConfigError) as refused:
        checked_precision("bf16-mixed", "cpu", fake_cpu(text))
    message = str(refused.value)
    assert "\n" not in message and "trainer.precision=32-true" in message and "20x slower" in message
    monkeypatch.setenv(hardware.ALLOW_SLOW_BF16, "1")  # the escape hatch, e.g. to measure it
    assert checked_precision("bf16-mixed", "cpu", fake_cpu(text)) == "bf16-mixed"


def test_bf16_passes_where_native_and_other_precisions_always() -> None:
    assert checked_precision("bf16-mixed", "cpu", fake_cpu(SAPPHIRE_RAPIDS)) == "bf16-mixed"
    assert checked_precision("32-true", "cpu", fake_cpu(AVX2_ONLY)) == "32-true"
    assert checked_precision("bf16-mixed", "gpu", fake_cpu(AVX2_ONLY)) == "bf16-mixed"


def test_auto_picks_bf16_only_where_native() -> None:
    assert auto_precision("cpu", fake_cpu(SAPPHIRE_RAPIDS)) == "bf16-mixed"
    assert auto_precision("cpu", fake_cpu(ICE_LAKE)) == "32-true"


def _trainer_precision(choice: str) -> str:
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=[f"trainer={choice}"])
    return instantiate(cfg.trainer.precision)


@pytest.mark.parametrize("trainer", ["default", "ddp_cpu"])
@pytest.mark.parametrize(("text", "expected"), [(SAPPHIRE_RAPIDS, "bf16-mixed"), (ICE_LAKE, "32-true")])
def test_default_trainer_is_bf16_only_where_the_cpu_has_it(
    trainer: str, text: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hardware, "detect_cpu", lambda: fake_cpu(text))
    assert _trainer_precision(trainer) == expected


@pytest.mark.parametrize(("bf16_gpu", "expected"), [(True, "bf16-mixed"), (False, "32-true")])
def test_gpu_trainers_use_bf16_where_the_gpu_supports_it(
    bf16_gpu: bool, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16_gpu)
    assert _trainer_precision("gpu") == expected
    assert _trainer_precision("ddp") == expected


def test_resolve_precision_makes_the_choice_one_checked_string(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="dicebert")
    monkeypatch.delenv(hardware.ALLOW_SLOW_BF16, raising=False)
    monkeypatch.setattr(hardware, "detect_cpu", lambda: fake_cpu(AVX2_ONLY))
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        default = compose("train").trainer
        typed = compose("train", overrides=["trainer.precision=bf16-mixed"]).trainer
        forced = compose("train", overrides=["trainer.precision=32-true"]).trainer
    assert hardware.resolve_precision(default) == "32-true"
    # One line in the run log: what the CPU has and what was chosen, and how.
    (line,) = [r.getMessage() for r in caplog.records if "trainer.precision=" in r.getMessage()]
    assert "bf16 would be emulated" in line and line.endswith("trainer.precision=32-true (auto_precision)")
    assert hardware.resolve_precision(forced) == "32-true"
    with pytest.raises(ConfigError, match=r"trainer\.precision=32-true"):
        hardware.resolve_precision(typed)
    monkeypatch.setattr(hardware, "detect_cpu", lambda: fake_cpu(SAPPHIRE_RAPIDS))
    assert hardware.resolve_precision(default) == "bf16-mixed"
    assert hardware.resolve_precision(forced) == "32-true"  # a typed choice wins over detection


def test_trainer_cpu_bf16_refuses_a_cpu_without_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(hardware.ALLOW_SLOW_BF16, raising=False)
    monkeypatch.setattr(hardware, "detect_cpu", lambda: fake_cpu(SAPPHIRE_RAPIDS))
    assert _trainer_precision("cpu_bf16") == "bf16-mixed"
    monkeypatch.setattr(hardware, "detect_cpu", lambda: fake_cpu(AVX2_ONLY))
    with pytest.raises(Exception) as refused:  # Hydra wraps it in an InstantiationException
        _trainer_precision("cpu_bf16")
    cause: BaseException | None = refused.value
    while cause is not None and not isinstance(cause, ConfigError):
        cause = cause.__cause__
    assert isinstance(cause, ConfigError) and "trainer.precision=32-true" in str(cause)


def test_a_plain_bf16_precision_override_is_refused_before_any_data_is_read(
    make_cfg, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`trainer.precision=bf16-mixed` on an AVX2-only CPU: one line naming the fix."""
    import dicebert.hardware
    import dicebert.train
    from dicebert.errors import ConfigError
    from dicebert.hardware import CpuFeatures

    avx2 = CpuFeatures("x", frozenset({"avx2"}), "AVX2")
    monkeypatch.setattr(dicebert.hardware, "detect_cpu", lambda *a, **k: avx2)
    monkeypatch.setattr(dicebert.train, "instantiate", lambda *a, **k: pytest.fail("data read first"))
    with pytest.raises(ConfigError, match=r"trainer\.precision=32-true"):
        dicebert.train.train(make_cfg("trainer.precision=bf16-mixed"))
