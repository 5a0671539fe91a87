"""Errors that the API turns into clear HTTP answers instead of 500s."""


class ServiceUnavailable(Exception):
    """A backing service (Orthanc, Redis, PostgreSQL) cannot be reached: HTTP 503."""

    status_code = 503

    def __init__(self, service: str, detail: str):
        super().__init__(f"{service} is unavailable: {detail}")
        self.service = service
        self.detail = detail

    def as_dict(self) -> dict:
        return {"error": "service_unavailable", "service": self.service, "detail": str(self)}


def invalid_data_payload(exc: Exception) -> dict:
    """The 400 body for input PostgreSQL refuses (django.db.DataError): NUL bytes, numbers out of range."""
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else "value out of range or not storable"
    return {"error": "invalid", "detail": f"the database refused a value in the request: {first_line}"}
