"""Pure train/eval/sample steps and their state pytrees (no IO, no jit)."""
