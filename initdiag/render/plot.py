"""``train --save-plot``: loss curves and decision boundaries as a PNG, with matplotlib (an optional
extra, imported only here: ``pip install 'initdiag[plot]'``)."""

from __future__ import annotations

import numpy as np

from ..errors import InitdiagError


def save_train_plot(report, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    from ..analysis.batched import Network, predict
    from ..analysis.train import CLASSES
    from ..core.activations import get_activation

    results = report.results
    fig, axes = plt.subplots(1, len(results) + 1, figsize=(3.2 * (len(results) + 1), 3.2))
    curve_ax = axes[0]
    for result in results:
        curve_ax.plot(result.curve_iters, np.mean(result.loss_curve, axis=0), label=result.label)
    curve_ax.set_yscale("log")
    curve_ax.set_xlabel("step")
    curve_ax.set_ylabel("loss")
    curve_ax.legend(fontsize=7)
    data = report.data[0]
    classes = CLASSES[report.settings.dataset]
    X = np.vstack([data.X_train, data.X_test])
    (x0, y0), (x1, y1) = X.min(axis=0) - 0.1, X.max(axis=0) + 0.1
    xs, ys = np.meshgrid(np.linspace(x0, x1, 200), np.linspace(y0, y1, 200))
    grid = np.stack([xs.ravel(), ys.ravel()])[None]
    for ax, result in zip(axes[1:], results, strict=True):
        model = result.models[0]
        net = Network([W.T[None] for W, _ in model], [b[None, :, None] for _, b in model],
                      get_activation(report.settings.act))  # fmt: skip
        with np.errstate(all="ignore"):
            cells = predict(net.forward(grid)[0], classes)[0].reshape(xs.shape)
        ax.contourf(xs, ys, cells, alpha=0.4, levels=np.arange(classes + 1) - 0.5, cmap="coolwarm")
        ax.scatter(data.X_train[:, 0], data.X_train[:, 1], c=data.y_train, s=6, cmap="coolwarm")
        ax.set_title(f"{result.label}: {np.mean(result.test_accuracy):.0%} test", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    save_figure(fig, path)


def save_figure(fig, path: str) -> None:
    """Lay out *fig*, write it to *path* as a PNG and close it; a file that cannot be written is one
    error line."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    try:
        fig.savefig(path, dpi=100)
    except OSError as exc:
        raise InitdiagError(f"cannot write --save-plot '{path}': {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
