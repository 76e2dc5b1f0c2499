"""The full-screen terminal client (prompt_toolkit): windows, a status bar, an input line that
incoming traffic never disturbs. Started by ``parley client`` when stdin and stdout are a
terminal; pipes and scripts get the line-by-line client of :mod:`parley.client.console`.
"""
