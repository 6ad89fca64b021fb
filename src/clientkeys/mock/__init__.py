"""`clientkeys mock`: any OpenAPI 3.0 or 3.1 document served as a validating mock, on the spec
engine (`clientkeys.openapi`) with runtime's ops endpoints beside it.
"""
