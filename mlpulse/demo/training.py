"""Training runs for the demo: real Keras ``fit`` calls instrumented with the
:class:`collector.training.MetricsCallback`.

``history_runs`` replays healthy runs into the past (the callback's clock maps each step to a
time in the history window), so the detectors have normal training curves to learn from;
``diverging_run`` is the incident: its learning rate grows each step until the loss explodes
and turns NaN (``TerminateOnNaN`` then stops it, as a real job would).
"""

from __future__ import annotations

import threading


from mlpulse.demo.models import N_CLASSES, N_FEATURES, synthetic_data


def _model(seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((N_FEATURES,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(N_CLASSES, activation="softmax")])
    return model


class StepClock:
    """A clock for the callback: step i of a replayed run happens at ``start + i * step``."""

    def __init__(self, start_ns: int, step_ns: int):
        self.t, self.step = start_ns - step_ns, step_ns

    def __call__(self) -> int:
        self.t += self.step
        return self.t


def fit_run(sink, run: str, *, steps: int, lr, seed: int, clock=None, extra_callbacks=()) -> None:
    import keras

    from collector.training import MetricsCallback

    model = _model(seed)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=lr), loss="sparse_categorical_crossentropy")
    x, y = synthetic_data(steps * 32, seed)
    kw = {"clock": clock} if clock is not None else {}
    cb = MetricsCallback(sink, run=run, model="classifier-trainer", every_n_steps=1, batch_size=32, **kw)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False, callbacks=[cb, *extra_callbacks])


def history_runs(sink, start_ns: int, end_ns: int, step_ns: int, runs: int = 2, seed: int = 0) -> None:
    """Healthy runs laid end to end over [start, end)."""
    span = (end_ns - start_ns) // runs
    for i in range(runs):
        steps = max(50, span // step_ns)
        fit_run(sink, f"history-{i}", steps=int(steps), lr=0.05, seed=seed + i,
                clock=StepClock(start_ns + i * span, step_ns))


class DivergingRun:
    """The incident: SGD whose learning rate is multiplied by ``growth`` every step."""

    def __init__(self, sink, run: str = "run-diverge", steps: int = 600, growth: float = 1.035,
                 step_pause_s: float = 0.05, seed: int = 7):
        self.sink, self.run, self.steps, self.growth = sink, run, steps, growth
        self.pause, self.seed = step_pause_s, seed
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def start(self) -> "DivergingRun":
        self.thread = threading.Thread(target=self._go, name="demo-training", daemon=True)
        self.thread.start()
        return self

    def _go(self) -> None:
        import keras

        growth, pause = self.growth, self.pause

        class Pace(keras.callbacks.Callback):  # real step time: a run takes time per step
            def on_train_batch_end(self, batch, logs=None):
                threading.Event().wait(pause)

        schedule = keras.optimizers.schedules.ExponentialDecay(0.05, decay_steps=1, decay_rate=growth)
        try:
            fit_run(self.sink, self.run, steps=self.steps, lr=schedule, seed=self.seed,
                    extra_callbacks=(Pace(), keras.callbacks.TerminateOnNaN()))
        except BaseException as e:  # recorded for the demo's summary
            self.error = e

    def join(self, timeout: float | None = None) -> None:
        if self.thread:
            self.thread.join(timeout)
