"""Serializer fields the API's boundary shares."""

from rest_framework import serializers


class Text(serializers.CharField):
    """Text that PostgreSQL can store: a NUL byte is refused saying so (DRF's own check says "Null
    characters", which reads like JSON null), before any other check."""

    default_error_messages = {"nul": "must not contain NUL characters"}

    def to_internal_value(self, data):
        if isinstance(data, str) and "\x00" in data:
            self.fail("nul")
        return super().to_internal_value(data)
