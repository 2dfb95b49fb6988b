"""Study presets and search spaces for the gansweep sweeps.

    from search_spaces import build_study
    study = build_study("demo", seeds=2, overrides={"steps": 500})
    tune.Tuner(trainable, param_space=study.param_space(),
               tune_config=tune.TuneConfig(search_alg=study.search_alg(), num_samples=study.num_samples))

`STUDIES` maps each study name to its builder; `build_study` validates every trial config before Ray starts;
`design_of(name)` says how a study's arms compare (arm fields, groups, baseline, primary hypotheses).
"""

from search_spaces.da import paper_arms, ratio_arms
from search_spaces.highres import highres_arms
from search_spaces.space import DASearch, Design, GridStudy, Hypothesis, OptunaStudy, da_choices
from search_spaces.studies import DESIGNS, STUDIES, arm_counts, build_study, design_of

__all__ = ["STUDIES", "DESIGNS", "Design", "Hypothesis", "GridStudy", "OptunaStudy", "DASearch", "build_study",
           "design_of", "arm_counts", "da_choices", "paper_arms", "ratio_arms", "highres_arms"]
