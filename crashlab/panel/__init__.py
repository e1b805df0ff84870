"""`python -m crashlab.panel` (`make panel`): every lever on one web page.

A small web server on this machine, where the levers already run: the page shows the
services' state, each open transfer's progress (its step, its attempt, its last
failure), the levers on now, and a timeline of the levers pulled and undone; every
lever of the catalogue (crashlab/levers.py) is a button or a form on it. No container gets
the Docker socket: the server drives Docker as `python -m crashlab` does.

Reading is open; pulling a lever needs the control token when there is one (an
exposed lab's: LAB_TOKEN or build/bank-control-token), sent as `Authorization: Bearer`.
The page takes it from its address (`#token=...`), as the bank's page does.

It is assembled from parts: ``state`` (what the page shows, and the timeline),
``forms`` (how a form becomes a lever), ``routes`` (the read router and the lever
router), ``app`` (the two routers in one app).
"""
