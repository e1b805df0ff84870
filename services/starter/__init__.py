"""The lab's starter: ``python -m starter transfer|print-numbers|balances``.

It checks its input, starts a workflow (or re-attaches to the one already
running with that id), waits for the result and prints it.
"""
