"""Per-sample robustness sandwiches: certified lower bound, attack upper bound."""
