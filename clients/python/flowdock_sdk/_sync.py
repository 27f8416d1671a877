"""`Client`: the blocking face of `AsyncClient`. It runs the async client on an event loop in a private thread,
so both share every line of logic; each method blocks until the async one finishes."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, Self, TypeVar

from flowdock_sdk._client import AsyncClient

P = ParamSpec("P")
R = TypeVar("R")


def _blocking(fn: Callable[Concatenate[AsyncClient, P], Coroutine[Any, Any, R]]) -> Callable[Concatenate[Client, P], R]:
    def call(self: Client, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return self._run(fn(self._async, *args, **kwargs))

    call.__name__ = fn.__name__
    call.__doc__ = fn.__doc__
    return call


class Client:
    """A FlowDock account, blocking calls. Same options and methods as `AsyncClient`.

    ```python
    with Client("http://127.0.0.1:8080", email="ada@example.org", password="…") as fd:
        fd.upload("report.pdf", "/Docs")
        print([n.name for n in fd.listdir("/Docs")])
    ```
    """

    def __init__(
        self,
        base_url: str,
        *,
        email: str = "",
        password: str = "",
        totp: Callable[[], str] | None = None,
        refresh_token: str = "",
        on_refresh_token: Callable[[str], None] | None = None,
        device_name: str = "flowdock-sdk",
        timeout: float = 60.0,
        max_parallel: int = 4,
        retries: int = 3,
        state_file: str | Path | None = None,
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="flowdock-sdk", daemon=True)
        self._thread.start()

        async def make() -> AsyncClient:  # grpc.aio channels belong to the loop they are made on
            return AsyncClient(
                base_url,
                email=email,
                password=password,
                totp=totp,
                refresh_token=refresh_token,
                on_refresh_token=on_refresh_token,
                device_name=device_name,
                timeout=timeout,
                max_parallel=max_parallel,
                retries=retries,
                state_file=state_file,
            )

        self._async = self._run(make())

    def _run(self, coro: Coroutine[Any, Any, R]) -> R:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel and stop the private loop."""
        if self._loop.is_closed():
            return
        self._run(self._async.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    @property
    def refresh_token(self) -> str:
        """The newest refresh token."""
        return self._async.refresh_token

    register = _blocking(AsyncClient.register)
    login = _blocking(AsyncClient.login)
    authenticate = _blocking(AsyncClient.authenticate)
    me = _blocking(AsyncClient.me)
    logout = _blocking(AsyncClient.logout)
    sessions = _blocking(AsyncClient.sessions)
    revoke_session = _blocking(AsyncClient.revoke_session)
    revoke_other_sessions = _blocking(AsyncClient.revoke_other_sessions)
    app_passwords = _blocking(AsyncClient.app_passwords)
    create_app_password = _blocking(AsyncClient.create_app_password)
    revoke_app_password = _blocking(AsyncClient.revoke_app_password)
    start_2fa = _blocking(AsyncClient.start_2fa)
    confirm_2fa = _blocking(AsyncClient.confirm_2fa)
    disable_2fa = _blocking(AsyncClient.disable_2fa)
    admin_users = _blocking(AsyncClient.admin_users)
    admin_user = _blocking(AsyncClient.admin_user)
    admin_set_role = _blocking(AsyncClient.admin_set_role)
    admin_set_disabled = _blocking(AsyncClient.admin_set_disabled)
    admin_quota = _blocking(AsyncClient.admin_quota)
    admin_set_quota = _blocking(AsyncClient.admin_set_quota)
    admin_delete_user = _blocking(AsyncClient.admin_delete_user)
    root = _blocking(AsyncClient.root)
    listdir = _blocking(AsyncClient.listdir)
    stat = _blocking(AsyncClient.stat)
    exists = _blocking(AsyncClient.exists)
    path_of = _blocking(AsyncClient.path_of)
    walk = _blocking(AsyncClient.walk)
    create_folder = _blocking(AsyncClient.create_folder)
    mkdir = _blocking(AsyncClient.mkdir)
    move = _blocking(AsyncClient.move)
    rename = _blocking(AsyncClient.rename)
    copy = _blocking(AsyncClient.copy)
    delete = _blocking(AsyncClient.delete)
    trash = _blocking(AsyncClient.trash)
    restore = _blocking(AsyncClient.restore)
    purge = _blocking(AsyncClient.purge)
    empty_trash = _blocking(AsyncClient.empty_trash)
    versions = _blocking(AsyncClient.versions)
    restore_version = _blocking(AsyncClient.restore_version)
    search = _blocking(AsyncClient.search)
    quota = _blocking(AsyncClient.quota)
    shares = _blocking(AsyncClient.shares)
    share = _blocking(AsyncClient.share)
    update_share = _blocking(AsyncClient.update_share)
    unshare = _blocking(AsyncClient.unshare)
    create_link = _blocking(AsyncClient.create_link)
    links = _blocking(AsyncClient.links)
    delete_link = _blocking(AsyncClient.delete_link)
    upload = _blocking(AsyncClient.upload)
    download = _blocking(AsyncClient.download)
    download_bytes = _blocking(AsyncClient.download_bytes)
