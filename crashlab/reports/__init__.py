"""Reports with pictures, written beside the JSON ones: build/soak.html and
build/soak.junit.xml (crashlab.reports.soak), build/bench.html (crashlab.reports.bench).

Each is a pure function from a result to one self-contained file (style and SVG charts
inline, nothing fetched), so it opens anywhere, offline, and CI can keep it.
"""
