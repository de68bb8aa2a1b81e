"""Evaluation: loading trained runs, sampling, and the metrics of each model
family. Trainers call these at the end of training; launch.evaluate and
launch.sample call them on a run's workdir."""
