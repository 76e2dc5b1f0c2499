"""Parley's benchmark: the same workloads against Parley and ngIRCd (``python -m bench``)."""
