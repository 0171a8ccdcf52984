"""Errors the server answers with: each one carries its HTTP status."""

from __future__ import annotations


class ServeError(Exception):
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(ServeError):
    status = 400


class Unauthorized(ServeError):
    status = 401


class NotFound(ServeError):
    status = 404


class MethodNotAllowed(ServeError):
    status = 405


class PayloadTooLarge(ServeError):
    status = 413


class InferenceFailed(ServeError):
    # onnxruntime refused input that passed our checks: still the client's input.
    status = 422


class NotReady(ServeError):
    status = 503


class InjectedFault(ServeError):
    status = 500
