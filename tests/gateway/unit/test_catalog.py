"""The panel says everything in both languages: every code every service can answer has a text, every text
of the panel is in the Japanese catalog, translated and not fuzzy, with the same placeholders."""

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from services.gateway.adapters.pages import catalog_path
from services.gateway.adapters.web import COMPLETIONS
from services.gateway.domain.messages import FIELD_MESSAGES, NOTICES, PLAN_NAMES, REJECT_MESSAGES

CONTRACTS = ["base", "account", "rules", "copyjob", "notifier"]
PLACEHOLDER = re.compile(r"%\((\w+)\)s")
GATEWAY = Path(__file__).resolve().parents[3] / "services" / "gateway"


def ja_catalog():
    with catalog_path("ja").open("rb") as handle:
        return read_po(handle, locale="ja")


def contract(name: str):
    return importlib.import_module(f"shared.contracts.{name}")


@pytest.mark.parametrize("name", CONTRACTS)
def test_every_reject_code_of_every_contract_has_a_text(name: str) -> None:
    missing = [code for code in getattr(contract(name), "REJECT_CODES", ()) if code not in REJECT_MESSAGES]
    assert not missing, f"{name}: no text for {missing}"


@pytest.mark.parametrize("name", CONTRACTS)
def test_every_field_code_has_a_text_that_uses_only_the_params_it_carries(name: str) -> None:
    params = contract(name).FIELD_PARAMS
    assert set(params) == set(contract(name).FIELD_CODES), f"{name}: a field code without its params"
    for code, carried in params.items():
        assert code in FIELD_MESSAGES, f"{name}: no text for the field code {code}"
        used = set(PLACEHOLDER.findall(FIELD_MESSAGES[code]))
        assert used <= set(carried), f"{name}: {code}'s text uses {used - set(carried)}, which it does not carry"


def test_every_text_is_translated_not_fuzzy_and_keeps_its_placeholders() -> None:
    catalog = ja_catalog()
    for message in catalog:
        if not message.id:
            continue
        assert message.string, f"untranslated: {message.id!r}"
        assert not message.fuzzy, f"fuzzy: {message.id!r}"
        assert set(PLACEHOLDER.findall(message.id)) == set(PLACEHOLDER.findall(message.string)), message.id


def test_the_catalog_holds_every_text_of_the_panel(tmp_path: Path) -> None:
    """pybabel extract over the templates and the code finds nothing the catalog lacks."""
    template = tmp_path / "messages.pot"
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", "--quiet", "extract", "-F",
                    str(GATEWAY / "babel.cfg"), "-k", "N_", "-o", str(template), str(GATEWAY)], check=True)
    with template.open("rb") as handle:
        extracted = {message.id for message in read_po(handle) if message.id}
    catalog = {message.id for message in ja_catalog() if message.id}
    assert extracted - catalog == set(), "run the catalog update: texts missing from ja"
    assert catalog - extracted == set(), "texts no page uses any more"
    tables = {*REJECT_MESSAGES.values(), *FIELD_MESSAGES.values(), *NOTICES.values(), *COMPLETIONS.values(),
              *PLAN_NAMES.values()}
    assert tables <= catalog


def test_english_texts_are_english() -> None:
    japanese = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
    assert not [message.id for message in ja_catalog() if message.id and japanese.search(str(message.id))]
