"""`clientkeys proxy`: forwards every request to an upstream server and checks both directions
against a description, reporting (or, in enforce mode, refusing) what breaks it.
"""
