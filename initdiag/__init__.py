"""initdiag: diagnose neural-network weight initialization before training.

    >>> import initdiag
    >>> result = initdiag.probe("784,256,256,10", act="relu", init="he")
    >>> result.summary.verdict, round(result.summary.forward_gain, 1)

The names below are imported on first use, so ``import initdiag`` (and the CLI's start-up) stays light.
"""

from ._version import __version__

_LAZY = {
    "probe": "analysis.probe",
    "run_probe": "analysis.probe",
    "ProbeResult": "analysis.result",
    "LayerStats": "analysis.result",
    "Summary": "analysis.result",
    "StackSpec": "network.stack",
    "LayerSpec": "network.kinds",
    "ProbeSettings": "network.settings",
    "Thresholds": "network.settings",
    "parse_layers": "network.shorthand",
    "get_initializer": "core.init_parser",
    "compute_fans": "core.initializers",
    "get_activation": "core.activations",
    "calculate_gain": "core.activations",
    "compare": "analysis.compare",
    "sweep": "analysis.compare",
    "run_check": "analysis.check",
    "train": "analysis.train",
    "TrainSettings": "analysis.train",
    "InitdiagError": "errors",
    "to_json": "render.probe",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'initdiag' has no attribute {name!r}")
