"""What the API and the portal do to a member account's administrators without Temporal: list them, disable
or enable one, lift a sign-in lock, take a second factor off. Each is one store call, which writes the account's
timeline; inviting and resending start workflows, in `starter.services.administrators`.

Who may ask is decided before (`domain.access.may_manage_administrators`, through `starter.deps`); here an
administrator is looked up only within the account asked about, so another account's user is a 404.
"""

from __future__ import annotations

from domain.models import Actor
from domain.settings import Settings
from starter.services.errors import Conflict, NotFound
from store import administrators, second_factor, users
from store.administrators import Administrator

NO_SUCH_ADMINISTRATOR = "No administrator of this account has the id {user_id}."


class AdministratorChanges:
    def __init__(self, settings: Settings) -> None:
        self.url = settings.effective_database_url

    async def of_account(self, account_id: str) -> list[Administrator]:
        """The account's administrators, in the order they were added."""
        return await administrators.list_administrators(self.url, account_id)

    async def get(self, account_id: str, user_id: str) -> Administrator:
        found = await administrators.get_administrator(self.url, account_id, user_id[:64])
        if found is None:
            raise NotFound(NO_SUCH_ADMINISTRATOR.format(user_id=user_id[:64]))
        return found

    async def set_disabled(self, account_id: str, user_id: str, disabled: bool, actor: Actor) -> Administrator:
        """Disable (their sessions, API tokens and invitation link stop working) or enable an administrator.
        The last active administrator cannot be disabled: 409 with the store's sentence."""
        await self.get(account_id, user_id)
        try:
            await administrators.set_disabled(self.url, account_id, user_id, disabled, by=actor)
        except users.UserError as exc:
            raise Conflict(str(exc)) from exc
        return await self.get(account_id, user_id)

    async def unlock(self, account_id: str, user_id: str, actor: Actor) -> Administrator:
        """Lift the sign-in lock on the administrator's email (and forget its failures); no change if none."""
        administrator = await self.get(account_id, user_id)
        await users.unlock(self.url, administrator.email, by=actor, account_id=account_id)
        return await self.get(account_id, user_id)

    async def reset_second_factor(self, account_id: str, user_id: str, actor: Actor) -> Administrator:
        """Take the administrator's second factor off: they set up a new one at their next sign-in, and every
        session of theirs ends."""
        administrator = await self.get(account_id, user_id)
        if not administrator.second_factor:
            raise Conflict(f"{administrator.email} has no second factor set up; there is nothing to reset.")
        try:
            await second_factor.reset(self.url, user_id, by=actor)
        except second_factor.SecondFactorError as exc:
            raise NotFound(NO_SUCH_ADMINISTRATOR.format(user_id=user_id[:64])) from exc
        return await self.get(account_id, user_id)
