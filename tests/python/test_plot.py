"""curvd.plot's figures, rendered to PNG with the Agg backend from the results of
a real curvd server: what each draws is checked against the results' numbers."""

import io
import unittest

import matplotlib
import matplotlib.figure

matplotlib.use("Agg")

import numpy  # noqa: E402

try:
    import pandas
except ImportError:
    pandas = None

from curvd import plot  # noqa: E402
from curvd_server import CurvdServerTest, mlp, regression_data, train  # noqa: E402

KINDS = ["sharpness", {"hessian_trace": {"max_probes": 20}},
         {"spectral_density": {"runs": 3, "steps": 20, "grid_points": 200}},
         {"loss_slice": {"points": 11}}, "exact_hessian"]
STEPS = [0, 10, 20]
PARAMETERS = 8 * 16 + 16 + 16 * 2 + 2  # mlp()'s


def png(figure):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=40)
    return buffer.getvalue()


def row(rows, run, kind, step):
    return next(r for r in rows if (r["run"], r["kind"], r["step"]) == (run, kind, step))


class PlotTest(CurvdServerTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        tables = []
        for run_id, lr, measure in (("plot-a", 0.05, KINDS), ("plot-b", 0.2, ["hessian_trace"])):
            run = cls.client.run(run_id, mlp(), shard=regression_data(), loss="mse",
                                 measure=measure, every=10, policy="block")
            train(run, mlp(), regression_data(), steps=21, lr=lr)
            assert run.close(timeout=120)
            tables.append(run.results(frame=False))
        cls.rows = tables[0] + tables[1]
        # A DataFrame where pandas is installed (the frames' NaNs must read as None).
        cls.frame = pandas.DataFrame(cls.rows) if pandas is not None else cls.rows

    def test_scalar_error_bars_are_the_standard_errors(self):
        figure = plot.scalar(self.frame, kinds="hessian_trace")
        self.assertTrue(png(figure).startswith(b"\x89PNG"))
        ax = figure.axes[0]
        self.assertEqual([t.get_text() for t in ax.get_legend().get_texts()],
                         ["plot-a", "plot-b"])
        for container, run in zip(ax.containers, ("plot-a", "plot-b")):
            data_line, _, (bars,) = container.lines
            self.assertEqual(list(data_line.get_xdata()), STEPS)
            for step, segment in zip(STEPS, bars.get_segments()):
                expected = row(self.rows, run, "hessian_trace", step)
                (_, low), (_, high) = segment
                self.assertGreater(expected["standard_error"], 0)
                self.assertAlmostEqual((high - low) / 2, expected["standard_error"])
                self.assertAlmostEqual((high + low) / 2, expected["value"])

    def test_scalar_overlays_kinds_and_reads_lists_of_dicts(self):
        a = [r for r in self.rows if r["run"] == "plot-a"]
        figure = plot.scalar(a, kinds=["sharpness", "hessian_trace"])
        png(figure)
        ax = figure.axes[0]
        self.assertEqual([t.get_text() for t in ax.get_legend().get_texts()],
                         ["hessian_trace", "sharpness"])
        sharpness = ax.containers[1].lines[0]
        self.assertEqual(list(sharpness.get_ydata()),
                         [row(a, "plot-a", "sharpness", s)["value"] for s in STEPS])
        self.assertFalse(ax.containers[1].has_yerr, "sharpness has no standard error")
        # Any scalar column; a figure of one series has no legend.
        figure = plot.scalar(a, "hessian_trace.probes", kinds="hessian_trace")
        ax = figure.axes[0]
        self.assertIsNone(ax.get_legend())
        self.assertEqual(list(ax.get_lines()[0].get_ydata()),
                         [row(a, "plot-a", "hessian_trace", s)["hessian_trace.probes"]
                          for s in STEPS])
        self.assertEqual(ax.get_ylabel(), "hessian_trace.probes")

    def test_unknown_column_kind_step_and_run_raise_value_errors(self):
        with self.assertRaisesRegex(ValueError, "column 'nope' is not in the results"):
            plot.scalar(self.frame, "nope")
        with self.assertRaisesRegex(ValueError, "llc.*the kinds that have it: exact_hessian"):
            plot.scalar(self.frame, kinds="llc")
        with self.assertRaisesRegex(ValueError, r"step\(s\) 5 have no SUCCEEDED loss_slice.*0, 10, 20"):
            plot.loss_slice(self.frame, steps=[0, 5])
        with self.assertRaisesRegex(ValueError, "no SUCCEEDED exact_hessian"):
            plot.eigenvalues([r for r in self.rows if r["run"] == "plot-b"])
        with self.assertRaisesRegex(ValueError, "run 'plot-z' is not in these results"):
            plot.spectral_density(self.frame, run="plot-z")

    def test_spectral_density_as_stored_and_broadened_again(self):
        figure = plot.spectral_density(self.frame, steps=[0, 20])
        png(figure)
        lines = figure.axes[0].get_lines()
        self.assertEqual(len(lines), 2)
        for line, step in zip(lines, (0, 20)):
            result = row(self.rows, "plot-a", "spectral_density", step)["result"]
            numpy.testing.assert_allclose(line.get_ydata(), result.density)
            self.assertIn(f"step {step} (σ = {result.sigma:.2g})", line.get_label())
        self.assertEqual(figure.axes[0].get_yscale(), "log")

        # The server's sigma on the server's grid gives back the server's density.
        result = row(self.rows, "plot-a", "spectral_density", 10)["result"]
        grid, density, sigma, rule = plot.broadened_density(result, grid=list(result.grid))
        self.assertEqual(sigma, result.sigma)
        self.assertIn("the server's", rule)
        numpy.testing.assert_allclose(density, result.density, rtol=1e-9, atol=1e-12)

        wide = 0.05
        figure = plot.spectral_density(self.frame, steps=10, sigma=wide, log=False)
        (line,) = figure.axes[0].get_lines()
        self.assertIn(f"σ = {wide:.2g}", line.get_label())
        self.assertAlmostEqual(numpy.trapz(line.get_ydata(), line.get_xdata()), 1.0, places=3)
        _, density, _, _ = plot.broadened_density(result, sigma=wide, grid=line.get_xdata())
        numpy.testing.assert_allclose(line.get_ydata(), density)
        with self.assertRaisesRegex(ValueError, "sigma must be > 0"):
            plot.broadened_density(result, sigma=-1.0)

    def test_loss_slice_draws_each_step_s_line(self):
        figure = plot.loss_slice(self.frame, steps=[10, 20])
        png(figure)
        lines = figure.axes[0].get_lines()
        self.assertEqual(len(lines), 2)
        result = row(self.rows, "plot-a", "loss_slice", 20)["result"]
        self.assertEqual(list(lines[1].get_xdata()), list(result.t))
        self.assertEqual(list(lines[1].get_ydata()), list(result.loss))
        self.assertEqual(len(result.t), 11)

    def test_exact_hessian_sorted_eigenvalues_and_histogram(self):
        figure = plot.eigenvalues(self.frame)
        png(figure)
        lines = figure.axes[0].get_lines()
        self.assertEqual(len(lines), len(STEPS))
        result = row(self.rows, "plot-a", "exact_hessian", 0)["result"]
        self.assertEqual(list(lines[0].get_ydata()), sorted(result.eigenvalues, reverse=True))
        self.assertEqual(len(lines[0].get_ydata()), PARAMETERS)
        self.assertIn(f"rank {result.rank}", lines[0].get_label())

        figure = plot.eigenvalue_histogram(self.frame, steps=[0, 20], bins=30)
        png(figure)
        ax = figure.axes[0]
        self.assertEqual([t.get_text() for t in ax.get_legend().get_texts()],
                         ["step 0", "step 20"])
        everything = numpy.concatenate([row(self.rows, "plot-a", "exact_hessian", s)[
            "result"].eigenvalues for s in (0, 20)])
        counts, _ = numpy.histogram(result.eigenvalues,
                                    bins=numpy.histogram_bin_edges(everything, bins=30))
        self.assertEqual(len(ax.patches), 2)
        heights = ax.patches[0].get_xy()[:, 1]  # the outline's vertices: the bins' counts
        self.assertEqual(heights.max(), counts.max())
        self.assertEqual(len(ax.patches[0].get_xy()), 2 * (30 + 1))  # 30 bins

    def test_draws_into_a_given_axes(self):
        figure = matplotlib.figure.Figure()
        left, right = figure.subplots(1, 2)
        self.assertIs(plot.loss_slice(self.frame, 0, ax=right), figure)
        self.assertEqual((len(left.get_lines()), len(right.get_lines())), (0, 1))


if __name__ == "__main__":
    unittest.main()
