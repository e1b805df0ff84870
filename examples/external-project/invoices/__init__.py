"""Invoices: a project of its own that pays invoices through the lab's bank.

It shares no code with the lab: it speaks the bank's HTTP contract (README.md).
"""
