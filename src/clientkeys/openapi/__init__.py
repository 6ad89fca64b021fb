"""The spec engine: any OpenAPI 3.0 or 3.1 document read, routed and checked, shared by the mock,
the proxy and check (serve stays on Connexion, which reads our own spec).

The modules, in the order a request meets them::

    document.py     read the files, follow `$ref`s, one-line `SpecError`s for bad input
    schemas.py      repair and translate schemas, compile them with jsonschema-rs (lazily)
    operations.py   the index of operations and the router over path templates
    requests.py     parameters and bodies parsed, coerced and validated
    security.py     each security scheme's "is the credential there" check
    generate.py     schema-valid data made up from a schema
    responses.py    Prefer, the chosen response, examples checked and replaced
    asgi.py         the ASGI pipeline: CORS, errors, delay, the order of the steps above
    sentry.py       the error dialect of clientkeys' own spec (Sentry's messages)
    conformance.py  violation records: which rule a request or a response breaks
    specs.py        our own spec folder as data (bundled, its operations and examples)
    compiled.py     compiled JSON Schema validators (jsonschema-rs), built once per schema
"""
