package federation

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// ErrTLSExists is returned by WriteSelfSignedTLS when the certificate or
// the key file already exists.
var ErrTLSExists = errors.New("TLS certificate or key file already exists")

// GenerateSelfSignedTLS makes a self-signed ECDSA P-256 certificate for
// hosts (DNS names or IP addresses, without ports), valid from now for
// validity, and returns it and its key as PEM. Remote servers accept it
// only with certificate checks off (federation.skip_tls_verify): it is for
// development and tests.
func GenerateSelfSignedTLS(hosts []string, validity time.Duration, now time.Time) (certPEM, keyPEM []byte, err error) {
	if len(hosts) == 0 {
		return nil, nil, errors.New("federation.GenerateSelfSignedTLS: no host names")
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("federation.GenerateSelfSignedTLS: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("federation.GenerateSelfSignedTLS: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: hosts[0], Organization: []string{"Soma development"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return nil, nil, fmt.Errorf("federation.GenerateSelfSignedTLS: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, fmt.Errorf("federation.GenerateSelfSignedTLS: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// WriteSelfSignedTLS generates a pair (GenerateSelfSignedTLS) and writes
// the certificate (0644) and the key (0600), creating their directories.
// It replaces neither file: when one exists it writes nothing and returns
// ErrTLSExists.
func WriteSelfSignedTLS(certPath, keyPath string, hosts []string, validity time.Duration) error {
	for _, p := range []string{certPath, keyPath} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("federation.WriteSelfSignedTLS: %s: %w", p, ErrTLSExists)
		}
	}
	certPEM, keyPEM, err := GenerateSelfSignedTLS(hosts, validity, time.Now())
	if err != nil {
		return err
	}
	if err := writeExclusive(keyPath, keyPEM, 0o600); err != nil {
		return fmt.Errorf("federation.WriteSelfSignedTLS: %w", err)
	}
	if err := writeExclusive(certPath, certPEM, 0o644); err != nil {
		os.Remove(keyPath) // never leave half a pair
		return fmt.Errorf("federation.WriteSelfSignedTLS: %w", err)
	}
	return nil
}

// writeExclusive creates path (and its directory, 0700) with data,
// failing with ErrTLSExists when it exists.
func writeExclusive(path string, data []byte, perm fs.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s: %w", path, ErrTLSExists)
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return err
	}
	return nil
}
