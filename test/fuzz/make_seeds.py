#!/usr/bin/env python3
"""Writes the hand-written seed inputs into test/fuzz/corpus/ as seed-NAME files.

The first byte of an input chooses what fuzz_request.cpp drives: '0' Beast's request parser
(one buffer) and then the head's checks and the target, '1' the parser fed in pieces (the second byte: piece size = byte % 16 + 1, so '0'
is 1 byte and '7' is 8 bytes), '2' url_problem, '3' alias_problem, '4' location_value,
'5' parse_target; 0x16 (a TLS record) the HTTPS listener's handshake. Run it again after editing; fuzzer-found inputs (hex names) are left alone.
"""
import os
import ssl
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")

TUTORIAL_POST = (b"POST /urls?full_url=https://www.postgresql.org/ HTTP/1.1\r\n"
                 b"Host: localhost:5001\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n")
TUTORIAL_GET = b"GET /urls/0OGWoMJ HTTP/1.1\r\nHost: localhost:5001\r\nAccept: */*\r\n\r\n"

REQUESTS = {
    "tutorial-post": TUTORIAL_POST,
    "tutorial-get": TUTORIAL_GET,
    "healthz": b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    "http10": b"GET /urls/ab%2Fcd HTTP/1.0\r\n\r\n",
    "pipelined": TUTORIAL_POST + TUTORIAL_GET + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    "pipelined-close": TUTORIAL_GET.replace(b"Accept", b"Connection: close\r\nAccept") + TUTORIAL_GET,
    "content-length-body": (b"POST /urls?full_url=https://a.b/ HTTP/1.1\r\nHost: x\r\n"
                            b"Content-Type: application/json\r\nContent-Length: 13\r\n\r\n"
                            b'{"alias":"x"}'),
    "chunked": (b"POST /urls HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: t\r\n\r\n"),
    "chunked-bad-size": (b"POST /urls HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"zz\r\nhello\r\n0\r\n\r\n"),
    "chunked-huge-size": (b"POST /urls HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                          b"ffffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
    "chunked-and-length": (b"POST /urls HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                           b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    "negative-length": b"POST /urls HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\nabc",
    "double-length": b"POST /urls HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    "huge-length": b"POST /urls HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\nab",
    "over-body-limit": b"POST /urls HTTP/1.1\r\nContent-Length: 70000\r\n\r\n" + b"a" * 100,
    "huge-header": b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
    "many-headers": b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 300 + b"\r\n",
    "nul-in-target": b"GET /urls/a\x00b HTTP/1.1\r\nHost: x\r\n\r\n",
    "nul-in-header": b"GET / HTTP/1.1\r\nHost: x\x00y\r\n\r\n",
    "obs-fold": b"GET / HTTP/1.1\r\nX: a\r\n  b\r\n\r\n",
    "bare-lf": b"GET /healthz HTTP/1.1\nHost: x\n\n",
    "crlf-in-target-escaped": b"GET /urls/%0d%0aSet-Cookie:%20a=b HTTP/1.1\r\n\r\n",
    "crlf-in-full-url": (b"POST /urls?full_url=https://x.com/%0d%0aSet-Cookie:%20a=b HTTP/1.1\r\n"
                         b"Host: x\r\n\r\n"),
    "javascript-url": b"POST /urls?full_url=javascript:alert(1) HTTP/1.1\r\n\r\n",
    "percent-tricks": b"GET /urls/%2e%2e%2f%25%zz%c3%a9%C0%AF HTTP/1.1\r\n\r\n",
    "absolute-form": b"GET http://x.com/urls/abc HTTP/1.1\r\nHost: x.com\r\n\r\n",
    "asterisk-form": b"OPTIONS * HTTP/1.1\r\n\r\n",
    "unknown-method": b"BREW /pot HTTP/1.1\r\n\r\n",
    "http2-preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "truncated": b"POST /urls?full_url=https://a.b/ HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc",
    "plus-and-ampersand": b"POST /urls?full_url=https://a.b/?q%3D1%26r%3D2&x=a+b HTTP/1.1\r\n\r\n",
    # The head's checks (header_checks.hpp): Host, target forms, Expect, codings, HTTP/2.
    "host-missing": b"GET /healthz HTTP/1.1\r\nAccept: */*\r\n\r\n",
    "host-twice": b"GET /healthz HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n",
    "host-empty": b"GET /healthz HTTP/1.1\r\nHost:\r\n\r\n",
    "host-bad": b"GET /healthz HTTP/1.1\r\nHost: user@[::1]:80:x%zz\r\n\r\n",
    "host-ipv6": b"GET /healthz HTTP/1.1\r\nHost: [::1]:5001\r\n\r\n",
    "absolute-form-query": (b"POST http://localhost:5001/urls?full_url=https://a.b/&full_url=c "
                            b"HTTP/1.1\r\nHost: localhost:5001\r\n\r\n"),
    "absolute-form-https-encoded-id": (b"GET HTTPS://[::1]:5001/urls/ab%2Fcd HTTP/1.1\r\n"
                                       b"Host: x\r\n\r\n"),
    "absolute-form-userinfo": b"GET http://u:p@x:8x/urls HTTP/1.1\r\nHost: x\r\n\r\n",
    "authority-form": b"CONNECT localhost:443 HTTP/1.1\r\nHost: localhost:443\r\n\r\n",
    "asterisk-form-get": b"GET * HTTP/1.1\r\nHost: x\r\n\r\n",
    "expect-continue": (b"POST /urls HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\n"
                        b"Content-Type: application/json\r\nContent-Length: 13\r\n\r\n"
                        b'{"url":"u"}\r\n'),
    "expect-continue-chunked": (b"POST /urls HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                                b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"),
    "expect-other": b"POST /urls HTTP/1.1\r\nHost: x\r\nExpect: 100-continue, x\r\nContent-Length: 0\r\n\r\n",
    "expect-http10": b"POST /urls HTTP/1.0\r\nExpect: foo\r\nContent-Length: 2\r\n\r\n{}",
    "te-gzip-chunked": (b"POST /urls HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                        b"0\r\n\r\n"),
    "te-two-lines": (b"POST /urls HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: deflate\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    "te-http10": b"POST /urls HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "content-encoding-gzip": (b"POST /urls HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\n"
                              b"Content-Length: 4\r\n\r\n\x1f\x8b\x08\x00"),
    "h2c-upgrade": (b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                    b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"),
    "h2-preface-settings": (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                            b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x64"),
}

URLS = [
    b"https://www.postgresql.org/", b"http://[2001:db8::7]:8080/a?b=c#d", b"HTTPS://EXAMPLE.COM",
    b"https://de.wikipedia.org/wiki/Stra\xc3\x9fe", b"https://example.com/?a[]=1&q={|}",
    b"javascript:alert(1)", b"data:text/html,<script>alert(1)</script>", b"ftp://x",
    b"//x.com", b"https:///x", b"http://", b"https://exa mple.com",
    b"https://x.com/\r\nSet-Cookie: a=b", b"https://user:pw@x.com/", b"https://good.com%2Fevil/",
    b"https://x.com:8o/", b"https://x.com:65536/", b"https://x.com/100%", b"https://x.com/\xe2\x80\xae",
    b"https://evil.com\\.good.com/", b"https://x.com/" + b"a" * 2100,
]
ALIASES = [b"my-link_1", b"a", b"x" * 64, b"x" * 65, b"urls", b"HEALTHZ", b"openapi.json", b"a/b",
           b"\xc3\xa9", b""]
LOCATIONS = [b"https://www.postgresql.org/", b"https://x.com/\r\n\x00 \x7f\xff%%41%4",
             b"https://x.com/?q={\"a\"}|<b>^`\\"]
TARGETS = [b"/urls?full_url=https://www.postgresql.org/", b"/urls/ab%2Fcd", b"/urls/%C3%A9",
           b"/urls?full_url=a+b%2Bc&x", b"/%zz", b"urls", b"/urls/%00", b"/urls?full_url=%ff",
           b"/urls?%C3%A9=%E2%80%AE", b"http://localhost:5001/urls/ab%2Fcd?x=%zz&x=2",
           b"HTTPS://[::1]:5001?full_url=100%", b"http://u@x/", b"ftp://x/urls", b"x:443", b"*",
           b"http://x:8x/urls", b"/urls?full_url=a&full_url=b%"]


def client_hello(minimum=None, maximum=None, alpn=None, sni="localhost"):
    """The first flight of a real client (Python's OpenSSL), as it reaches the HTTPS listener."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if minimum:
        context.minimum_version = minimum
    if maximum:
        context.maximum_version = maximum
    if alpn:
        context.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = context.wrap_bio(incoming, outgoing, server_hostname=sni)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


V12, V13 = ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3
# Inputs starting with 0x16 (every TLS record of a handshake does) drive the TLS handshake.
CLIENT_HELLOS = {
    "tls13-alpn-h2-http11": dict(alpn=["h2", "http/1.1"]),
    "tls13-alpn-http11": dict(alpn=["http/1.1"]),
    "tls13-alpn-h2-only": dict(alpn=["h2"]),
    "tls13-alpn-many": dict(alpn=["spdy/3", "http/1.0", "h3", "http/1.1x", "http/1.1"]),
    "tls13-no-alpn": dict(),
    "tls13-no-sni": dict(sni=None),
    "tls12-only-alpn-http11": dict(minimum=V12, maximum=V12, alpn=["http/1.1"]),
    "tls12-only-no-alpn": dict(minimum=V12, maximum=V12),
}


def main() -> int:
    os.makedirs(CORPUS, exist_ok=True)
    seeds = {}
    for name, req in REQUESTS.items():
        seeds[f"http-{name}"] = b"0" + req
        seeds[f"http-pieces-{name}"] = b"17" + req
    seeds["http-bytewise-tutorial-post"] = b"10" + TUTORIAL_POST
    seeds["http-bytewise-chunked"] = b"10" + REQUESTS["chunked"]
    for kind, prefix, values in (("url", b"2", URLS), ("alias", b"3", ALIASES),
                                 ("location", b"4", LOCATIONS), ("target", b"5", TARGETS)):
        for i, value in enumerate(values):
            seeds[f"{kind}-{i:02d}"] = prefix + value
    for name, spec in CLIENT_HELLOS.items():
        seeds[f"tls-{name}"] = client_hello(**spec)
    for name, data in seeds.items():
        with open(os.path.join(CORPUS, f"seed-{name}"), "wb") as f:
            f.write(data)
    print(f"{len(seeds)} seeds in {CORPUS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
