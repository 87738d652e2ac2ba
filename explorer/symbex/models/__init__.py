"""Models of nf.h's functions, one small class per function (or family), looked up by name.

``model_for(name)`` is the model of an nf.h function, or None for any other name. Every function
``explorer.state_api`` lists has exactly one model (a test checks it).
"""
from __future__ import annotations

from typing import Optional

from explorer.symbex.models.allocation import Allocate
from explorer.symbex.models.cht import ChtFindBackend
from explorer.symbex.models.context import CallContext, Model
from explorer.symbex.models.dchains import (AllocateNewIndex, ExpireItems, FreeIndex, IsIndexAllocated,
                                            RejuvenateIndex)
from explorer.symbex.models.headers import EtherHeader, Ipv4Header, TcpFields, TcpudpHeader, UpdateChecksums
from explorer.symbex.models.libc import (ByteSwap, ConstantP, CountZeros, Expect, Hash, Memcmp, Memcpy, Memset,
                                         PopCount)
from explorer.symbex.models.maps import MapErase, MapGet, MapPut
from explorer.symbex.models.sketches import SketchEstimate, SketchExpire, SketchTouch
from explorer.symbex.models.vectors import VectorBorrow, VectorReturn

_MODELS: tuple[Model, ...] = (
    Allocate(), MapGet(), MapPut(), MapErase(), VectorBorrow(), VectorReturn(), AllocateNewIndex(),
    RejuvenateIndex(), IsIndexAllocated(), FreeIndex(), ExpireItems(), SketchTouch(), SketchEstimate(),
    SketchExpire(), ChtFindBackend(), EtherHeader(), Ipv4Header(), TcpudpHeader(), TcpFields(), UpdateChecksums(),
    ByteSwap(), Expect(), PopCount(), CountZeros(), ConstantP(), Hash(), Memcpy(), Memset(), Memcmp(),
)
MODELS: dict[str, Model] = {name: model for model in _MODELS for name in model.names}


def model_for(name: str) -> Optional[Model]:
    return MODELS.get(name)


def forks(name: str) -> bool:
    """Whether a call of the nf.h function ``name`` may fork the path."""
    model = MODELS.get(name)
    return model is not None and model.forks


__all__ = ["CallContext", "MODELS", "Model", "forks", "model_for"]
