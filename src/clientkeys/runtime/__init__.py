"""What every served product shares at run time: the one uvicorn runner (`service`) and its
HTTP hooks, the ops endpoints (docs page, health, metrics), request ids and the access log, the
metrics themselves, log output, and the ASGI guards in front of routing. It knows no product:
serve, mock and proxy each hand it an app.
"""
