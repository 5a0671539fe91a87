"""What the API's boundary shares: the validation call every view makes, and its string field."""

from rest_framework import serializers


class StrictCharField(serializers.CharField):
    """A string as the client sent it: DRF's CharField would take the number 42 as "42" (a report text, a
    comment, a revision token must be strings), and a NUL character is refused naming it (PostgreSQL cannot
    store one; query parameters included)."""

    default_error_messages = {"invalid": "{name} must be a string",
                              "null_characters": "{name} must not contain NUL (0x00) characters"}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid", name=self.field_name or "value")
        if "\x00" in data:
            self.fail("null_characters", name=self.field_name or "value")
        return super().to_internal_value(data)


def validated(serializer_class, data) -> dict:
    """The request's body or query checked by ``serializer_class``: its validated data, or a
    ``ValidationError`` the API's exception handler answers as 400 in the one error shape."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)
