"""Temperature and ASTCT support rows (hypotension, vasopressors, vasopressin, oxygen).

The rows reproduce the recorded grade under the ASTCT 2019 table (Lee DW et al., BBMT
2019;25:625): grade 2 hypotension without vasopressors or low-flow oxygen; grade 3 one
vasopressor *with or without vasopressin* — or vasopressin alone — or high-flow oxygen; grade 4
multiple vasopressors (vasopressin excluded) or positive pressure.
"""

from __future__ import annotations

import numpy as np

from features.synth.centres import Centres
from features.synth.course import grade_at
from features.synth.cytokines import _UNIT_CODE, _report, _Rows
from features.synth.params import SynthParams
from features.vocabulary import ANALYTES, OxygenDevice


def vital_rows(
    rng: np.random.Generator,
    idx: np.ndarray,
    pt: dict[str, np.ndarray],
    crs: dict[str, np.ndarray],
    tr: dict[str, np.ndarray],
    p: SynthParams,
    cen: Centres,
    rows: _Rows,
    sl: slice,
) -> None:
    """Temperature on a charting grid and at every grade change; ASTCT support rows during CRS."""
    n = len(idx)
    tm, gm = tr["tm"][sl], tr["gm"][sl]
    onset = tr["tm"][sl][:, 0]  # recorded (rounded) onset; NaN without CRS
    is_crs = tr["rmax"][sl] >= 1
    t_death = tr["t_death"][sl]
    every = p.mess.temp_every_h
    grid = np.r_[np.arange(-24.0, 240.0 + 1e-9, every), np.arange(264.0, 336.0 + 1e-9, 24.0)]
    local = np.repeat(np.arange(n), len(grid))
    t = np.tile(grid, n)
    chg = ~np.isnan(tm)
    cl, cj = np.nonzero(chg)
    local = np.r_[local, cl]
    t = np.r_[t, tm[cl, cj]]
    alive = np.isnan(t_death[local]) | (t < t_death[local])
    local, t = local[alive], t[alive]
    key = local.astype(np.int64) * 10_000_000 + np.round((t + 1000.0) * 10).astype(np.int64)
    _, first = np.unique(key, return_index=True)
    local, t = local[first], t[first]
    g = grade_at(tm, gm, local, t)
    res = tm[:, 7]
    in_crs_window = is_crs[local] & (t >= onset[local]) & ((t <= res[local]) | np.isnan(res[local]))
    waived = t >= np.nan_to_num(tr["t_waiver"][sl][local], nan=np.inf)
    m = len(t)
    # temperature (°C), fever ≥38.1 whenever the grade needs it
    fever = 38.1 + np.abs(rng.normal(0.5 + 0.3 * g, 0.5))
    afebrile_ok = (g >= 2) & waived & (rng.random(m) < 0.6)
    pre = is_crs[local] & (t < onset[local]) & (t >= onset[local] - 24.0)
    normal = np.where(pre, rng.normal(37.5, 0.25, m), rng.normal(36.9, 0.3, m))
    normal = np.clip(normal, 35.8, 37.8)
    temp = np.where((g >= 1) & ~afebrile_ok, np.minimum(fever, 41.5), normal)
    temp = np.where(afebrile_ok, np.clip(rng.normal(37.3, 0.3, m), 36.0, 37.8), temp)
    c = pt["c"][sl][local]
    tunit = np.array([_UNIT_CODE[x] for x in cen.units["temperature"]])[c]
    value, unit, qual = _report(rng, "temperature", temp, tunit, p, 1)
    rows.add("temperature", idx[local], t, value, unit, qual)
    # support rows: every charting time within CRS and at each change (zeros at resolution)
    s = in_crs_window
    ls, ts, gs = local[s], t[s], g[s]
    ms = len(ts)
    pat_u = rng.random((n, 3))  # per-patient driver of grade 2, 3, 4 (hypotension/hypoxia/both)
    drv = np.zeros(ms, dtype=np.int8)
    for lvl, cuts in ((2, (0.5, 0.8)), (3, (0.5, 0.75)), (4, (0.5, 0.8))):
        uu = pat_u[ls, lvl - 2]
        d = np.where(uu < cuts[0], 0, np.where(uu < cuts[1], 1, 2))
        drv = np.where(gs == lvl, d, drv)
    hypo = (drv == 0) | (drv == 2)
    hypox = (drv == 1) | (drv == 2)
    u = rng.random(ms)
    vaso = np.zeros(ms, dtype=np.int8)
    vaso = np.where((gs == 3) & hypo, 1, vaso)
    vaso = np.where((gs == 4) & hypo, np.where(u < 0.7, 2, 3), vaso)
    vaso = np.where((gs == 4) & ~hypo & (u < 0.5), 1, vaso)
    # vasopressin alone at grade 3 (counts as grade 3), or added to ≥2 vasopressors at grade 4
    tp = p.treatment
    pat_v = rng.random((n, 2))
    alone = (gs == 3) & hypo & (pat_v[ls, 0] < tp.p_vasopressin_alone)
    added = (gs == 4) & (vaso >= 2) & (pat_v[ls, 1] < tp.p_vasopressin_added)
    vaso = np.where(alone, 0, vaso)
    vasopressin = (alone | added).astype(float)
    hyp = ((gs == 2) & hypo) | (vaso >= 1) | alone | ((gs == 3) & ~hypo & (u < 0.3))
    dev = np.full(ms, int(OxygenDevice.ROOM_AIR), dtype=np.int8)
    u2 = rng.random(ms)
    dev = np.where(
        (gs == 2) & hypox,
        np.where(u2 < 0.2, int(OxygenDevice.BLOW_BY), int(OxygenDevice.NASAL_CANNULA)),
        dev,
    )
    dev = np.where(
        (gs == 3) & hypox,
        np.where(u2 < 0.3, int(OxygenDevice.FACEMASK), int(OxygenDevice.HIGH_FLOW_NASAL_CANNULA)),
        dev,
    )
    dev = np.where((gs == 3) & ~hypox & (u2 < 0.3), int(OxygenDevice.NASAL_CANNULA), dev)
    dev = np.where(
        (gs == 4) & hypox,
        np.where(
            u2 < 0.6,
            int(OxygenDevice.NONINVASIVE_POSITIVE_PRESSURE),
            int(OxygenDevice.MECHANICAL_VENTILATION),
        ),
        dev,
    )
    dev = np.where((gs == 4) & ~hypox & (u2 < 0.3), int(OxygenDevice.HIGH_FLOW_NASAL_CANNULA), dev)
    u3 = rng.random(ms)
    flow = np.where(
        dev == int(OxygenDevice.NASAL_CANNULA),
        np.round((0.5 + u3 * 4.5) * 2.0) / 2.0,  # 0.5–5 L/min: low flow
        np.round(8.0 + u3 * 32.0),  # high-flow nasal cannula
    )
    pid = idx[ls]
    zeros = np.zeros(ms, dtype=np.int8)
    for analyte, val in (
        ("hypotension", hyp.astype(float)),
        ("vasopressors", vaso.astype(float)),
        ("oxygen_device", dev.astype(float)),
    ):
        code = np.full(ms, _UNIT_CODE[ANALYTES[analyte].canonical_unit])
        rows.add(analyte, pid, ts, val, code, zeros)
    ever = np.zeros(n, dtype=bool)
    ever[ls[vasopressin > 0]] = True
    on_vp = ever[ls]  # every charted time of a patient who ever had vasopressin (0/1)
    rows.add(
        "vasopressin",
        pid[on_vp],
        ts[on_vp],
        vasopressin[on_vp],
        np.full(int(on_vp.sum()), _UNIT_CODE[ANALYTES["vasopressin"].canonical_unit]),
        zeros[on_vp],
    )
    has_flow = (dev == int(OxygenDevice.NASAL_CANNULA)) | (
        dev == int(OxygenDevice.HIGH_FLOW_NASAL_CANNULA)
    )
    rows.add(
        "oxygen_flow",
        pid[has_flow],
        ts[has_flow],
        flow[has_flow],
        np.full(int(has_flow.sum()), _UNIT_CODE["L/min"]),
        zeros[has_flow],
    )
