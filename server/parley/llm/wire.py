"""What every provider over one vendor endpoint shares, whatever wire it speaks."""

from __future__ import annotations

from collections.abc import Mapping

from parley.llm.http import VendorHTTP


class VendorWire:
    """A provider over one :class:`VendorHTTP` endpoint; subclasses speak its wire.

    ``models`` maps the names models are known by in Parley to the ids the
    endpoint wants (an OpenRouter slug, an Azure deployment, a Bedrock
    inference profile, a Vertex version); unmapped names go as they are.
    """

    name: str
    family: str

    def __init__(self, name: str, http: VendorHTTP, models: Mapping[str, str]) -> None:
        self.name = name
        self._http = http
        self._models = dict(models)

    def __repr__(self) -> str:  # never the headers: they hold the key
        return f"{type(self).__name__}({self.name!r})"

    def model_id(self, model: str) -> str:
        """The endpoint's id for Parley's ``model``."""
        return self._models.get(model, model)

    async def aclose(self) -> None:
        await self._http.aclose()
