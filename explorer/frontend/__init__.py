"""The front end: preprocess an NF with the project's own headers and parse it with pycparser.

``parse_nf(path, defines) -> ParsedNF``; errors are CSyntaxError (file:line:col) or ConfigError.
"""
from explorer.frontend.parsed import ParsedNF, SourceMap, parse_nf

__all__ = ["ParsedNF", "SourceMap", "parse_nf"]
