"""tests/integration/tlscerts.py: a throwaway test PKI made with the openssl command.

    pki = make_pki(directory)      # everything below, written into directory
    pki = shared_pki()             # made once per test process, removed at exit

Not a test itself (tests/run.sh runs only test_*.py). EC P-256 keys, so the
whole set takes well under a second. Every certificate is signed by the test
CA with `openssl ca` (which keeps the index that the OCSP responder reads and
can set past validity dates, which `openssl x509 -req` in OpenSSL 3.0 cannot).

The PKI object has, as absolute paths:
  ca_cert, ca_key                  the CA ("meridian test CA")
  certs[NAME], keys[NAME]          leaf certificates and their keys, NAME in
      "a"        CN and SAN DNS a.meridian.test
      "a2"       the same name again, another key and serial (a replacement for reloads)
      "b"        CN and SAN DNS b.meridian.test
      "wild"     CN and SAN DNS *.w.meridian.test
      "cnonly"   CN c.meridian.test, no subjectAltName at all
      "decoy"    CN decoy.meridian.test, SAN DNS d.meridian.test (SAN wins over CN)
      "expired"  SAN DNS a.meridian.test, valid 2019-01-01 .. 2020-01-01T00:00:00Z
  wrong_key                        a P-256 key that matches no certificate
  ocsp["a"]                        DER OCSP response for certs["a"], status good, signed by the CA
  expired_not_after                "2020-01-01T00:00:00Z"
and der(NAME) (the certificate's DER bytes, to compare with what a server
sends), fingerprint(NAME) (SHA-256 hex of the DER), serial(NAME) (hex, as
openssl prints it) and which(DER) (the NAME of a served certificate).
Stdlib only.
"""

import atexit
import hashlib
import os
import shutil
import ssl
import subprocess
import tempfile

OPENSSL = os.environ.get("OPENSSL_BIN", "openssl")
TIMEOUT = 20

# name -> (subject CN, SAN DNS names or None for no subjectAltName)
LEAVES = {
    "a": ("a.meridian.test", ["a.meridian.test"]),
    "a2": ("a.meridian.test", ["a.meridian.test"]),
    "b": ("b.meridian.test", ["b.meridian.test"]),
    "wild": ("*.w.meridian.test", ["*.w.meridian.test"]),
    "cnonly": ("c.meridian.test", None),
    "decoy": ("decoy.meridian.test", ["d.meridian.test"]),
}
EXPIRED_START = "20190101000000Z"
EXPIRED_END = "20200101000000Z"

_CA_CONF = """\
[ ca ]
default_ca = test_ca

[ test_ca ]
dir = {dir}
database = $dir/index.txt
serial = $dir/serial
new_certs_dir = $dir/issued
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
email_in_dn = no

[ policy_any ]
commonName = supplied

[ req ]
distinguished_name = req_dn
prompt = no

[ req_dn ]
CN = meridian test CA

[ v3_ca ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
"""


def _run(args, cwd=None):
    res = subprocess.run([OPENSSL] + list(args), capture_output=True, text=True,
                         timeout=TIMEOUT, cwd=cwd, stdin=subprocess.DEVNULL)
    if res.returncode != 0:
        raise RuntimeError("openssl %s failed (%d):\n%s%s"
                           % (" ".join(args), res.returncode, res.stdout, res.stderr))
    return res.stdout


def _genkey(path):
    _run(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
          "-pkeyopt", "ec_param_enc:named_curve", "-out", path])
    os.chmod(path, 0o600)


class PKI:
    def __init__(self, directory):
        self.dir = directory
        self.ca_cert = os.path.join(directory, "ca.pem")
        self.ca_key = os.path.join(directory, "ca.key")
        self.certs = {}
        self.keys = {}
        self.ocsp = {}
        self.wrong_key = os.path.join(directory, "wrong.key")
        self.expired_not_after = "2020-01-01T00:00:00Z"
        self._conf = os.path.join(directory, "ca.cnf")

    def der(self, name):
        with open(self.certs[name]) as f:
            return ssl.PEM_cert_to_DER_cert(f.read())

    def fingerprint(self, name):
        return hashlib.sha256(self.der(name)).hexdigest()

    def serial(self, name):
        """The certificate's serial number in upper-case hex, as openssl prints it."""
        out = _run(["x509", "-noout", "-serial", "-in", self.certs[name]])
        return out.strip().partition("=")[2].upper()

    def which(self, der):
        """The NAME whose certificate is der, or None."""
        for name in self.certs:
            if self.der(name) == der:
                return name
        return None

    # -- building

    def _make_ca(self):
        os.makedirs(os.path.join(self.dir, "issued"), exist_ok=True)
        with open(self._conf, "w") as f:
            f.write(_CA_CONF.format(dir=self.dir))
        open(os.path.join(self.dir, "index.txt"), "w").close()
        with open(os.path.join(self.dir, "index.txt.attr"), "w") as f:
            f.write("unique_subject = no\n")
        with open(os.path.join(self.dir, "serial"), "w") as f:
            f.write("1000\n")
        _genkey(self.ca_key)
        _run(["req", "-config", self._conf, "-new", "-x509", "-key", self.ca_key,
              "-days", "30", "-extensions", "v3_ca", "-out", self.ca_cert])

    def _leaf(self, name, cn, sans, dates=None):
        key = os.path.join(self.dir, name + ".key")
        csr = os.path.join(self.dir, name + ".csr")
        cert = os.path.join(self.dir, name + ".pem")
        ext = os.path.join(self.dir, name + ".ext")
        _genkey(key)
        _run(["req", "-new", "-key", key, "-subj", "/CN=" + cn, "-out", csr])
        lines = ["basicConstraints = critical, CA:FALSE",
                 "keyUsage = critical, digitalSignature",
                 "extendedKeyUsage = serverAuth",
                 "authorityKeyIdentifier = keyid"]
        if sans:
            lines.append("subjectAltName = " + ", ".join("DNS:" + s for s in sans))
        with open(ext, "w") as f:
            f.write("\n".join(lines) + "\n")
        args = ["ca", "-config", self._conf, "-batch", "-notext", "-cert", self.ca_cert,
                "-keyfile", self.ca_key, "-in", csr, "-out", cert, "-extfile", ext]
        args += (["-startdate", dates[0], "-enddate", dates[1]] if dates else ["-days", "30"])
        _run(args)
        self.certs[name], self.keys[name] = cert, key

    def _ocsp_good(self, name):
        req = os.path.join(self.dir, name + ".ocsp.req")
        out = os.path.join(self.dir, name + ".ocsp.der")
        _run(["ocsp", "-issuer", self.ca_cert, "-cert", self.certs[name], "-no_nonce",
              "-reqout", req])
        _run(["ocsp", "-index", os.path.join(self.dir, "index.txt"), "-rsigner", self.ca_cert,
              "-rkey", self.ca_key, "-CA", self.ca_cert, "-reqin", req, "-respout", out,
              "-ndays", "7"])
        text = _run(["ocsp", "-respin", out, "-CAfile", self.ca_cert, "-issuer", self.ca_cert,
                     "-cert", self.certs[name]])
        if "%s: good" % self.certs[name] not in text:
            raise RuntimeError("OCSP response for %s is not 'good':\n%s" % (name, text))
        self.ocsp[name] = out

    def build(self):
        self._make_ca()
        for name, (cn, sans) in LEAVES.items():
            self._leaf(name, cn, sans)
        self._leaf("expired", "a.meridian.test", ["a.meridian.test"],
                   (EXPIRED_START, EXPIRED_END))
        _genkey(self.wrong_key)
        self._ocsp_good("a")
        return self


def make_pki(directory):
    """Builds the whole PKI into directory (created if needed); returns a PKI."""
    directory = os.path.abspath(directory)
    os.makedirs(directory, exist_ok=True)
    return PKI(directory).build()


_shared = None


def shared_pki():
    """One PKI per test process, in a temporary directory removed at exit."""
    global _shared
    if _shared is None:
        directory = tempfile.mkdtemp(prefix="mr-pki-")
        atexit.register(shutil.rmtree, directory, True)
        _shared = make_pki(directory)
    return _shared


def cert_text(pem_or_der):
    """`openssl x509 -noout -subject -ext subjectAltName -enddate` of a certificate
    given as PEM text or DER bytes."""
    data = pem_or_der if isinstance(pem_or_der, str) else ssl.DER_cert_to_PEM_cert(pem_or_der)
    res = subprocess.run([OPENSSL, "x509", "-noout", "-subject", "-ext", "subjectAltName",
                          "-enddate"], input=data, capture_output=True, text=True,
                         timeout=TIMEOUT)
    if res.returncode != 0:
        raise RuntimeError("openssl x509 failed: %s" % res.stderr)
    return res.stdout


if __name__ == "__main__":
    import sys
    pki = make_pki(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="mr-pki-"))
    print(pki.dir)
    for n in sorted(pki.certs):
        print("%-8s %s\n%s" % (n, pki.certs[n], cert_text(open(pki.certs[n]).read())))
