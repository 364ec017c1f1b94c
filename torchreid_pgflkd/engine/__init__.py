"""Training: the engine, optimisation, checkpoints, distributed helpers, the identity sampler."""

from torchreid_pgflkd.engine.engine import NonFiniteLossError, PGFLKDEngine
from torchreid_pgflkd.engine.optim import build_optimizer, build_scheduler

__all__ = ["NonFiniteLossError", "PGFLKDEngine", "build_optimizer", "build_scheduler"]
