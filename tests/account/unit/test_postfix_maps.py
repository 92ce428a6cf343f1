"""Postfix's socketmap answers: hosted domains, live accounts, subaddresses as their account."""

from services.account.adapters.postfix_maps import PostfixMaps


async def _maps() -> PostfixMaps:
    async def hosted() -> set[str]:
        return {"example.jp"}

    async def is_account(address: str) -> bool:
        return address == "taro@example.jp"

    return PostfixMaps(hosted_domains=hosted, is_account=is_account, host="127.0.0.1", port=0)


async def test_a_subaddress_is_its_account_because_postfix_asks_socketmaps_only_once():
    maps = await _maps()

    assert await maps.answer("recipients taro+news@example.jp") == "OK mailbox"
    assert await maps.answer("recipients TARO+a+b@Example.JP") == "OK mailbox"
    assert await maps.answer("recipients taro@example.jp") == "OK mailbox"
    assert await maps.answer("recipients jiro+news@example.jp") == "NOTFOUND "
    assert await maps.answer("recipients +news@example.jp") == "NOTFOUND "
    assert await maps.answer("domains example.jp") == "OK hosted"
