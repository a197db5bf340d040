"""Two-stage classifier re-training (cRT; Kang et al., ICLR 2020) on a finished run's frozen encoder.

Stage one is the run itself (encoder and head trained on the batches its sampler drew). Stage two
keeps the encoder fixed, takes its pooled features of the training split, and trains a *fresh*
linear head with class-balanced sampling (every class drawn equally often), keeping the step with
the best validation macro-F1. Representation and classifier are judged apart: when cRT recovers a
tail class, the encoder had learned it and only the head was biased.

Why not a second Lightning ``fit``: the features fit in memory (N × hidden), so the head trains on
tensors in about a second; a Trainer would run the encoder again on every step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from sklearn.metrics import f1_score
from torch import Tensor, nn

from dicebert.data.datamodule import TextClassificationDataModule
from dicebert.data.sampling import SAMPLERS, build_sampler
from dicebert.errors import ConfigError
from dicebert.metrics import macro_f1

if TYPE_CHECKING:
    from dicebert.reporting.finish import FinishedRun


@torch.no_grad()
def pooled_features(net: nn.Module, loader: torch.utils.data.DataLoader) -> tuple[Tensor, Tensor]:
    """The classifier's pooled features (float32, on CPU) and labels of every batch, in order."""
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    features, labels = [], []
    try:
        for batch in loader:
            features.append(
                net.features(  # type: ignore[operator]  # BertClassifier.features
                    input_ids=batch["input_ids"].to(device),
                    attention_mask=batch["attention_mask"].to(device),
                    token_type_ids=batch["token_type_ids"].to(device) if "token_type_ids" in batch else None,
                )
                .float()
                .cpu()
            )
            labels.append(batch["labels"].cpu())
    finally:
        net.train(was_training)
    return torch.cat(features), torch.cat(labels)


def _macro_f1(head: nn.Linear, x: Tensor, y: Tensor, num_classes: int) -> float:
    with torch.no_grad():
        predictions = head(x).argmax(1)
    return macro_f1(y.numpy(), predictions.numpy(), num_classes)


class ClassifierRetraining(Callback):
    """cRT's stage two: a fresh linear head on frozen features, class-balanced batches, best val step.

    A callback (``crt=balanced`` puts it in ``callbacks.crt``) that runs when the run finishes, on
    the tested weights' encoder, and adds the ``crt/*`` keys to ``metrics.json``.

    ``steps`` optimizer steps of ``batch_size`` features drawn by ``sampler`` (default ``inverse``:
    probability ∝ 1/n_c, every class equally often; ``none`` is instance-balanced re-training, the
    paper's control), AdamW at ``lr``; validation macro-F1 every ``eval_every`` steps picks the
    head that is kept (ties: the earlier step). Values: ``conf/crt/balanced.yaml``, the one source.
    """

    def __init__(
        self, *, steps: int, batch_size: int, lr: float, eval_every: int, sampler: str, seed: int
    ) -> None:
        if steps < 1 or batch_size < 1 or eval_every < 1 or lr <= 0:
            raise ConfigError(
                f"callbacks.crt: steps, batch_size and eval_every must be >= 1 and lr > 0; got "
                f"steps={steps} batch_size={batch_size} eval_every={eval_every} lr={lr}"
            )
        if sampler not in SAMPLERS:
            raise ConfigError(f"callbacks.crt.sampler={sampler!r} is not one of {', '.join(SAMPLERS)}")
        self.steps, self.batch_size, self.lr, self.eval_every = steps, batch_size, lr, eval_every
        self.sampler, self.seed = sampler, seed

    def fit(
        self, train: tuple[Tensor, Tensor], val: tuple[Tensor, Tensor], num_classes: int
    ) -> tuple[nn.Linear, int]:
        """The re-trained head and the step it was taken at."""
        x, y = train
        counts = torch.bincount(y, minlength=num_classes)
        if (counts == 0).any():
            raise ValueError(f"crt needs every class in the training split; counts {counts.tolist()}")
        torch.manual_seed(self.seed)
        head = nn.Linear(x.shape[1], num_classes)
        optimizer = torch.optim.AdamW(head.parameters(), lr=self.lr)
        sampler = build_sampler(y.tolist(), counts.tolist(), self.sampler, self.seed)
        draws: list[int] = []
        best = (_macro_f1(head, *val, num_classes), 0, {k: v.clone() for k, v in head.state_dict().items()})
        for step in range(1, self.steps + 1):
            while len(draws) < self.batch_size:
                draws.extend(sampler)  # a fresh epoch of draws
            index, draws = torch.as_tensor(draws[: self.batch_size]), draws[self.batch_size :]
            loss = nn.functional.cross_entropy(head(x[index]), y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if step % self.eval_every == 0 or step == self.steps:
                score = _macro_f1(head, *val, num_classes)
                if score > best[0]:
                    best = (score, step, {k: v.clone() for k, v in head.state_dict().items()})
        head.load_state_dict(best[2])
        return head, best[1]

    def __call__(self, net: nn.Module, datamodule: TextClassificationDataModule) -> dict[str, float]:
        """Features of train/val/test from ``net``'s encoder, stage two, and the ``crt/*`` test keys."""
        class_names = datamodule.class_names
        split = {s: pooled_features(net, datamodule.ordered_dataloader(s)) for s in ("train", "val", "test")}
        head, step = self.fit(split["train"], split["val"], len(class_names))
        x, y = split["test"]
        with torch.no_grad():
            predictions = head(x).argmax(1).numpy()
        indices = list(range(len(class_names)))
        per_class = f1_score(y.numpy(), predictions, labels=indices, average=None, zero_division=0)
        out = {
            "crt/test/macro_f1": float(np.mean(per_class)),
            "crt/test/accuracy": float((predictions == y.numpy()).mean()),
            "crt/step": float(step),
        }
        out.update({f"crt/test/f1/{name}": float(per_class[i]) for i, name in enumerate(class_names)})
        return out

    def metrics_record(self, run: FinishedRun) -> dict[str, float]:
        """Stage two on the tested run (single process; a baseline has no encoder to re-train on)."""
        if run.module is None or not run.single_process:
            return {}
        return self(run.module.net, run.datamodule)
