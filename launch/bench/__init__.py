"""gensynth's benchmarks, run through `python -m launch.benchmark --bench=...`:
train steps against PyTorch twins (train_steps.py, torch_models.py),
synthesis ops against OpenCV (synth.py) and checkpoint memory
(checkpoint.py). They call only gensynth's public names."""
