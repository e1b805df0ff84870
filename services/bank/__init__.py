"""The lab's mock bank: a real ledger over HTTP, with a runtime flakiness switch.

`bank.models` and `bank.errors` are the wire contract, imported by the worker and
the starter too; `bank.client` is the one HTTP client for it.
"""
