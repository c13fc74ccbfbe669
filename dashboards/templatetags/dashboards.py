import json

from django import template

register = template.Library()

DATA_PREVIEW_CHARS = 400


@register.filter
def as_json(value) -> str:
    """Event data as compact JSON, cut short for a table cell (the template escapes it)."""
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return text if len(text) <= DATA_PREVIEW_CHARS else text[:DATA_PREVIEW_CHARS] + "…"


@register.filter
def sum_of(values) -> int:
    return sum(values)


@register.filter
def max_of(values) -> int:
    return max(values, default=0)


@register.filter
def ms(value) -> str:
    """A response time in milliseconds, or a dash when there is none."""
    if value is None:
        return "–"
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    return f"{value:.1f} ms" if value < 10 else f"{value:.0f} ms"


@register.filter
def percent(value) -> str:
    """A share in percent, or a dash when there is none."""
    return "–" if value is None else f"{value:.1f}%"
