from django_filters.rest_framework import DjangoFilterBackend


class FilterBackend(DjangoFilterBackend):
    """django-filter's backend, skipping the FilterSet when the query string gives none of its
    filters. Such a FilterSet could only hand the queryset back unfiltered, yet building it
    (copies of every filter, a form, its validation) was a noticeable share of a list page,
    and most list requests carry nothing but `limit`, `offset` or `cursor`.

    A parameter counts as given to a filter when its name starts with the filter's name, so
    filters reading suffixed parameters (`<name>_min`, `<name>_after`) are never skipped."""

    def filter_queryset(self, request, queryset, view):
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is not None and not any(
            param.startswith(name)
            for param in request.query_params
            for name in filterset_class.base_filters
        ):
            return queryset
        return super().filter_queryset(request, queryset, view)
