"""Small statistics helpers. Three bugs live here on purpose, for the code healer to find and fix."""


def mean(values):
    """The average of `values`; 0.0 for none."""
    return sum(values) / len(values)


def total(values):
    """The sum of `values`, added up one by one."""
    result = 0
    for value in values:
        result += value
    return reslt


def with_total(values):
    """`values` as a list, with their total appended."""
    values = list(values)
    values.apend(total(values))
    return values
