"""The packet accessors and checksums: ``nf_ether_header`` (always a header), ``nf_ipv4_header``,
``nf_tcpudp_header`` and ``nf_tcp_fields`` (a header on the paths where the frame has one, NULL on
the others) and ``nf_update_checksums``."""
from __future__ import annotations

from typing import Any, Optional

import z3

from explorer.errors import UnsupportedError
from explorer.symbex import ctype as ct
from explorer.symbex.bitvec import bv
from explorer.symbex.ctype import PointerType
from explorer.symbex.models.context import CallContext, Model
from explorer.symbex.values import Ptr, Value


def _packet_arg(ctx: CallContext) -> None:
    value = ctx.args[0]
    if not isinstance(value, Ptr) or value.region != "packet" or value.offset != 0:
        raise ctx.fail(f"{ctx.name}() must be given nf_process's packet argument")
    if ctx.mode != "process":
        raise ctx.fail(f"{ctx.name}() is only available in nf_process")


def _header(ctx: CallContext, region: str, struct_tag: str) -> Ptr:
    tag = ctx.machine.types.lookup_tag(ctx.machine.scopes, struct_tag)
    if tag is None:
        raise UnsupportedError(f"struct {struct_tag} is not declared (include nf.h)")
    return Ptr(PointerType(tag), region, 0)


class EtherHeader(Model):
    names = ("nf_ether_header",)

    def call(self, ctx: CallContext) -> Optional[Value]:
        _packet_arg(ctx)
        return _header(ctx, "ether", "nf_ether_hdr")


class LaterHeader(Model):
    """A header the frame may lack: forks on the exact condition the runtime tests."""

    forks = True

    which: str  # "ipv4" | "tcpudp" | "tcp": the packet's condition ``<which>_ok``
    region: str
    struct_tag: str

    def call(self, ctx: CallContext) -> Optional[Value]:
        _packet_arg(ctx)
        cond, labels = self._condition(ctx)
        header = _header(ctx, self.region, self.struct_tag)
        if ctx.state.branch(cond, ctx.machine.loc(ctx.node), labels):
            return header
        return Ptr(header.ctype, None, 0)

    def _condition(self, ctx: CallContext) -> tuple[Any, Optional[tuple[str, str]]]:
        """The condition under which the header is there; labelled ``p.is_<which>`` when the length
        passed is the frame's own."""
        packet = ctx.machine.packet
        assert packet is not None
        length = ctx.integer(1, ct.USHORT)
        cond = getattr(packet, f"{self.which}_ok")
        if isinstance(length.v, int) or length.v.get_id() != packet.len.get_id():
            return z3.substitute(cond, (packet.len, bv(length.v, 16))), None
        return cond, (f"!p.is_{self.which}", f"p.is_{self.which}")


class Ipv4Header(LaterHeader):
    names = ("nf_ipv4_header",)
    which, region, struct_tag = "ipv4", "ipv4", "nf_ipv4_hdr"


class TcpudpHeader(LaterHeader):
    names = ("nf_tcpudp_header",)
    which, region, struct_tag = "tcpudp", "l4", "nf_tcpudp_hdr"


class TcpFields(LaterHeader):
    """The TCP header after the ports: a region of its own, so that UDP's ports mean the same."""

    names = ("nf_tcp_fields",)
    which, region, struct_tag = "tcp", "tcp", "nf_tcp_fields"


class UpdateChecksums(Model):
    names = ("nf_update_checksums",)

    def call(self, ctx: CallContext) -> Optional[Value]:
        _packet_arg(ctx)
        ctx.integer(1, ct.USHORT)
        packet = ctx.machine.packet
        assert packet is not None
        if ctx.state.possible(packet.ipv4_ok):
            ctx.machine.effects.checksum_writes.append(ctx.machine.loc(ctx.node))
        return None
