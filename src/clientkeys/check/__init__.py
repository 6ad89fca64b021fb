"""`clientkeys check`: proves that a running server keeps the contract. Schemathesis runs the
spec's suite (`contract`), its event log is read back for the verdict (`observations`), targeted
probes reach the documented statuses generated cases miss, and `junit` writes the report.
"""
