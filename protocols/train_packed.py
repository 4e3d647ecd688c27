"""Training protocol for T trials in lockstep on a packed twin: the schedule of `train`, T at a time.

The trials share the network shape and the schedule (epochs, batches, beta, eta,
N, evaluation) and differ in seed, read noise and data; each one draws its own
shuffles, initial conductances and noise exactly as `train` would alone, so its
epoch rows equal its solo run's (wall times aside, which are the pack's divided
by T).  Sweep trials keep no checkpoints, so neither does this loop.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
from torch import Tensor

from hil.adaptive import batch_reads
from hil.config import RunConfig
from hil.diagnostics import SignalMonitor
from hil.ep import ep_step_, initial_conductances
from hil.interface import Measurement, Nudge
from hil.protocols.train import N_CLASSES, TrainData, bias_rates, per_block

SCHEDULE = ("train", "eval", "network")


def schedule_key(cfg: RunConfig) -> str:
    """Trials with equal keys can share a pack: same schedule, shape and data sizes."""
    d = cfg.data
    return repr([cfg.model_dump(mode="json", include=set(SCHEDULE)), d.train_subset, d.test_subset, d.root])


def train_packed(xbar: Any, cfgs: list[RunConfig], datas: list[TrainData]) -> list[list[dict[str, Any]]]:
    """Train the T trials of `xbar` (a `PackedTwin`) per `cfgs`; one list of epoch rows per trial."""
    sizes = {(len(d.train), len(d.test)) for d in datas}
    if len({schedule_key(c) for c in cfgs}) != 1 or len(sizes) != 1 or len(cfgs) != xbar.trials:
        raise ValueError("train_packed: the trials of one pack need the same schedule, network and data sizes")
    if cfgs[0].train.momentum:
        raise ValueError("train_packed: momentum is not packed (train each such trial alone)")
    tc, depth = cfgs[0].train, xbar.topology.depth
    eta_w = per_block(tc.eta, depth)
    eta_b = bias_rates(cfgs[0], eta_w)
    gains = per_block(cfgs[0].network.init_gain, depth)
    inits = [initial_conductances(xbar.topology, gains, torch.Generator().manual_seed(c.seed)) for c in cfgs]
    xbar.program({k: torch.stack([g[k] for g in inits]) for k in inits[0]})
    params = xbar.read_conductances()
    n_train = len(datas[0].train)
    n_batches = math.ceil(n_train / tc.batch_size)
    if tc.max_batches:
        n_batches = min(n_batches, tc.max_batches)
    rows: list[list[dict[str, Any]]] = [[] for _ in cfgs]
    monitors = [SignalMonitor(depth, sigma) for sigma in xbar.read_sigma_v]
    for epoch in range(tc.epochs):
        lr_scale = tc.lr_decay**epoch
        orders = [torch.randperm(n_train, generator=torch.Generator().manual_seed(c.seed * 100_003 + epoch))
                  for c in cfgs]
        correct = [0] * len(cfgs)
        loss = [0.0] * len(cfgs)
        seen = 0
        reads = 0
        t_epoch = time.perf_counter()
        for b in range(n_batches):
            idx = [o[b * tc.batch_size : (b + 1) * tc.batch_size] for o in orders]
            labels = torch.stack([d.train.labels[i] for d, i in zip(datas, idx, strict=True)])
            x = torch.stack([d.inputs(d.train.images[i]) for d, i in zip(datas, idx, strict=True)])
            target = torch.nn.functional.one_hot(labels, N_CLASSES).to(torch.float32)
            free, s1, s2 = _step(xbar, params, x, target, tc, eta_w, eta_b, lr_scale)
            for t, monitor in enumerate(monitors):
                monitor.add(_trial(s1, t), _trial(s2, t))
            for t, (c, lo) in enumerate(zip(_correct(free, labels), _loss(free, target), strict=True)):
                correct[t] += c
                loss[t] += lo * labels.shape[1]
            seen += labels.shape[1]
            reads += batch_reads(tc.n_samples, tc.centered, labels.shape[1])
        train_wall = time.perf_counter() - t_epoch
        test_correct, test_loss = _evaluate(xbar, datas, cfgs[0])
        for t in range(len(cfgs)):
            rows[t].append({
                "epoch": epoch,
                "train_acc": correct[t] / max(seen, 1),
                "train_loss": loss[t] / max(seen, 1),
                "test_acc": test_correct[t] / len(datas[t].test),
                "test_loss": test_loss[t] / len(datas[t].test),
                "lr_scale": lr_scale,
                "wall_s": train_wall / len(cfgs),
                "samples_per_s": seen * len(cfgs) / max(train_wall, 1e-9),
                "reads": reads,
                "signal": monitors[t].summary(),
            })
            monitors[t].reset()
    return rows


def _step(xbar: Any, params: dict[str, Tensor], x: Tensor, target: Tensor, tc: Any,
          eta_w: list[float], eta_b: list[float], lr_scale: float) -> tuple[Measurement, Measurement, Measurement]:
    """`EPController.step` for the pack: phases, update, clamp, program; returns the free and nudged phases."""
    n = tc.n_samples
    free = xbar.measure(x, n_samples=n)
    if tc.centered:
        s1 = xbar.measure(x, nudge=Nudge(-tc.beta, target), n_samples=n)
        s2 = xbar.measure(x, nudge=Nudge(tc.beta, target), n_samples=n)
        dbeta = 2.0 * tc.beta
    else:
        s1, s2, dbeta = free, xbar.measure(x, nudge=Nudge(tc.beta, target), n_samples=n), tc.beta
    xl = x.to(params["G1"])  # the twin's device and dtype
    ep_step_(params, xl, s1.voltages, s2.voltages, dbeta, [e * lr_scale for e in eta_w], [e * lr_scale for e in eta_b])
    lo, hi = xbar.topology.g_min, xbar.topology.g_max
    for name in xbar.topology.blocks:
        params[name].clamp_(lo, None if math.isinf(hi) else hi)
    report = xbar.program(params)
    for name, achieved in report.achieved.items():
        if achieved is not params[name]:
            params[name] = achieved.clone()
    return free, s1, s2


def _trial(m: Measurement, t: int) -> Measurement:
    """Trial t's slice of a packed measurement."""
    return Measurement([v[t] for v in m.voltages], [s[t] for s in m.std], m.n_samples, m.timestamps_s, None, m.info)


def _evaluate(xbar: Any, datas: list[TrainData], cfg: RunConfig) -> tuple[list[int], list[float]]:
    """Per trial: correct predictions and summed loss over its test set, in `train`'s batches."""
    n_test, size = len(datas[0].test), cfg.eval.batch_size
    correct, loss = [0] * len(datas), [0.0] * len(datas)
    for i in range(0, n_test, size):
        x = torch.stack([d.inputs(d.test.images[i : i + size]) for d in datas])
        labels = torch.stack([d.test.labels[i : i + size] for d in datas])
        m = xbar.measure(x, n_samples=cfg.eval.n_samples or cfg.train.n_samples)
        target = torch.nn.functional.one_hot(labels, N_CLASSES).to(m.output)
        for t, (c, lo) in enumerate(zip(_correct(m, labels), _loss(m, target), strict=True)):
            correct[t] += c
            loss[t] += lo * labels.shape[1]
    return correct, loss


def _correct(m: Measurement, labels: Tensor) -> list[int]:
    return (m.output.argmax(dim=-1).cpu() == labels.cpu()).sum(dim=-1).tolist()


def _loss(m: Measurement, target: Tensor) -> list[float]:
    """Per trial, as `hil.ep._loss`: the batch mean of 1/2 |y - t|^2, computed on each trial's slice."""
    return [float(0.5 * ((m.output[t] - target[t].to(m.output)) ** 2).sum(dim=1).mean().item())
            for t in range(m.output.shape[0])]
