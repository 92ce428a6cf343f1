"""Pages rendered from Jinja2 templates, one environment per language with its gettext catalog
(services/gateway/locale; English is the catalog's own text)."""

import gettext
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from services.gateway.domain.languages import LANGUAGES, Language

HERE = Path(__file__).resolve().parent.parent
TEMPLATES = HERE / "templates"
LOCALE = HERE / "locale"
DOMAIN = "messages"


def catalog_path(language: str) -> Path:
    return LOCALE / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def translations(language: Language) -> gettext.NullTranslations:
    """The language's catalog, compiled in memory from its .po file (no compiled file in the tree)."""
    path = catalog_path(language)
    if not path.exists():
        return gettext.NullTranslations()
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=language)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


class Pages:
    def __init__(self) -> None:
        self._translations = {language: translations(language) for language in LANGUAGES}
        self._environments = {language: self._environment(language) for language in LANGUAGES}

    def _environment(self, language: Language) -> Environment:
        environment = Environment(
            loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True),
            undefined=StrictUndefined, extensions=["jinja2.ext.i18n"], trim_blocks=True, lstrip_blocks=True)
        environment.install_gettext_translations(self._translations[language], newstyle=True)  # type: ignore[attr-defined]
        return environment

    def gettext(self, language: Language) -> gettext.NullTranslations:
        return self._translations[language]

    def render(self, language: Language, name: str, context: Mapping[str, Any]) -> str:
        return self._environments[language].get_template(name).render(context)
