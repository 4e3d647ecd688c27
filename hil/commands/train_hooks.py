"""Where `hil train` reports to: the run store (metrics, checkpoints, live rows) and a progress bar.

Apart from hil/commands/train.py so that registering the command (`hil --help`) imports no torch.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from hil.diagnostics import summary_text, tolerance_warning
from hil.interface import SupportsDescribe
from hil.protocols.train import TrainHooks
from hil.runner import Runner
from hil.store import Store

console = Console(soft_wrap=True)


class StoreHooks(TrainHooks):
    """Persist a run to the store and show a progress bar with running accuracy and samples/s.

    Besides the checkpointed rows, batches go to the store every `live_every_s` (with a
    `progress` artifact: position, samples/s), so that `hil dashboard` shows them live.
    Those rows are replayed and replaced (same key) if a killed run resumes.
    """

    live_every_s = 0.5

    def __init__(self, store: Store, run_id: str, runner: Runner, epochs: int, quiet: bool,
                 xbar: object = None) -> None:
        super().__init__()
        self.store, self.run_id, self.runner, self.n_epochs = store, run_id, runner, epochs
        self._describe = xbar.describe if isinstance(xbar, SupportsDescribe) else None  # a board's station
        twin = getattr(xbar, "config", None)  # a twin's solver stops at tol_v unless it runs fixed sweeps
        self._tol_v = getattr(twin, "tol_v", None) if getattr(twin, "fixed_iterations", 1) is None else None
        self._live: list[dict[str, Any]] = []
        self._flushed = time.monotonic()
        self._position: dict[str, Any] = {}
        self.progress = Progress(
            TextColumn("epoch {task.fields[epoch]}/{task.fields[of]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("acc {task.fields[acc]:.3f}"),
            TextColumn("{task.fields[sps]:,.0f} samples/s"),
            TextColumn("{task.fields[spb]:.3g} s/batch"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=quiet,
        )
        self.task = None
        self._sps = 0.0

    def start(self, total_batches: int, done_batches: int, epoch: int) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
        self.progress.start()
        self.task = self.progress.add_task(
            "train", total=total_batches, completed=done_batches, epoch=epoch + 1, of=self.n_epochs, acc=0.0, sps=0.0,
            spb=0.0,
        )
        self._position = {"epoch": epoch, "epochs": self.n_epochs, "batches": total_batches, "batch": done_batches}

    def batch(self, row: dict[str, Any], running_acc: float, samples_per_s: float) -> None:
        self._sps = samples_per_s if not self._sps else 0.95 * self._sps + 0.05 * samples_per_s
        self.progress.update(self.task, advance=1, acc=running_acc, sps=self._sps,
                             spb=row["size"] / max(samples_per_s, 1e-12))
        self._live.append(row)
        self._position.update(batch=row["batch"] + 1, samples_per_s=self._sps, running_acc=running_acc)
        if time.monotonic() - self._flushed >= self.live_every_s:
            self._flush()

    def _flush(self) -> None:
        self.store.add_batches(self.run_id, self._live)
        self.store.put_artifact(self.run_id, "progress", "json", {**self._position, "t_s": time.time()})
        if self._describe is not None:
            self.store.put_artifact(self.run_id, "station", "json", self._describe())
        self._live, self._flushed = [], time.monotonic()

    def epoch(self, row: dict[str, Any]) -> None:
        super().epoch(row)
        self.store.add_batches(self.run_id, row["pending"])
        self.store.add_epoch(self.run_id, row)
        self._live = []  # all in `pending`, just written
        self._flush()
        self.progress.stop()
        console.print(
            f"epoch {row['epoch'] + 1}/{self.n_epochs}: train {row['train_acc']:.4f} "
            f"test {row['test_acc']:.4f} loss {row['test_loss']:.4f} "
            f"{row['samples_per_s']:,.0f}/s {row['wall_s']:.0f}s"
            + (f" | {summary_text(row['signal'])}" if row.get("signal") else ""),
            highlight=False,
        )
        warning = tolerance_warning(row.get("signal") or [], self._tol_v) if self._tol_v else None
        if warning:
            console.print(f"warning: {warning}", style="yellow", highlight=False)
            self._tol_v = None  # once per run

    def save(self, state: dict[str, Any]) -> None:
        self._flush()
        self.store.save_checkpoint(self.run_id, state)
        self.store.add_batches(self.run_id, state["tally"]["pending"])

    def load(self) -> dict[str, Any] | None:
        state = self.store.load_checkpoint(self.run_id)
        if state is not None:
            self.store.add_batches(self.run_id, state["tally"]["pending"])
            console.print(f"resumed at epoch {state['epoch'] + 1}, batch {state['batch']} "
                          f"(checkpoint {self.store.workspace / 'runs' / self.run_id / 'checkpoint.pt'})",
                          highlight=False)
        return state

    @property
    def stopping(self) -> bool:
        return self.runner.stopping

    def should_stop(self) -> None:
        self.runner.checkpoint()
