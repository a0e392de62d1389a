package redistest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// A TLSServer is a redis-server that speaks only TLS, with a certificate
// for 127.0.0.1 and localhost signed by a CA made for it.
type TLSServer struct {
	// Addr is 127.0.0.1:port of the TLS port.
	Addr string
	// CA is the PEM of the CA that signed the server's certificate.
	CA []byte
	// CAFile is a file holding CA.
	CAFile string

	p *proc
}

// URL returns rediss://Addr.
func (s *TLSServer) URL() string { return "rediss://" + s.Addr }

// StartTLS starts a redis-server for t alone with its plain port off
// and a TLS port on (clients are not asked for certificates), and stops
// it when t ends.
func StartTLS(t testing.TB) *TLSServer {
	t.Helper()
	srv, err := startTLS(t, t.TempDir())
	if err != nil {
		t.Fatalf("redistest: TLS server: %v", err)
	}
	t.Cleanup(srv.p.kill)
	return srv
}

func startTLS(t testing.TB, dir string) (*TLSServer, error) {
	t.Helper()
	ca, caKey := newCA(t, "redistest CA")
	certPEM, keyPEM := newLeaf(t, ca, caKey)
	caPEM := pemCert(ca.Raw)
	files := map[string][]byte{"ca.pem": caPEM, "server.pem": certPEM, "server.key": keyPEM}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	tlsPing := func(addr string) error { return pingTLS(addr, roots) }
	var p *proc
	var err error
	for range 3 {
		var port string
		if port, err = freePort(); err != nil {
			break
		}
		p, err = startProcWith(dir, port, []string{"--port", "0", "--tls-port", port,
			"--tls-cert-file", filepath.Join(dir, "server.pem"),
			"--tls-key-file", filepath.Join(dir, "server.key"),
			"--tls-ca-cert-file", filepath.Join(dir, "ca.pem"),
			"--tls-auth-clients", "no"}, tlsPing)
		if err == nil {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	return &TLSServer{Addr: p.addr, CA: caPEM, CAFile: filepath.Join(dir, "ca.pem"), p: p}, nil
}

// EnvTLS names the environment variable that makes [Start] hand out a
// shared TLS-only redis-server as a rediss:// URL, which [Client] reaches
// with the server's CA: REDISTEST_TLS=1 go test ./internal/agent/ runs
// the package's Redis tests over verified TLS.
const EnvTLS = "REDISTEST_TLS"

// sharedTLS is the TLS server [Start] hands out under $REDISTEST_TLS. It
// lives until the test binary exits (its process dies with it).
var sharedTLS struct {
	mu  sync.Mutex
	srv *TLSServer // guarded by mu
}

func startSharedTLS(t testing.TB) string {
	t.Helper()
	sharedTLS.mu.Lock()
	defer sharedTLS.mu.Unlock()
	if sharedTLS.srv == nil {
		dir, err := os.MkdirTemp("", "redistest-tls-")
		if err != nil {
			t.Fatalf("redistest: %v", err)
		}
		srv, err := startTLS(t, dir)
		if err != nil {
			t.Fatalf("redistest: TLS server: %v", err)
		}
		sharedTLS.srv = srv
	}
	return sharedTLS.srv.URL()
}

// CAFor returns the CA file a process needs to reach u (for
// LAMBDAGENT_REDIS_CA): the shared TLS server's when u is its URL, else "".
func CAFor(u string) string { return sharedCA(u) }

// sharedCA returns the CA file of the shared TLS server if u is its URL.
func sharedCA(u string) string {
	sharedTLS.mu.Lock()
	defer sharedTLS.mu.Unlock()
	if sharedTLS.srv != nil && sharedTLS.srv.URL() == u {
		return sharedTLS.srv.CAFile
	}
	return ""
}

// NewCAPEM returns the PEM of a fresh CA that signed nothing: the wrong
// CA, for tests of verification failures.
func NewCAPEM(t testing.TB) []byte {
	ca, _ := newCA(t, "redistest unrelated CA")
	return pemCert(ca.Raw)
}

func newCA(t testing.TB, name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// newLeaf returns a server certificate for 127.0.0.1 and localhost,
// signed by ca, and its key, as PEM.
func newLeaf(t testing.TB, ca *x509.Certificate, caKey *ecdsa.PrivateKey) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pemCert(der), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

func serial(t testing.TB) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func pingTLS(addr string, roots *x509.CertPool) error {
	d := &net.Dialer{Timeout: time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
	if err != nil {
		return err
	}
	return pingConn(c)
}
