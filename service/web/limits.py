"""Every size limit on a request, defined once; the HTTP protocol, body reader, errors and docs read them."""

from __future__ import annotations

# The request target (path and query) as sent, before any decoding: 414 beyond it.
MAX_URL_BYTES = 8192
# The header set, counting each header as name + value + HEADER_OVERHEAD (": " and CRLF): 431 beyond it.
MAX_HEADER_BYTES = 32768
HEADER_OVERHEAD = 4
# The body however it is framed (Content-Length or chunked): 413 beyond it.
MAX_BODY_BYTES = 65536
