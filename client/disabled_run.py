"""`modelreg.init(mode="disabled")` (W&B's disabled mode): a run that records nothing, so that a script runs
with tracking switched off. Artifacts it logs stay local; using or linking one is refused."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from modelreg.artifact import Artifact, LoggedArtifact
from modelreg.errors import InvalidInput
from modelreg.run import Run, as_artifact


class DisabledRun(Run):
    @property
    def disabled(self) -> bool:
        return True

    @property
    def url(self) -> str | None:
        return None

    def _send_metric_batch(self, series: list[dict[str, Any]], command_id: UUID) -> None:
        pass

    def _change(self, kind: str, fields: dict[str, Any]) -> None:
        pass

    def _log_run_files(self) -> None:
        pass

    def _send_finish(self, fields: dict[str, Any]) -> None:
        pass

    def log_artifact(  # type: ignore[override]
        self, artifact_or_path: Any, name: str | None = None, type: str | None = None, **_: Any
    ) -> Artifact:
        return as_artifact(artifact_or_path, name, type)

    def use_artifact(  # type: ignore[override]
        self, artifact_or_name: Any, type: str | None = None, **_: Any
    ) -> LoggedArtifact:
        raise InvalidInput("this run is disabled (mode='disabled'): it cannot use artifacts from the registry")

    def link_artifact(self, artifact: Any, target_path: str, aliases: Any = None) -> str | None:
        return None
