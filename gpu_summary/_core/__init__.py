"""The ground floor: what every layer above shares and nothing here imports from above.

- ``arguments``: checks of the values callers pass (tags, steps, bins, bounds, image layouts).
- ``results``: the compact results backends hand back (``Pending``, ``TensorStats``,
  ``HistogramResult``, ``AnomalyResult``).
- ``ladder``: TensorBoard's fixed histogram bucket limits.
- ``anomaly``: the anomaly report's types and arithmetic (quantiles, heat-map grid).
"""
