"""Local fake servers in the sources' and Slack's real wire formats.

Used by `koubei demo` and by the tests: real HTTP on 127.0.0.1, port 0.
"""
