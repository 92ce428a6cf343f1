"""An address as a notification shows it: the local part's first and last character kept, the rest
`*`, the domain shown (`t**o@example.jp`); a local part of one character is hidden whole, of two
keeps its first. Pure."""


def masked(address: str) -> str:
    local, at, domain = address.rpartition("@")
    if not at:
        local, domain = address, ""
    if len(local) <= 1:
        shown = "*" * len(local)
    elif len(local) == 2:
        shown = local[0] + "*"
    else:
        shown = local[0] + "*" * (len(local) - 2) + local[-1]
    return f"{shown}@{domain}" if at else shown
