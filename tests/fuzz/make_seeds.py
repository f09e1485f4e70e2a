#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/): realistic
inputs (stream openings and stanzas, SCRAM exchanges, JIDs with edge cases, tokens, the
example configuration). Each seed is named after its content's hash; run again after editing
the lists below. The inputs the fuzzers find while running stay out of the repository (see
scripts/fuzz); only those that reproduce a fixed bug go to tests/fuzz/regressions/<target>/."""
import base64
import hashlib
import os
import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CORPUS = HERE / "corpus"

STREAM_NS = "xmlns:stream='http://etherx.jabber.org/streams'"
CLIENT_HEADER = (f"<?xml version='1.0'?><stream:stream xmlns='jabber:client' {STREAM_NS} "
                 "to='example.org' version='1.0'>")
SERVER_HEADER = (f"<stream:stream xmlns='jabber:server' xmlns:db='jabber:server:dialback' "
                 f"{STREAM_NS} from='a.example' to='b.example' version='1.0'>")

CLIENT_STANZAS = [
    "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
    "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>"
    "biwsbj11c2VyLHI9ck9wck5HZndFYmVSV2diTkVrcU8=</auth>",
    "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
    "AGp1bGlldAByMG0zMG15cjBtMzA=</auth>",
    "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>Yz1iaXdzLHI9</response>",
    "<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>",
    "<iq type='set' id='bind_1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
    "<resource>balcony</resource></bind></iq>",
    "<iq type='set' id='sess'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>",
    "<presence/>",
    "<presence type='subscribe' to='romeo@example.net'/>",
    "<presence><show>away</show><status>Gone \u2603 &amp; back</status>"
    "<priority>5</priority></presence>",
    "<message type='chat' to='romeo@example.net/orchard' id='m1' xml:lang='en'>"
    "<body>Art thou not Romeo, and a Montague?</body>"
    "<thread>e0ffe42b28561960c6b12b944a092794b9683a38</thread></message>",
    "<message to='room@conference.example.org' type='groupchat'><body>&lt;hi&gt; &#x263A;"
    "</body></message>",
    "<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>",
    "<iq type='get' to='example.org' id='d1'><query "
    "xmlns='http://jabber.org/protocol/disco#info'/></iq>",
    "<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>",
    "<presence to='room@conference.example.org/nick'><x "
    "xmlns='http://jabber.org/protocol/muc'><history maxstanzas='20' seconds='180'/></x>"
    "</presence>",
    "<enable xmlns='urn:xmpp:sm:3'/><r xmlns='urn:xmpp:sm:3'/><a xmlns='urn:xmpp:sm:3' h='7'/>",
    "<iq type='set' id='reg'><query xmlns='jabber:iq:register'><username>bill</username>"
    "<password>Calliope</password></query></iq>",
    "<message><body><![CDATA[<not a tag>]]></body></message>",
    "<foo:bar xmlns:foo='urn:example:foo' foo:attr='x'><foo:baz/></foo:bar>",
    " \n \t ",
    "</stream:stream>",
]
SERVER_STANZAS = [
    "<db:result from='a.example' to='b.example'>"
    "b4835385f37fe2895af6c196b59097b16862406db80559900d96bf6fa7d23df3</db:result>",
    "<db:verify from='a.example' to='b.example' id='417GAF25'>"
    "b4835385f37fe2895af6c196b59097b16862406db80559900d96bf6fa7d23df3</db:verify>",
    "<db:result from='b.example' to='a.example' type='valid'/>",
    "<db:result from='b.example' to='a.example' type='error'><error type='cancel'>"
    "<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></db:result>",
    "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>YS5leGFtcGxl</auth>",
    "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"
    "<dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback></stream:features>",
    "<message from='juliet@a.example/balcony' to='romeo@b.example' type='chat'>"
    "<body>Wherefore art thou?</body></message>",
    "<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
    "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>no such host</text></stream:error>",
]
HOSTILE = [
    "<!-- a comment -->",
    "<?pi data?>",
    "<!DOCTYPE foo [<!ENTITY x 'y'>]><foo>&x;</foo>",
    "<message><body>&unknown;</body></message>",
    "<x:y/>",
    "<a" + "".join(f" a{i}='{i}'" for i in range(70)) + "/>",
    "<a>" * 70 + "</a>" * 70,
    "<message><body a='" + "x>" * 400 + "'/></message>",
    "<message to='" + "a" * 1200 + "'/>",
    "<message><body>" + "\u00e9\u4e2d\U0001f600" * 200 + "</body></message>",
    "<?xml version='1.0' encoding='ISO-8859-1'?>",
    "<message xmlns='urn:example' xmlns:p='urn:p' p:x='1' p:y='2'/>",
    "<iq><query xmlns=''/></iq>",
    "\xef\xbb\xbf",
    "<\xff\xfe/>",
]


def write(target, data):
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)


def stream_seeds():
    # Mode byte: bit 0 post-auth limits, bits 1-2 header (0 none, 1 client, 2 server), bits
    # 3-5 largest read size; then two bytes seeding the read sizes.
    for i, s in enumerate(CLIENT_STANZAS):
        write("stream_fuzz", bytes([(1 << 1) | (i % 2) | ((i % 8) << 3), i, 7]) + s.encode())
    write("stream_fuzz", bytes([0, 1, 0]) + (CLIENT_HEADER + "".join(CLIENT_STANZAS[:8])).encode())
    write("stream_fuzz", bytes([(7 << 3) | 1, 2, 0]) + (CLIENT_HEADER + "".join(CLIENT_STANZAS)).encode())
    for i, s in enumerate(SERVER_STANZAS):
        write("stream_fuzz", bytes([(2 << 1) | (i % 2) | ((i % 8) << 3), i, 3]) + s.encode())
    for i, s in enumerate(HOSTILE):
        write("stream_fuzz", bytes([(1 << 1) | (i % 2) | ((i % 8) << 3), i, 5]) +
              s.encode("utf-8", "surrogateescape"))
    write("stream_fuzz", bytes([0, 9, 9]) + SERVER_HEADER.encode())
    write("stream_fuzz", bytes([0, 3, 1]) + b"<stream:stream xmlns='jabber:client' to='x'>")


JIDS = [
    "juliet@example.com", "juliet@example.com/foo", "juliet@example.com/foo bar",
    "juliet@example.com/foo@bar", "foo\\20bar@example.com", "fussball@example.com",
    "fu\u00dfball@example.com", "\u03c0@example.com", "\u03a3@example.com/foo",
    "\u03c3@example.com/foo", "\u03c2@example.com/foo", "king@example.com/\u265a",
    "example.com", "example.com/foobar", "a.example.com/b@example.net",
    "juliet@example.com.", "\"juliet\"@example.com", "@example.com", "juliet@", "/foobar",
    "juliet@example.com/", "user@[::1]", "user@127.0.0.1/r", "user@[fe80::1%eth0]",
    "m\u00fcnchen.de", "xn--mnchen-3ya.de", "XN--MNCHEN-3YA.DE", "user@example\u3002com",
    "a@b\uff0ec", "user@exa_mple.com", "user@-example.com", "user@example-.com",
    "user@ab--cd.example", "x" * 1024 + "@example.com", "user@" + "a" * 64 + ".com",
    "user@\u0000example.com", "user@example.com/\u0000", "\u00ad@example.com",
    "user@\u200d.example", "Romeo@Example.NET/Orchard", "u\u0308ser@example.com",
    "\u2163@example.com", "user@example.com/\U0001f600", "\U000e0001@example.com",
    "user@1.2.3.4.5", "user@256.1.1.1", "a@b@c/d/e",
]


def jid_seeds():
    for j in JIDS:
        write("jid_fuzz", j.encode("utf-8", "surrogatepass"))


def sasl_seeds():
    # Mode 0: SCRAM-SHA-256, 1: SCRAM-SHA-1, 2: PLAIN, 3: base64, 4: EXTERNAL authzid.
    scram = [
        ("n,,n=user,r=rOprNGfwEbeRWgbNEkqO", "c=@C,r=@N,p=@P"),
        ("n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL", "c=biws,r=@N,p=@P"),
        ("y,,n=user,r=abc", "c=@C,r=@N,p=@P"),
        ("n,a=user@example.org,n=user,r=abc", "c=@C,r=@N,p=@P"),
        ("n,,n=user,r=abc,x=ext", "c=@C,r=@N,e=1,p=@P"),
        ("n,,n=someone,r=abc", "c=@C,r=@N,p=@P"),
        ("n,,n=us=2Cer=3D,r=abc", "c=@C,r=@N,p=AAAA"),
        ("n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
         "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
         "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="),
        ("p=tls-unique,,n=user,r=abc", ""),
        ("n,,m=ext,n=user,r=abc", ""),
        ("n,,n=user,r=a,b", "c=@C,r=@N,p="),
        ("n,,n=,r=abc", ""),
        ("n,,n=\u2168,r=abc", "c=@C,r=@N,p=@P"),
        ("n,,n=user,r=abc", "c=@C,r=@Nx,p=@P"),
        ("n,,n=user,r=abc", "c=@C,r=@N"),
    ]
    for i, (first, final) in enumerate(scram):
        write("sasl_fuzz", bytes([i % 2]) + f"{first}\n{final}".encode())
    plain = [b"\0user\0pencil", b"user@example.org\0user\0pencil", b"\0user\0wrong",
             b"\0\0pencil", b"\0user\0", b"a\0b\0c\0d", "\0I\u00adX\0\u2168".encode(),
             b"\0user\0pen\xffcil", b"juliet@example.com/balcony\0juliet\0r0m30myr0m30"]
    for p in plain:
        write("sasl_fuzz", bytes([2]) + p)
    for b in [b"", b"=", b"YQ==", b"YWI=", b"YWJj", b"YR==", b"Y===", b"YWJj\n", b"!!!!",
              base64.b64encode(os.urandom(0) + b"\x00\xff\xfe binary")]:
        write("sasl_fuzz", bytes([3]) + b)
    for d in ["a.example", "", "M\u00fcnchen.example", "a.example/x", "[::1]"]:
        write("sasl_fuzz", bytes([4]) + base64.b64encode(d.encode()))


def dialback_seeds():
    for s in SERVER_STANZAS:
        write("dialback_fuzz", bytes([0]) + s.encode())
    write("dialback_fuzz", bytes([0]) + "".join(SERVER_STANZAS).encode())
    for s in ["<db:verify from='a.example' to='b.example' id='&lt;&amp;&apos;'>k\r\ney\t</db:verify>",
              "<db:result from='a.example' to='b.example'/>",
              "<db:result from='M\u00fcnchen.example' to='b.example' type='invalid'><error "
              "type='cancel'><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text "
              "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>Your certificate</text></error>"
              "</db:result>",
              "<a xmlns='urn:xmpp:sm:3' h='4294967295'/>", "<a xmlns='urn:xmpp:sm:3' h='4294967296'/>",
              "<a xmlns='urn:xmpp:sm:3' h='007'/>",
              "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>"
              "EXTERNAL</mechanism></mechanisms><sm xmlns='urn:xmpp:sm:3'/></stream:features>"]:
        write("dialback_fuzz", bytes([0]) + s.encode())
    # Certificates (mode 1): one with DNS-IDs, an XmppAddr and an SRV-ID, one with a CN only.
    # Made once (keys and dates differ on every run): kept when the corpus has them.
    if any(f.read_bytes()[:1] == b"\x01" for f in (CORPUS / "dialback_fuzz").iterdir()):
        return
    certs = []
    with_names = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ed25519", "-nodes", "-keyout", "/dev/null",
         "-subj", "/CN=a.example", "-days", "1", "-outform", "DER", "-addext",
         "subjectAltName=DNS:a.example,DNS:*.b.example,"
         "otherName:1.3.6.1.5.5.7.8.5;UTF8:c.example,"
         "otherName:1.3.6.1.5.5.7.8.7;IA5STRING:_xmpp-server.d.example"],
        capture_output=True, check=True).stdout
    certs.append(with_names)
    cn_only = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ed25519", "-nodes", "-keyout", "/dev/null",
         "-subj", "/CN=xn--mnchen-3ya.example", "-days", "1", "-outform", "DER"],
        capture_output=True, check=True).stdout
    certs.append(cn_only)
    for domain in ["a.example", "x.b.example", "c.example", "d.example", "e.example", "A.EXAMPLE.",
                   "b.example", "*.b.example", "m\u00fcnchen.example", ".b.example"]:
        for cert in certs:
            d = domain.encode()
            write("dialback_fuzz", bytes([1, len(d)]) + d + cert)


def credential_seeds():
    # Mode 0 tokens are built by the target itself from fixed claims; these are shapes.
    def b64u(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=")
    header = b64u(b'{"alg":"EdDSA","typ":"JWT","kid":"0011223344556677"}')
    payload = b64u(b'{"iss":"a.example","sub":"user@a.example","aud":"rooms.b.example",'
                   b'"did":"did:plc:ewvi7nxzyoun6zhxrhs64oiz","iat":1767225600,'
                   b'"exp":1767225900,"jti":"0123456789abcdef"}')
    sig = b64u(bytes(64))
    for t in [header + b"." + payload + b"." + sig,
              b64u(b'{"alg":"none"}') + b"." + payload + b".",
              b64u(b'{"alg":"EdDSA","crit":["x"],"kid":"a"}') + b"." + payload + b"." + sig,
              b64u(b'{"alg":"EdDSA","kid":"a"}') + b"." + b64u(b'{"iss":"a","sub":"b","jti":"c",'
                                                              b'"iat":1.5,"exp":1e3}') + b"." + sig,
              b64u(b'{"alg":"EdDSA","kid":"a"}') + b"." + b64u(b'{"iss":"a","sub":"b","jti":"c",'
                                                              b'"iat":-1,"exp":99999999999999999999}')
              + b"." + sig,
              b"a.b.c.d", b"..", b"did:plc:ewvi7nxzyoun6zhxrhs64oiz", b"did:web:example.org%3A8080",
              b"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
              b"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"]:
        write("credential_fuzz", bytes([0]) + t)
    for pos, patch in [(0, b"e"), (5, b"X"), (40, b"."), (200, b"AAAA"), (330, b"B"),
                       (340, b"=="), (0, b"")]:
        write("credential_fuzz", bytes([1, pos & 0xff, pos >> 8]) + patch)
    for claims in ["a.example\nuser@a.example\nrooms.b.example\ndid:plc:abc\nid1\n1767225600\n300",
                   "a.example\nuser@a.example\n\n\n\n0\n0",
                   "a\u00e9\nu\"s\\er\n\u2603\n\n\n123\n456",
                   "a.example\nuser\xff@a.example\n\n\n\n1\n1",
                   "\n\n\n\n\n\n", "a\nb\nc\nd\ne\n999999999999\n999999999999"]:
        write("credential_fuzz", bytes([2]) + claims.encode("utf-8", "surrogateescape"))


def config_seeds():
    write("config_fuzz", (ROOT / "config" / "waddle.example.toml").read_bytes())
    for c in [
        "[server]\ndomains = ['example.org']\ndata_dir = 'data'\n",
        "[server]\ndomains = ['example.org', 'example.net']\n[c2s]\nport = 5222\n"
        "[c2s.limits]\nmax_stanza_size = 65536\nmax_depth = 32\n",
        "[s2s]\nenabled = true\nport = 5269\ndialback_secret = 's3cret'\n"
        "allow_internal_addresses = true\n[s2s.retry]\ninitial = '2s'\n",
        "[server]\ndomains = []\n",
        "[server]\ndomains = ['m\u00fcnchen.example']\n[muc]\nsubdomain = 'conference'\n",
        "[tls]\ncertificate = 'missing.pem'\nkey = 'missing.key'\n",
        "[metrics]\nenabled = true\naddress = '127.0.0.1'\nport = 5280\n",
        "[unknown]\nkey = 1\n",
        "[server\ndomains = \n",
        "[c2s.limits]\nmax_stanza_size = 99999999999999999999\n",
        "[c2s.limits]\nmax_stanza_size = -1\n",
        "[s2s]\nconnect_timeout = '1h30m'\nidle_timeout = '0s'\n",
        "a = \"\\u00e9\"\nb = '''\nmulti\n'''\nc = 1979-05-27T07:32:00Z\nd = [1, 'x']\n"
        "e = { x = 1 }\n[[f]]\ng = 1.5e3\n",
    ]:
        write("config_fuzz", c)


def main():
    stream_seeds()
    jid_seeds()
    sasl_seeds()
    dialback_seeds()
    credential_seeds()
    config_seeds()
    for d in sorted(CORPUS.iterdir()):
        print(d.name, len(list(d.iterdir())))


if __name__ == "__main__":
    sys.exit(main())
