"""gansweep's driver: CLI, Tuner construction, MLflow wiring, resume and reports."""
