"""The resumable checkpoints of a fit skip its last step, whose checkpoint the round would delete at once."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

from lottery_style.engine.checkpointing import ResumeCheckpoint


class _Tiny(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(1))

    def training_step(self, batch: torch.Tensor, index: int) -> torch.Tensor:
        return (self.weight * batch).pow(2).mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_no_checkpoint_at_the_last_step_and_the_others_resume(tmp_path: Path) -> None:
    saved: list[int] = []

    class Recording(ResumeCheckpoint):
        def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
            saved.append(trainer.global_step)
            super()._save_checkpoint(trainer, filepath)

    def fit(resume: Path | None = None) -> L.Trainer:
        checkpoint = Recording(dirpath=tmp_path, save_last=True, save_top_k=0, every_n_train_steps=2)
        trainer = L.Trainer(max_steps=6, callbacks=[checkpoint], logger=False, enable_progress_bar=False,
                            enable_model_summary=False, accelerator="cpu", default_root_dir=tmp_path)  # fmt: skip
        trainer.fit(_Tiny(), DataLoader(torch.arange(1.0, 9.0), batch_size=1), ckpt_path=resume)
        return trainer

    fit()
    assert saved == [2, 4]  # not 6: the fit's last step
    saved.clear()
    assert fit(resume=tmp_path / "last.ckpt").global_step == 6 and saved == []
