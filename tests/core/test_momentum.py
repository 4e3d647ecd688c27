"""Momentum of the EP update: heavy ball on the EP gradient estimate, held and checkpointed by the controller."""

from __future__ import annotations

import torch

from hil.config import load_config
from hil.ep import EPController, ep_gradient
from hil.interface import Nudge, Topology
from hil.protocols.train import TrainHooks, prepare_data, topology_for, train
from hil.registry import open_crossbar
from hil.simulators.twin import TwinConfig, TwinCrossbar


def _twin(topo: Topology) -> TwinCrossbar:
    g = torch.Generator().manual_seed(5)
    xbar = TwinCrossbar(topo, TwinConfig(dtype="float64"), seed=0)
    xbar.program({"G1": torch.rand(12, 8, generator=g, dtype=torch.float64) * 0.4,
                  "G2": torch.rand(8, 10, generator=g, dtype=torch.float64) * 0.4,
                  "b1": torch.zeros(8, dtype=torch.float64), "b2": torch.zeros(10, dtype=torch.float64)})
    return xbar


def test_two_steps_follow_v_equals_mu_v_plus_grad():
    topo = Topology((12, 8, 10))
    g = torch.Generator().manual_seed(6)
    batches = [(torch.rand(4, 12, generator=g, dtype=torch.float64), torch.randint(0, 10, (4,), generator=g))
               for _ in range(2)]
    mu, eta, beta = 0.9, 0.05, 0.5
    ctl = EPController(_twin(topo), beta=beta, centered=True, n_samples=1, eta_w=[eta, eta], eta_b=[eta, eta],
                       momentum=mu)
    ref = _twin(topo)
    params = ref.read_conductances()
    vel = {k: torch.zeros_like(v) for k, v in params.items()}
    for x, y in batches:
        t = torch.nn.functional.one_hot(y, 10).double()
        ctl.step(x, t, y)
        ref.measure(x)  # the free phase, as the controller reads it (the solver warm-starts from it)
        s1 = ref.measure(x, nudge=Nudge(-beta, t))
        s2 = ref.measure(x, nudge=Nudge(beta, t))
        grad = ep_gradient(x, s1.voltages, s2.voltages, 2 * beta, topo)
        for k in params:
            vel[k] = mu * vel[k] + grad[k]
            params[k] = params[k] - eta * vel[k]
            if k.startswith("G"):
                params[k] = params[k].clamp(topo.g_min, topo.g_max)
        ref.program({k: v.clone() for k, v in params.items()})
    got = ctl.crossbar.read_conductances()
    for k in params:
        torch.testing.assert_close(got[k], params[k], rtol=1e-10, atol=1e-12)
    assert set(ctl.velocity) == set(params)


class _Keep(TrainHooks):
    def __init__(self) -> None:
        super().__init__()
        self.saved: list[dict] = []

    def save(self, state: dict) -> None:
        self.saved.append(state)


def test_velocity_is_checkpointed_and_default_runs_keep_none():
    base = ["train.epochs=1", "data.train_subset=64", "data.test_subset=32", "network.hidden=[8]",
            "train.batch_size=8", "train.checkpoint_every=4"]
    for momentum, expect in ((0.0, False), (0.9, True)):
        cfg, _ = load_config("quickstart", [*base, f"train.momentum={momentum}"])
        data = prepare_data(cfg)
        hooks = _Keep()
        xbar = open_crossbar(topology_for(cfg, 784), cfg.crossbar, seed=cfg.seed, source="test")
        train(xbar, cfg, data, hooks)
        assert bool(hooks.saved[0]["velocity"]) is expect
        if expect:
            assert hooks.saved[0]["velocity"]["G1"].abs().sum() > 0
