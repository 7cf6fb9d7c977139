"""Attack-independent robustness estimates: CLEVER (an extreme-value estimate of the
minimal adversarial distortion, never a bound) and ROBY (feature-space statistics of a
labelled set)."""
