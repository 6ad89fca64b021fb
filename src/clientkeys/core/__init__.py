"""The rules and words of Sentry's client keys, apart from any framework: the domain (what a key
is, what an update changes), its errors, cursor pagination, serializers (rows to API JSON), pet
names, and Sentry's wording for bad input (`core.sentry`). Pure: no HTTP stack, no storage.
"""
