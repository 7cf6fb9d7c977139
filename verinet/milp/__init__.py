"""MILP and LP encodings of networks, their solvers and sound LP bounds."""

#: The MILP solvers (:func:`verinet.milp.backend.make_backend`); here so that the command
#: line lists them without importing the solvers.
MILP_BACKENDS = ("highs", "pulp")
