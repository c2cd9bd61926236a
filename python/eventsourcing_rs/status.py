"""How far each follower of a system is behind its leaders."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional

from eventsourcing_rs.application import Application


@dataclass(frozen=True)
class EdgeLag:
    """One leader -> follower edge: the leader's last notification id, the
    follower's position in it, and the difference."""

    leader_name: str
    follower_name: str
    leader_last_id: int
    follower_position: int

    @property
    def lag(self) -> int:
        return max(0, self.leader_last_id - self.follower_position)

    def as_dict(self) -> Dict[str, Any]:
        return {**asdict(self), "lag": self.lag}


def edge_lags(edges: List[tuple[str, str]], apps: Mapping[str, Application]) -> List[EdgeLag]:
    """The lag of each edge, read from the applications' recorders, in the
    order of the edges (leader, then follower, by name)."""
    lags = []
    for leader_name, follower_name in sorted(edges):
        leader = apps[leader_name].recorder
        follower = apps[follower_name].recorder
        lags.append(
            EdgeLag(
                leader_name=leader_name,
                follower_name=follower_name,
                leader_last_id=leader.max_notification_id(),  # type: ignore[attr-defined]
                follower_position=follower.max_tracking_id(leader_name),  # type: ignore[attr-defined]
            )
        )
    return lags


def wait_caught_up(
    lags: Callable[[], List[EdgeLag]],
    timeout: Optional[float],
    errors: Callable[[], List[Exception]] = list,
    interval: float = 0.02,
) -> None:
    """Returns once no edge lags; raises the first of ``errors()`` as soon
    as there is one, or TimeoutError naming the lagging edges."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        found = errors()
        if found:
            raise found[0]
        behind = [e for e in lags() if e.lag]
        if not behind:
            return
        if deadline is not None and time.monotonic() > deadline:
            said = ", ".join(f"{e.follower_name} is {e.lag} behind {e.leader_name}" for e in behind)
            raise TimeoutError(f"The system did not catch up in {timeout} s: {said}")
        time.sleep(interval)
