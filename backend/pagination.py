"""The API's one pagination class (``REST_FRAMEWORK["DEFAULT_PAGINATION_CLASS"]``): limit/offset, 50 rows by
default, at most 500; every list answers ``{"count", "next", "previous", "results"}``.

An APIView that pages by hand names it as its ``pagination_class`` and pages with that class (``paginated``
or ``paginate_fetch``); declaring ``responses=RowSerializer(many=True)`` then makes drf-spectacular describe
the answer as this page of rows, with its limit and offset parameters, as it does for the generic views."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response


class Pagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 500

    def paginate_fetch(self, request, fetch: Callable[[int, int], tuple[list, int]]) -> list:
        """Page through a source that returns one page and the total together (``fetch(offset, limit)``),
        e.g. the worklist's single query, instead of a queryset DRF would count separately."""
        self.request = request
        self.limit, self.offset = self.get_limit(request), self.get_offset(request)
        rows, self.count = fetch(self.offset, self.limit)
        return rows


def paginated(view, request, queryset, row: Callable | None = None) -> Response:
    """One page of ``queryset`` as the paginated answer (the view's ``pagination_class``), each item passed
    through ``row``."""
    paginator = view.pagination_class()
    page: Iterable = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response([row(x) for x in page] if row else list(page))
