"""Compare models: clean accuracy, attack success and minimal distortion (I-FGSM, C&W),
CLEVER and ROBY estimates, certified radii, transfer attacks, the accuracy-vs-robustness
Pareto front and rank correlations (``verinet study``)."""

from verinet.study.analysis import pareto_front, rank_correlations, transfer_matrix
from verinet.study.metrics import ModelMetrics, StudyOptions, model_metrics
from verinet.study.run import StudyModel, StudyReport, run_study

__all__ = [
    "ModelMetrics", "StudyModel", "StudyOptions", "StudyReport", "model_metrics",
    "pareto_front", "rank_correlations", "run_study", "transfer_matrix",
]
