"""Ray Tune function trainables: the only code that calls tune.report / tune.get_checkpoint.

`trainables.arm.train_arm` is the trainable; `inputs` prepares what trials share, `files` names what a trial writes
and `session` stands between a trainable and Tune (or the in-process driver). The package imports none of them, so
a reader of `files` does not import Ray. Files are written and read through `gan.storage`.
"""
