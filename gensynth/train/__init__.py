"""Trainers: optimizers, sharding, checkpointing, reporting, train_and_evaluate."""
