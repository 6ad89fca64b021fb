"""Storage: the backend the `database` setting names (`backend`: the interface; SQLite in
`sqlite`, its group commit in `group_commit`; PostgreSQL in `postgres`), the schema declared once
for both (`schema`), the repository of plain functions over a backend's connections that raises
domain errors, the storage faults told once (`faults`), and the fixtures files loaded at start.
Nothing here speaks HTTP.
"""
