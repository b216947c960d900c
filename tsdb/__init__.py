"""Time-series storage: the point type, line protocol, and backends behind one interface."""

from tsdb.lineprotocol import LineProtocolError, encode, parse
from tsdb.point import Point, PointError, UInt

__all__ = ["LineProtocolError", "Point", "PointError", "UInt", "encode", "parse"]
