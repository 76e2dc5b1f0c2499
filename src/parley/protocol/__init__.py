"""The Parley wire protocol: framing, typed messages, limits, errors and the session state
machine. Pure code: nothing here does I/O, so server and clients share all of it.
"""
