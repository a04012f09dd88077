"""What an inbound folder's ``.claims/`` still holds."""

from __future__ import annotations

from pathlib import Path


def left_in_claims(inbound: Path) -> list[Path]:
    """Files still in hand in any claim folder, and notes about files (suspects, settling):
    everything under ``.claims/`` but the count of crashes recovered, which is kept."""
    claims = inbound / ".claims"
    if not claims.is_dir():
        return []
    return [p for p in claims.rglob("*") if p.is_file() and not p.name.startswith("crashes-")]
