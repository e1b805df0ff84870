"""The lab's Temporal worker: the money transfer and the module-1 print-numbers workflow."""
