"""``nfx cache [info|clean]``: what the build cache holds, or empty it (see ``explorer.cache``)."""
from __future__ import annotations

import argparse

from explorer import cache


def _mib(count: int) -> str:
    return f"{count / (1 << 20):.1f} MiB"


def main(args: argparse.Namespace) -> int:
    if args.action == "clean":
        removed, size = cache.clean()
        print(f"{cache.root()}: removed {removed} entr{'y' if removed == 1 else 'ies'} ({_mib(size)})")
        return 0
    found = cache.entries()
    print(f"{cache.root()}: {len(found)} entr{'y' if len(found) == 1 else 'ies'}, "
          f"{_mib(sum(e.size for e in found))} of at most {_mib(cache.size_limit())} (NFX_CACHE_SIZE)")
    return 0
