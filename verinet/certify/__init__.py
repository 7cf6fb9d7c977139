"""Per-sample robustness sandwiches: certified lower bound, attack upper bound."""

#: How ``certify --radius`` closes a bracket (:class:`verinet.certify.engine.CertifyOptions`;
#: here so that the command line lists them without importing the engines).
RADIUS_SEARCHES = ("tree", "bisection")
