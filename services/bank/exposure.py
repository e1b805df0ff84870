"""Whether the lab is published beyond this machine: one answer for the bank and the host.

Compose publishes every port on LAB_BIND_ADDRESS (127.0.0.1 when unset). The bank
locks its fault switch when that reaches further without a control token, and
`make up` makes a token in exactly that case, so both must read the address alike.
"""

import ipaddress


def is_exposed(bind_address: str | None) -> bool:
    """True when LAB_BIND_ADDRESS publishes the lab beyond this machine."""
    address = (bind_address or "").strip().strip("[]") or "127.0.0.1"
    if address.lower() == "localhost":
        return False
    try:
        return not ipaddress.ip_address(address).is_loopback
    except ValueError:
        return True  # a host name: whoever resolves it can reach the lab
