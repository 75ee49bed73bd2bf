r"""Filtered link prediction: known-answer lists, ranks (optimistic, pessimistic,
realistic), metrics, tables."""
from mmkgc_pyg.evaluation.filtering import FilterIndex
from mmkgc_pyg.evaluation.link_prediction import (LinkPredictionQueries,
                                                  evaluate_link_prediction, evaluate_splits,
                                                  link_prediction_ranks, missing_modality_mask)
from mmkgc_pyg.evaluation.metrics import direction_metrics, rank_metrics
from mmkgc_pyg.evaluation.ranking_model import RankingModel
from mmkgc_pyg.evaluation.ranks import Ranks
from mmkgc_pyg.evaluation.report import metrics_table

__all__ = ["FilterIndex", "LinkPredictionQueries", "RankingModel", "Ranks",
           "evaluate_link_prediction", "evaluate_splits",
           "link_prediction_ranks", "missing_modality_mask", "direction_metrics",
           "rank_metrics", "metrics_table"]
