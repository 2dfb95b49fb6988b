"""Ray Tune function trainables: the only code that calls tune.report / tune.get_checkpoint."""

from trainables.arm import train_arm

__all__ = ["train_arm"]
