"""`clientkeys serve`'s app: the Connexion FlaskApp built from the spec (`build`, `app`), the
resolver from operationIds to `handlers`, Sentry's tokens and scopes (`auth`), validation with
Sentry's messages, the one error renderer, the test controls' journal, and every reach into
Connexion's internals (`connexion_hooks`). It stores through `store` and never imports another
product.
"""
