"""The verifier of the chat WebSocket: users' tokens and guests' tokens."""

from __future__ import annotations

from parley.auth.tokens import TokenVerifier, VerifiedToken
from parley.guests.tokens import GuestTokens


class ChatVerifier:
    """A guest token goes to :class:`GuestTokens`, any other to the configured verifier.

    Which one is picked by the token's (unverified) key id; each then checks
    its own signature, so a token cannot get itself checked by the lenient one.
    """

    def __init__(self, users: TokenVerifier, guests: GuestTokens) -> None:
        self._users = users
        self._guests = guests

    @property
    def leeway(self) -> float:
        return max(self._users.leeway, self._guests.leeway)

    async def verify_claims(self, token: str) -> VerifiedToken:
        if GuestTokens.claims_guest(token):
            return await self._guests.verify_claims(token)
        return await self._users.verify_claims(token)
