"""Source folder names that have no valid form here get a safe one: the same on every run, never
another folder's, always one our Dovecot takes."""

from hypothesis import given
from hypothesis import strategies as st

from services.copyjob.domain.folders import MAX_NAME_BYTES, SourceFolder, encode_mutf7, our_names, own_name, renamed, storable


def _folder(name: str, separator: str = "/") -> SourceFolder:
    return SourceFolder(name, separator, frozenset())


def test_a_dot_in_a_name_is_ordinary():
    for name in ("a.b", "v1.2", "v1.2/sub", "..", "~x", ".hidden"):
        assert own_name(_folder(name)) == name and not renamed(_folder(name), name)
    assert own_name(_folder("Projects.2024", ".")) == "Projects/2024"


def test_names_without_a_valid_form_are_renamed_safely():
    cases = [_folder("a..b", "."), _folder("x" * 300), _folder("tab\tx"), _folder("&Jjo"), _folder("bad&x-"),
             _folder("&2D3c-"), _folder("&AEE-"), _folder("日本"), _folder("a//b")]
    names = [own_name(f) for f in cases]
    for folder, name in zip(cases, names, strict=True):
        assert storable(name) and renamed(folder, name), (folder, name)
        assert own_name(folder) == name  # the same on the next run
    assert len(set(names)) == len(names)
    assert names[0].startswith("a/_/b (") and names[2].startswith("tab_x (")


def test_a_name_spelled_otherwise_than_modified_utf7_does_not_meet_the_canonical_one():
    """`&AEE-` decodes to `A`: it is another folder at the source, and stays another here."""
    assert own_name(_folder("A")) == "A"
    assert own_name(_folder("&AEE-")) != "A"


def test_a_slash_inside_a_level_never_meets_a_folder_named_with_the_full_width_one():
    """On a source that separates with `.`, `a/b` is one level, written `a／b` here: beside a folder
    really named `a／b`, that one keeps the name and `a/b` gets a safe one, whatever their order."""
    slash, full_width = _folder("a/b", "."), _folder(encode_mutf7("a\uff0fb"), ".")

    for folders in ([slash, full_width], [full_width, slash]):
        names = dict(zip((f.name for f in folders), our_names(folders), strict=True))
        assert names[full_width.name] == "a\uff0fb" and names[slash.name].startswith("a\uff0fb (")
        assert renamed(slash, names[slash.name]) and storable(names[slash.name])
    assert our_names([slash]) == ["a\uff0fb"]  # alone, it keeps its readable name
    named_like_the_safe_one = _folder(encode_mutf7(our_names([full_width, slash])[1]), ".")
    three = our_names([slash, full_width, named_like_the_safe_one])
    assert len(set(three)) == 3 and all(storable(name) for name in three)


@given(st.lists(st.tuples(st.text(min_size=1, max_size=40).filter(lambda n: n.upper() != "INBOX"),
                          st.sampled_from(["/", "."])), min_size=1, max_size=6, unique_by=lambda t: t[0]))
def test_names_from_either_separator_never_meet(raw):
    """(Any spelling of INBOX is the one INBOX, RFC 3501: left out here.)"""
    folders = [_folder(encode_mutf7(name), separator) for name, separator in raw]
    names = our_names(folders)
    assert len(set(names)) == len(names) and all(storable(name) for name in names)


@given(st.lists(st.text(min_size=1, max_size=80), min_size=1, max_size=6, unique=True))
def test_any_source_names_become_distinct_storable_names(raw_names):
    folders = [_folder(encode_mutf7(name)) for name in raw_names]
    names = our_names(folders)
    assert all(storable(name) for name in names)
    assert len(set(names)) == len(names)
    assert our_names(folders) == names


@given(st.text(min_size=1, max_size=400))
def test_any_spelling_the_source_sends_gets_a_storable_name(spelling):
    name = own_name(_folder(spelling))
    assert storable(name) and len(encode_mutf7(name)) <= MAX_NAME_BYTES
