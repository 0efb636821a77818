"""What a batch of users comes back as: one `UserOutcome` per user, in a `BatchResult`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from langchain_fermi.types import Cost, FermiResult

__all__ = ["BatchResult", "Status", "UserOutcome"]

Status = Literal["done", "skipped", "failed"]


class UserOutcome(BaseModel):
    """What happened to one user of a batch."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    user_id: str
    status: Status
    error: str | None = Field(None, description="`Type: message` of the failure.")
    seconds: float = 0.0
    cost: Cost = Field(default_factory=Cost)
    best_score: float | None = None
    result: FermiResult | None = Field(None, description="Kept when ``keep_results``.")


class BatchResult(BaseModel):
    """Every user's outcome, in input order, and the batch's wall time.

    Example:
        >>> batch = optimize_users(users, target, optimizer, concurrency=16)
        >>> batch.failed  # [] when every user finished
    """

    outcomes: list[UserOutcome] = Field(default_factory=list)
    wall_seconds: float = 0.0

    def _with(self, status: Status) -> list[UserOutcome]:
        return [o for o in self.outcomes if o.status == status]

    @property
    def done(self) -> list[UserOutcome]:
        """Users optimized by this run."""
        return self._with("done")

    @property
    def skipped(self) -> list[UserOutcome]:
        """Users already finished before this run (nothing recomputed)."""
        return self._with("skipped")

    @property
    def failed(self) -> list[UserOutcome]:
        """Users whose optimization raised; their checkpoints keep the last completed step."""
        return self._with("failed")

    @property
    def cost(self) -> Cost:
        """Calls and tokens of this run, all users together."""
        total = Cost()
        for o in self.outcomes:
            total = total + o.cost
        return total

    @property
    def users_per_minute(self) -> float:
        """Users optimized by this run per minute of wall time."""
        return 60.0 * len(self.done) / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def summary(self) -> str:
        """One line: done / skipped / failed, wall time and throughput."""
        return (
            f"{len(self.done)} done, {len(self.skipped)} skipped, {len(self.failed)} failed in "
            f"{self.wall_seconds:.1f} s ({self.users_per_minute:.1f} users/min)"
        )
