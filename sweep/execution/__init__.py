"""The execution of a resolved plan: the driver (`driver`: the Tuner, its inputs and resume), the Ray Tune callback
that forwards trial events to MLflow (`callback`), and trials one after another in the driver (`inprocess`)."""
