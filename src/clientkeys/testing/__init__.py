"""For tests of clientkeys and of its users: the pytest plugin (`plugin`) that starts a real
server per test run, and the server runner (`runner`) it shares with the suite and the
benchmarks.
"""
