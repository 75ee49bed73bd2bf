"""Hyperparameter search with Optuna: the search space, and studies that resume, are
shared by several processes and prune at validation points (``python -m
mmkgc_pyg.tune``; the ``[tune]`` extra)."""
from mmkgc_pyg.hpo.space import DEFAULT_SEARCH_SPACE, Parameter, SearchSpace
from mmkgc_pyg.hpo.study import (STUDY_NAME, best_trial, fail_dead_trials, finished_trials,
                                 open_study, pruning_callback, shown_url, trial_trackers,
                                 trials_table, write_plots)

__all__ = ["DEFAULT_SEARCH_SPACE", "Parameter", "SearchSpace", "STUDY_NAME", "open_study",
           "shown_url", "fail_dead_trials", "pruning_callback",
           "trial_trackers", "finished_trials", "best_trial",
           "trials_table", "write_plots"]
