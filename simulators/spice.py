"""Cross-check of the twin's solver against ngspice: export a small DRN as a SPICE netlist, solve, compare.

The netlist is the circuit the DRN energy describes, in SI units:

- each input (layer 0, already doubled `[+x, -x]`) is a voltage source to ground;
- each conductance `G{l}[i, j] > 0` is a resistor `1 / (g g_unit)` ohms between
  node i of layer l-1 and node j of layer l (zero conductances are left out);
- each bias `b{l}[j]` is a current source of `b g_unit v_unit` amperes into its node;
- each hidden node has a Shockley diode to ground: anode at ground on the `>= 0`
  half of its layer (it conducts once the node goes below 0, so it holds the node
  near or above `-n V_t`), anode at the node on the `<= 0` half.  This is the
  physical form of the ideal diodes' clip, made soft.  Output nodes are linear;
- a nudge `beta > 0` ties each output through `1 / (beta g_unit)` ohms to a
  voltage source at its target.

The diode model has `IS = i_s_a` and an emission coefficient chosen so that
`N k T / q = n v_t_v` at ngspice's default temperature (27 C, TEMP = TNOM, so IS
is not rescaled).  `gmin` (the conductance ngspice puts across every junction)
is set to 1e-18 S and the tolerances tight so that ngspice's answer is exact to
well below the 1e-4 the comparison asks for.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch
from torch import Tensor

from hil.interface import Nudge, Topology

# ngspice's own constants (src/include/ngspice/const.h), so that N * kT/q is exactly n * v_t.
_BOLTZ = 1.38064852e-23
_CHARGE = 1.6021766208e-19
_T_NOM = 300.15


def _node(layer: int, j: int) -> str:
    return f"n{layer}_{j}"


def netlist(
    topology: Topology,
    g: dict[str, Tensor],
    inputs: Tensor,
    *,
    i_s_a: float = 1e-12,
    v_t_v: float = 0.025852,
    n: float = 1.0,
    nudge: Nudge | None = None,
    title: str = "hil-ep DRN",
) -> str:
    """The SPICE netlist of one network and one input vector (`inputs` of shape `(n_in,)`)."""
    x = inputs.detach().to(torch.float64).reshape(-1).cpu()
    if x.numel() != topology.n_in:
        raise ValueError(f"inputs must hold {topology.n_in} values, got {x.numel()}")
    gu, vu = topology.g_unit, topology.v_unit
    lines = [f"* {title}: layers {list(topology.layers)}, Shockley IS={i_s_a:g} A, n V_t={n * v_t_v:g} V"]
    for i, xi in enumerate(x.tolist()):
        lines.append(f"V_in{i} {_node(0, i)} 0 DC {xi * vu:.17g}")
    for l in range(1, topology.depth + 1):
        block = g[f"G{l}"].detach().to(torch.float64).cpu()
        for i, j in torch.nonzero(block > 0).tolist():
            lines.append(f"R{l}_{i}_{j} {_node(l - 1, i)} {_node(l, j)} {1.0 / (float(block[i, j]) * gu):.17g}")
        bias = g[f"b{l}"].detach().to(torch.float64).cpu()
        for j, bj in enumerate(bias.tolist()):
            if bj != 0.0:
                lines.append(f"I{l}_{j} 0 {_node(l, j)} DC {bj * gu * vu:.17g}")
        if l < topology.depth:
            half = topology.layers[l] // 2
            for j in range(topology.layers[l]):
                anode, cathode = ("0", _node(l, j)) if j < half else (_node(l, j), "0")
                lines.append(f"D{l}_{j} {anode} {cathode} DHIL")
    if nudge is not None and nudge.beta != 0.0:
        if nudge.beta < 0:
            raise ValueError("a SPICE netlist needs beta > 0 (a negative resistor has no physical nudge)")
        target = nudge.target.detach().to(torch.float64).reshape(-1).cpu()
        for k, tk in enumerate(target.tolist()):
            lines.append(f"V_t{k} t{k} 0 DC {tk * vu:.17g}")
            lines.append(f"R_t{k} {_node(topology.depth, k)} t{k} {1.0 / (nudge.beta * gu):.17g}")
    n_spice = n * v_t_v / (_BOLTZ * _T_NOM / _CHARGE)
    lines += [
        f".model DHIL D(IS={i_s_a:.17g} N={n_spice:.17g} RS=0 CJO=0)",
        ".options reltol=1e-10 abstol=1e-18 vntol=1e-13 gmin=1e-18 itl1=1000",
        ".control",
        "op",
        "set numdgt=16",
        "print all",
        "quit",
        ".endc",
        ".end",
    ]
    return "\n".join(lines) + "\n"


def run_ngspice(text: str, *, timeout_s: float = 60.0, executable: str = "ngspice") -> dict[str, float]:
    """Run `ngspice -b` on a netlist; returns every node voltage (V) by lower-case node name."""
    exe = shutil.which(executable)
    if exe is None:
        raise FileNotFoundError(f"{executable} not found on PATH (Debian: apt-get install ngspice)")
    with tempfile.TemporaryDirectory(prefix="hil-spice-") as tmp:
        path = Path(tmp) / "drn.cir"
        path.write_text(text)
        proc = subprocess.run([exe, "-b", str(path)], capture_output=True, text=True, timeout=timeout_s, cwd=tmp)
    out = proc.stdout + proc.stderr
    values = {
        m.group(1): float(m.group(2))
        for m in re.finditer(r"^\s*([A-Za-z0-9_]+)\s*=\s*([-+0-9.eE]+)\s*$", proc.stdout, re.M)
    }
    if proc.returncode != 0 or not values or re.search(r"^\s*Error", out, re.M | re.I):
        tail = "\n".join(out.strip().splitlines()[-10:])
        raise RuntimeError(f"ngspice failed (exit {proc.returncode}):\n{tail}")
    return values


def spice_equilibrium(
    topology: Topology,
    g: dict[str, Tensor],
    inputs: Tensor,
    *,
    i_s_a: float = 1e-12,
    v_t_v: float = 0.025852,
    n: float = 1.0,
    nudge: Nudge | None = None,
    timeout_s: float = 60.0,
) -> list[Tensor]:
    """Free-layer voltages (in `v_unit`, float64, one `(n_l,)` tensor per layer) as ngspice solves them."""
    text = netlist(topology, g, inputs, i_s_a=i_s_a, v_t_v=v_t_v, n=n, nudge=nudge)
    volts = run_ngspice(text, timeout_s=timeout_s)
    return [
        torch.tensor([volts[_node(l, j)] for j in range(topology.layers[l])], dtype=torch.float64) / topology.v_unit
        for l in range(1, topology.depth + 1)
    ]
