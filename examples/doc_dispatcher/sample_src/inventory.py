"""Stock levels and reorders."""

from dataclasses import dataclass


@dataclass
class Item:
    """One product on the shelves."""

    sku: str
    count: int = 0


def needs_reorder(item: Item, threshold: int = 5) -> bool:
    """True when fewer than `threshold` are left."""
    return item.count < threshold


async def restock(item: Item, amount: int, *, supplier: str = "default") -> Item:
    return Item(item.sku, item.count + amount)
