"""Figures of a run's results: any scalar against step with error bars, SLQ
spectral densities, loss slices and exact-Hessian eigenvalue spectra.

Every function takes what Run.results() returns (a DataFrame or a list of
dicts; the rows of several runs concatenated are fine), draws into `ax` when
given (e.g. from matplotlib.pyplot.subplots) or else into a new
matplotlib.figure.Figure, and returns the Figure. A new Figure is not
registered with pyplot: a notebook displays it, fig.savefig() writes it. Only
SUCCEEDED rows are drawn. A column, kind, run or step that is not in the
results raises ValueError naming those that are.

matplotlib (and numpy, which it needs) is imported when a function is called,
so that `import curvd` works without it.
"""

import math
import numbers

# The Gaussian grid spans the nodes widened by this many sigmas, as the
# server's own density grid does (core/estimators/slq.cc).
_GRID_PADDING_SIGMAS = 6.0


def _matplotlib():
    try:
        import matplotlib.figure
        import matplotlib.ticker
    except ImportError as error:
        raise ImportError("curvd.plot needs matplotlib: apt-get install python3-matplotlib "
                          "or pip install matplotlib") from error
    return matplotlib


def _numpy():
    _matplotlib()
    import numpy
    return numpy


def _figure(ax):
    """(figure, axes): `ax` and its figure, or a new Figure's single axes."""
    if ax is not None:
        return ax.figure, ax
    figure = _matplotlib().figure.Figure(figsize=(6.4, 4.2), layout="constrained")
    return figure, figure.add_subplot()


def _rows(results):
    """The rows of `results` (a DataFrame or a list of dicts) as dicts, pandas'
    NaN for a missing value read back as None."""
    if hasattr(results, "to_dict"):
        rows = results.to_dict("records")
        return [{k: None if isinstance(v, float) and math.isnan(v) else v
                 for k, v in row.items()} for row in rows]
    return list(results)


def _missing(value):
    return value is None or (isinstance(value, float) and math.isnan(value))


def _names(values):
    return ", ".join(str(v) for v in sorted(set(values), key=str)) or "none"


def _succeeded(rows, kind):
    """The SUCCEEDED rows of `kind`; ValueError when the results hold no such row."""
    chosen = [r for r in rows if r.get("kind") == kind and r.get("state") == "SUCCEEDED"]
    if not chosen:
        raise ValueError(f"the results hold no SUCCEEDED {kind} measurement; their kinds: "
                         f"{_names(r.get('kind') for r in rows if r.get('state') == 'SUCCEEDED')}")
    return chosen


def _runs_filter(rows, run):
    if run is None:
        return rows
    chosen = [r for r in rows if r.get("run") == run]
    if not chosen:
        raise ValueError(f"run '{run}' is not in these results; their runs: "
                         f"{_names(r.get('run') for r in rows)}")
    return chosen


def _by_step(rows, kind, steps, run):
    """[(label, row)] of `kind` at `steps` (all when None), one per run and step,
    the latest measurement where a step was measured several times."""
    rows = _runs_filter(_succeeded(rows, kind), run)
    latest = {}
    for row in sorted(rows, key=lambda r: str(r.get("create_time"))):
        latest[(row["run"], int(row["step"]))] = row
    available = sorted({step for _, step in latest})
    if steps is None:
        steps = available
    else:
        steps = [int(steps)] if isinstance(steps, numbers.Integral) else [int(s) for s in steps]
        absent = [s for s in steps if s not in available]
        if absent:
            raise ValueError(f"step(s) {', '.join(map(str, absent))} have no SUCCEEDED {kind} "
                             f"measurement; its steps: {_names(available)}")
    several_runs = len({r for r, _ in latest}) > 1
    chosen = []
    for (run_id, step), row in sorted(latest.items(), key=lambda item: (item[0][1], item[0][0])):
        if step in steps:
            chosen.append((f"{run_id} step {step}" if several_runs else f"step {step}", row))
    return chosen


def _default_error_column(column, columns):
    if column == "value":
        return "standard_error"
    for candidate in (column + "_standard_error",
                      column.removesuffix("_mean") + "_standard_error"):
        if candidate in columns:
            return candidate
    return None


def scalar(results, column="value", kinds=None, *, error_column=None, ax=None,
           marker="o", capsize=3):
    """`column` of each SUCCEEDED row against its step, one line per run and kind
    (overlaid, with a legend when there are several), with error bars of
    +- `error_column`.

    column: "value" (each kind's headline: sharpness, the trace, llc_mean, ...;
      curvd.HEADLINES) or any scalar column ("hessian_trace.probes",
      "llc.llc_mean", "loss", ...). kinds: a kind name or a list of them; None,
      every kind with the column set. error_column: the standard errors; None
      picks "standard_error" for "value", else COLUMN_standard_error, or that
      with COLUMN's "_mean" dropped, where the results have it
      (loss_expansion.noise_term_standard_error, llc.llc_standard_error for
      llc.llc_mean), else no bars; False, no bars. Rows whose standard error is missing get none; a series with
      none at all, no bars.
    Raises ValueError for a column, error column or kind not in the results.
    """
    rows = _rows(results)
    columns = set().union(*(r.keys() for r in rows)) if rows else set()
    if column not in columns:
        raise ValueError(f"column '{column}' is not in the results; their columns: "
                         f"{_names(c for c in columns if c != 'result')}")
    if error_column is None:
        error_column = _default_error_column(column, columns)
    elif error_column is not False and error_column not in columns:
        raise ValueError(f"error column '{error_column}' is not in the results")
    rows = [r for r in rows if r.get("state") == "SUCCEEDED" and not _missing(r.get(column))]
    present = {r["kind"] for r in rows}
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else list(kinds)
        absent = [k for k in kinds if k not in present]
        if absent:
            raise ValueError(f"no SUCCEEDED {', '.join(absent)} row has '{column}'; the kinds "
                             f"that have it: {_names(present)}")
        rows = [r for r in rows if r["kind"] in kinds]
    series = {}
    for row in sorted(rows, key=lambda r: r["step"]):
        series.setdefault((row["run"], row["kind"]), []).append(row)
    several_runs = len({run for run, _ in series}) > 1
    several_kinds = len({kind for _, kind in series}) > 1
    figure, ax = _figure(ax)
    for (run_id, kind), points in sorted(series.items()):
        errors = None
        if error_column and not all(_missing(p.get(error_column)) for p in points):
            errors = [0.0 if _missing(p.get(error_column)) else p[error_column] for p in points]
        label = " ".join(part for part, shown in ((run_id, several_runs), (kind, several_kinds))
                         if shown) or f"{run_id} {kind}"
        ax.errorbar([p["step"] for p in points], [p[column] for p in points], yerr=errors,
                    marker=marker, markersize=3, capsize=capsize if errors else 0, label=label)
    ax.set_xlabel("step")
    only_kind = next(iter(series))[1] if len(series) == 1 or not several_kinds else None
    ax.set_ylabel(only_kind if column == "value" and only_kind else column)
    if len(series) > 1:
        ax.legend()
    return figure


def broadened_density(result, sigma=None, sigma_fraction=None, grid=None, grid_points=1000):
    """(grid, density, sigma, rule) of SpectralDensityResult `result`'s SLQ runs
    broadened by a Gaussian of width sigma: the mean over runs of
    sum_j weights[j] N(x; nodes[j], sigma^2), which integrates to 1, as the
    server computes its own density.

    sigma > 0 is used as given; else sigma_fraction (> 0) times the spread of
    the nodes (max - min), the server's rule; with neither, the server's own
    sigma (result.sigma). grid: the points (a sequence), else `grid_points`
    points over the nodes' range widened by 6 sigma. `rule` says which sigma
    was used, with its number. Raises ValueError for a result without runs or a
    sigma that is not positive.
    """
    np = _numpy()
    if not result.runs:
        raise ValueError("this spectral density result has no SLQ runs to broaden")
    nodes = np.concatenate([np.asarray(run.nodes, dtype=float) for run in result.runs])
    weights = np.concatenate([np.asarray(run.weights, dtype=float) for run in result.runs])
    if sigma is not None:
        rule = f"sigma = {sigma:.3g}, as given"
    elif sigma_fraction is not None:
        spread = float(nodes.max() - nodes.min())
        magnitude = float(abs(nodes).max())
        sigma = sigma_fraction * (spread if spread > 0 else magnitude if magnitude > 0 else 1.0)
        rule = f"sigma = {sigma_fraction:g} x node spread = {sigma:.3g}"
    else:
        sigma = result.sigma
        rule = f"sigma = {sigma:.3g}, the server's ({result.sigma_rule})"
    if not sigma > 0:
        raise ValueError(f"the broadening sigma must be > 0, not {sigma}")
    if grid is None:
        pad = _GRID_PADDING_SIGMAS * sigma
        grid = np.linspace(nodes.min() - pad, nodes.max() + pad, grid_points)
    grid = np.asarray(grid, dtype=float)
    z = (grid[:, None] - nodes[None, :]) / sigma
    density = (np.exp(-0.5 * z * z) @ weights) / (sigma * math.sqrt(2 * math.pi) * len(result.runs))
    return grid, density, sigma, rule


def spectral_density(results, steps=None, *, run=None, sigma=None, sigma_fraction=None,
                     grid_points=1000, log=True, ax=None):
    """The Hessian's spectral density (SLQ, the spectral_density kind) at
    `steps` (an int or a list; None: every step measured), overlaid, on a
    log-scale density axis (`log`) as PyHessian draws it.

    The broadening is stated in the legend: with sigma and sigma_fraction both
    None, the server's density as stored (its sigma, result.sigma_rule); else
    the SLQ runs' nodes and weights broadened again here (broadened_density)
    with sigma, or sigma_fraction times each step's node spread, on one grid
    spanning every chosen step. run: one run's rows of several runs' results.
    Raises ValueError for a run or step without a SUCCEEDED spectral_density
    measurement.
    """
    np = _numpy()
    chosen = _by_step(_rows(results), "spectral_density", steps, run)
    server = sigma is None and sigma_fraction is None
    grid = None
    if not server:
        sigmas = [broadened_density(r["result"], sigma, sigma_fraction)[2] for _, r in chosen]
        nodes = [x for _, r in chosen for run_ in r["result"].runs for x in run_.nodes]
        pad = _GRID_PADDING_SIGMAS * max(sigmas)
        grid = np.linspace(min(nodes) - pad, max(nodes) + pad, grid_points)
    figure, ax = _figure(ax)
    peak = 0.0
    for label, row in chosen:
        result = row["result"]
        if server:
            x, y, used = np.asarray(result.grid), np.asarray(result.density), result.sigma
        else:
            x, y, used, _ = broadened_density(result, sigma, sigma_fraction, grid)
        peak = max(peak, float(y.max()))
        ax.plot(x, y, label=f"{label} (σ = {used:.2g})", linewidth=1)
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel("density (log scale)" if log else "density")
    if log:
        ax.set_yscale("log")
        # Fixed limits: autoscaling would span the Gaussians' tails, down to 1e-300.
        if peak > 0:
            ax.set_ylim(peak * 1e-8, peak * 5)
    ax.set_title("Gaussian-broadened SLQ density, " +
                 ("the server's σ" if server else
                  f"σ = {sigma:.2g}" if sigma is not None else
                  f"σ = {sigma_fraction:g} × node spread"), fontsize="medium")
    ax.legend(fontsize="small")
    return figure


def loss_slice(results, steps=None, *, run=None, ax=None):
    """The loss along each loss_slice measurement's direction, L(w + t v)
    against t, at `steps` (an int or a list; None: every step measured),
    overlaid; the legend gives each slice's v^T H v. Raises ValueError for a
    run or step without a SUCCEEDED loss_slice measurement."""
    chosen = _by_step(_rows(results), "loss_slice", steps, run)
    figure, ax = _figure(ax)
    for label, row in chosen:
        result = row["result"]
        ax.plot(list(result.t), list(result.loss), marker=".", markersize=3,
                label=f"{label} (vᵀHv = {result.direction_curvature:.3g})")
    ax.set_xlabel("t (along v)")
    ax.set_ylabel("loss L(w + t v)")
    ax.legend(fontsize="small")
    return figure


def eigenvalues(results, steps=None, *, run=None, ax=None, linthresh=None):
    """The exact Hessian's eigenvalues (the exact_hessian kind) at `steps` (an
    int or a list; None: every step measured), sorted descending against their
    index, overlaid, the legend giving each rank, on a symmetric log axis:
    linear within +-`linthresh` (None: about 1e-4 times the largest
    |eigenvalue| shown, rounded down to a power of ten). Raises ValueError for a run or step without a SUCCEEDED
    exact_hessian measurement."""
    chosen = _by_step(_rows(results), "exact_hessian", steps, run)
    figure, ax = _figure(ax)
    largest = 0.0
    for label, row in chosen:
        values = sorted(row["result"].eigenvalues, reverse=True)
        largest = max([largest] + [abs(v) for v in values])
        ax.plot(range(1, len(values) + 1), values, marker=".", markersize=2, linewidth=0.8,
                label=f"{label} (rank {row['result'].rank})")
    if linthresh is None:
        # A power of ten, so that the ticks around 0 fall at +-linthresh.
        linthresh = 10.0 ** math.floor(math.log10(1e-4 * largest)) if largest > 0 else 1.0
    # The linear part is two decades tall: 0 to +-linthresh spaced as a decade,
    # and ticks at 0 and the decades beyond it only (symlog's own ticks crowd 0).
    ax.set_yscale("symlog", linthresh=linthresh, linscale=2)
    low = math.floor(math.log10(linthresh))
    decades = [10.0 ** k for k in range(low, max(low, math.ceil(math.log10(largest or 1))) + 1)]
    ticks = sorted([0.0] + decades + [-d for d in decades])
    ax.yaxis.set_major_locator(_matplotlib().ticker.FixedLocator(ticks))
    ax.set_xlabel("index (descending)")
    ax.set_ylabel("eigenvalue")
    ax.legend(fontsize="small")
    return figure


def eigenvalue_histogram(results, steps=None, *, run=None, bins=50, log=True, ax=None):
    """Histograms of the exact Hessian's eigenvalues at `steps` (an int or a
    list; None: every step measured), overlaid as outlines over shared `bins`
    (a count or edges), counts on a log axis when `log`. Raises ValueError
    for a run or step without a SUCCEEDED exact_hessian measurement."""
    np = _numpy()
    chosen = _by_step(_rows(results), "exact_hessian", steps, run)
    everything = np.concatenate([np.asarray(r["result"].eigenvalues) for _, r in chosen])
    edges = np.histogram_bin_edges(everything, bins=bins)
    figure, ax = _figure(ax)
    for label, row in chosen:
        ax.hist(list(row["result"].eigenvalues), bins=edges, histtype="step", log=log,
                label=label)
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel("count")
    ax.legend(fontsize="small")
    return figure
