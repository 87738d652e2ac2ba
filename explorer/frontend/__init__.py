"""The front end: an NF's C text parsed with pycparser, nodes at their file:line:col.

``parse_nf(path, defines) -> ParsedNF``; reading the NF (file, --defines, preprocessing with the
project's own headers, macros, NF_DEVICES) is ``explorer.nfsource``'s. Errors are CSyntaxError
(file:line:col) or ConfigError.
"""
from explorer.frontend.parsed import ParsedNF, SourceMap, parse_nf, parse_source

__all__ = ["ParsedNF", "SourceMap", "parse_nf", "parse_source"]
