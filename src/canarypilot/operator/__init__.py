"""The operator: CanaryRelease resources reconciled in the cluster by ``canarypilot operator``.

Each release runs the rollout package's ``RolloutController`` (the same state machine and
decision engine as ``canarypilot rollout``) with its checkpoint in the resource's status
(``StatusStore``), every write fenced by a Lease (``LeaderElector``).
"""

from canarypilot.operator.lease import LeaderElector, LeadershipLost
from canarypilot.operator.reconciler import Operator
from canarypilot.operator.resource import InvalidRelease, Release, parse_release
from canarypilot.operator.status import StatusStore

__all__ = [
    "InvalidRelease",
    "LeaderElector",
    "LeadershipLost",
    "Operator",
    "Release",
    "StatusStore",
    "parse_release",
]
