"""What a short ``verinet verify`` pays at start: the portfolio, its options and the dense
chain view import neither the graph engines nor the MILP modules (scipy.sparse), and a
HiGHS instance prints nothing on stdout (its banner would come before the verdict)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _fresh(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (this one has every module loaded already)."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=ROOT)


def test_the_portfolio_and_the_chain_view_import_no_graph_engine() -> None:
    code = ("import sys\n"
            "import numpy as np\n"
            "from verinet.ir import ops as O\n"
            "from verinet.ir.graph import Network, Node\n"
            "from verinet.verify.portfolio import VerifyOptions, verify\n"
            "from verinet.verify.views import ModelViews\n"
            "nodes = (Node('fc', O.Linear(np.eye(3), np.zeros(3)), ('x',), (1, 3)),\n"
            "         Node('r', O.Relu(), ('fc',), (1, 3)),\n"
            "         Node('out', O.Linear(np.ones((2, 3)), np.zeros(2)), ('r',), (1, 2)))\n"
            "views = ModelViews(Network('x', (1, 3), nodes, 'out'))\n"
            "assert views.chain is not None and VerifyOptions().graph_bab.batch > 0\n"
            "heavy = ('scipy.sparse', 'verinet.bounds.graph', 'verinet.verify.graph_bab.search',\n"
            "         'verinet.verify.relu_bab', 'verinet.milp.backend')\n"
            "print(sorted(m for m in heavy if m in sys.modules))\n")
    out = _fresh(code)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_the_graph_view_still_loads_its_engine_on_first_use() -> None:
    code = ("import numpy as np\n"
            "from verinet.ir import ops as O\n"
            "from verinet.ir.graph import Network, Node\n"
            "from verinet.verify.graph_bab import graph_bab\n"
            "from verinet.verify.views import ModelViews\n"
            "nodes = (Node('fc', O.Linear(np.eye(2), np.zeros(2)), ('x',), (1, 2)),\n"
            "         Node('r', O.Relu(), ('fc',), (1, 2)))\n"
            "views = ModelViews(Network('x', (1, 2), nodes, 'r'))\n"
            "print(type(views.graph).__name__, views.unsplittable(), graph_bab.__name__)\n")
    assert _fresh(code).stdout.strip() == "GraphModel [] graph_bab"


def test_a_new_highs_instance_writes_nothing_on_stdout() -> None:
    code = ("import numpy as np\n"
            "from verinet.milp.highs import new_highs\n"
            "from verinet.verify.star.lp import PolyLp\n"
            "new_highs(); PolyLp(np.zeros(2), np.ones(2))\n")
    assert _fresh(code).stdout == ""
