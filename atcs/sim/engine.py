"""The engine's controller as the closed loop runs it, with the envelope's verdicts counted.

The service's :class:`~atcs.control.supervisor.Supervisor` decides in the closed loop
exactly as in the engine; its controller is wrapped in :class:`CountedController`, which
passes each proposal through :func:`controllers.enforce` (the plan then leaves on whole
seconds, as every plan of the engine does) and counts the envelope's verdicts on the
controller's own proposals. The supervisor's own envelope then accepts the plan as is.
"""

from __future__ import annotations

from collections import Counter

from atcs.types import TimingPlan
from controllers import ControlInput, Controller, enforce
from controllers.spec import IntersectionSpec


class CountedController:
    """A controller whose plans are already safe, with the envelope's verdicts counted.

    Wraps ``inner``: its proposal goes through :func:`controllers.enforce` against the
    running plan; ``outcomes`` counts the verdicts (accepted, repaired, refused).
    """

    def __init__(self, inner: Controller) -> None:
        self._inner = inner
        self.name = inner.name
        self.outcomes: Counter[str] = Counter()

    def propose(self, spec: IntersectionSpec, inputs: ControlInput) -> TimingPlan:
        """Return the inner controller's plan as the envelope lets it leave."""
        proposed = self._inner.propose(spec, inputs)
        decision = enforce(spec, proposed, inputs.running, inputs.now)
        self.outcomes[decision.outcome.value] += 1
        return decision.plan
