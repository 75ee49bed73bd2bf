r"""Filtered link prediction: known-answer lists, realistic ranks, metrics, tables."""
from mmkgc_pyg.evaluation.filtering import FilterIndex
from mmkgc_pyg.evaluation.link_prediction import (LinkPredictionQueries, NonFiniteModelError,
                                                  evaluate_link_prediction, filtered_ranks,
                                                  missing_modality_mask)
from mmkgc_pyg.evaluation.metrics import direction_metrics, rank_metrics
from mmkgc_pyg.evaluation.report import metrics_table

__all__ = ["FilterIndex", "LinkPredictionQueries", "NonFiniteModelError",
           "evaluate_link_prediction", "filtered_ranks", "missing_modality_mask",
           "direction_metrics", "rank_metrics", "metrics_table"]
