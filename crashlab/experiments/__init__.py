"""The source documents' experiments, run on the real lab and checked against the evidence.

`python -m crashlab.experiments NAME` runs one (or `all`): it narrates each step for
a learner, then checks every promise of the document against the workflow
histories in Temporal and the bank's ledger, and exits non-zero if any failed.
Each experiment is a module with `async def run(stack, say, **options) -> Outcome`,
so tests call it directly.
"""
