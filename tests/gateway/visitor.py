"""The panel over plain HTTP, as an attacker or a script would use it (no browser)."""

import re

import httpx2


class Visitor:
    """A browser's cookies by hand: the panel's are `__Host-` and Secure, which an HTTP client keeps only
    over https."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx2.Client(base_url=base_url, follow_redirects=False, timeout=30)
        self.cookies: dict[str, str] = {}

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        cookie = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        return {"Cookie": cookie, "Accept-Language": "ja", **(extra or {})}

    def _keep(self, response: httpx2.Response) -> httpx2.Response:
        for header in response.headers.get_list("set-cookie"):
            name, _, rest = header.partition("=")
            value = rest.partition(";")[0]
            if "Max-Age=0" in header or not value or value == '""':
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return response

    def get(self, path: str) -> httpx2.Response:
        return self._keep(self.http.get(path, headers=self._headers(None)))

    def post(self, path: str, data: dict[str, str], headers: dict[str, str] | None = None) -> httpx2.Response:
        return self._keep(self.http.post(path, data=data, headers=self._headers(headers)))

    def sign_in(self, login: str, password: str) -> None:
        nonce = field(self.get("/login").text, "nonce")
        assert self.post("/login", {"login": login, "password": password, "nonce": nonce}).status_code == 303


def field(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, name
    return found.group(1)
