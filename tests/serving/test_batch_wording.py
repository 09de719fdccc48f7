"""The batch's sentences written once per distinct sentence equal ``summary_text`` per row.

Runs over the in-process champions of ``tests.serving.fast_models`` (every task and landmark,
each with thresholds, band evidence and an interval table), not the registered store: the
sentences depend on those three only, and building the store costs the fast suite about 100 s.
"""

from __future__ import annotations

import numpy as np

from serving import wording
from serving.bands import band_index, band_names
from serving.loading import Snapshot
from serving.results import _summaries


def test_summaries_equal_the_sentence_of_every_row(fast_snapshot: Snapshot) -> None:
    edges = [0.0, 0.004999, 0.005, 0.005001, 0.015, 0.025, 0.125, 0.5, 0.985, 0.995, 0.999, 1.0]
    p = np.concatenate([edges, np.random.default_rng(3).random(3000) ** 3])
    checked = 0
    for model in fast_snapshot.models.values():
        assert model.interval is not None
        bands = band_index(p, model.thresholds)
        names = band_names(len(model.thresholds))
        lows, highs = model.interval.at(p) if model.interval is not None else (None, None)
        got = _summaries(model, p, lows, highs, bands, names, "the horizon")
        want = [
            wording.summary_text(
                float(p[r]),
                None if lows is None else float(lows[r]),
                None if highs is None else float(highs[r]),
                names[int(bands[r])],
                model.bands[int(bands[r])] if int(bands[r]) < len(model.bands) else None,
                "the horizon",
            )
            for r in range(len(p))
        ]
        assert got == want
        checked += 1
    assert checked
