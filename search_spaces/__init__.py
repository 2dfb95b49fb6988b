"""Study presets and search-space builders for the gansweep sweeps.

    from search_spaces import build_study
    space = build_study("demo", seeds=2, overrides={"steps": 500})
    tune.Tuner(trainable, param_space=space.param_space(),
               tune_config=tune.TuneConfig(search_alg=space.search_alg(), num_samples=space.num_samples))

`STUDIES` maps each study name to its builder; `build_study` validates every trial config before Ray starts.
"""

from search_spaces.space import DASearch, StudySpace, as_config, da_choices, possible_configs, sample_configs
from search_spaces.studies import (DEMO_SETTINGS, GPU_SETTINGS, STUDIES, arm_counts, build_study, paper_arms,
                                   ratio_arms)

__all__ = ["STUDIES", "StudySpace", "DASearch", "build_study", "arm_counts", "sample_configs", "possible_configs",
           "as_config", "da_choices", "paper_arms", "ratio_arms", "GPU_SETTINGS", "DEMO_SETTINGS"]
