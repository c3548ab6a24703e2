"""Plane geometry for the warehouse floor plan."""

import math


def circle_area(radius: float) -> float:
    """Area of a circle of this radius."""
    return math.pi * radius ** 2


def distance(a: tuple, b: tuple) -> float:
    """Straight-line distance between two (x, y) points."""
    return math.hypot(a[0] - b[0], a[1] - b[1])


class Rectangle:
    """An axis-aligned rectangle."""

    def __init__(self, width: float, height: float):
        self.width, self.height = width, height

    def area(self) -> float:
        """Width times height."""
        return self.width * self.height
