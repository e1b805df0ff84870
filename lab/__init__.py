"""The lab's control panel: levers that break the stack, and the checks that prove it held."""
