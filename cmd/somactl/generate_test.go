package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/soma-chat/soma/config"
	"github.com/soma-chat/soma/federation"
)

func TestGenerateTLSWritesAPairForTheServerNameOnce(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "soma.yaml")
	os.WriteFile(cfgPath, []byte("server_name: 127.0.0.1:8448\ndata_dir: "+filepath.Join(dir, "data")+"\n"), 0o600)

	code, out, errOut := runCmd(t, "", "generate-tls", "-config", cfgPath)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	certPath, keyPath := filepath.Join(dir, "data", "federation.crt"), filepath.Join(dir, "data", "federation.key")
	if !strings.Contains(out, certPath) || !strings.Contains(out, keyPath) {
		t.Fatalf("output %q names neither path", out)
	}
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		t.Fatalf("not a usable pair: %v", err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(cert.IPAddresses) != 1 || !cert.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) {
		t.Fatalf("certificate is for %v %v, want the server name's IP 127.0.0.1", cert.IPAddresses, cert.DNSNames)
	}
	if err := cert.VerifyHostname("127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(keyPath); fi == nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", fi.Mode())
	}

	before, _ := os.ReadFile(keyPath)
	code, _, errOut = runCmd(t, "", "generate-tls", "-config", cfgPath)
	if code != 1 || !strings.Contains(errOut, "already exists") {
		t.Fatalf("second run: exit %d, %q", code, errOut)
	}
	if after, _ := os.ReadFile(keyPath); !bytes.Equal(before, after) {
		t.Fatal("the key was replaced")
	}

	// Explicit paths and host names.
	other := filepath.Join(dir, "other")
	code, _, errOut = runCmd(t, "", "generate-tls", "-cert", other+".crt", "-key", other+".key", "-hosts", "fed.example.org,::1")
	if code != 0 {
		t.Fatalf("-cert/-key/-hosts: exit %d: %s", code, errOut)
	}
	pair, err = tls.LoadX509KeyPair(other+".crt", other+".key")
	if err != nil {
		t.Fatal(err)
	}
	cert, _ = x509.ParseCertificate(pair.Certificate[0])
	if cert.VerifyHostname("fed.example.org") != nil || cert.VerifyHostname("::1") != nil {
		t.Fatalf("certificate is for %v %v", cert.DNSNames, cert.IPAddresses)
	}
}

func TestOldKeyEntryIsWhatTheConfigAccepts(t *testing.T) {
	dir := t.TempDir()
	keyPath := filepath.Join(dir, "signing.key")
	if code, _, errOut := runCmd(t, "", "generate-keys", "-o", keyPath); code != 0 {
		t.Fatalf("generate-keys: %d %s", code, errOut)
	}
	before := time.Now().UnixMilli()
	code, out, errOut := runCmd(t, "", "old-key-entry", "-key", keyPath)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	id, pub, expired, err := config.ParseOldVerifyKey(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("the entry %q does not parse: %v", out, err)
	}
	k, err := federation.LoadSigningKey(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if id != string(k.KeyID) || !bytes.Equal(pub, k.Public()) || expired < before || expired > time.Now().UnixMilli() {
		t.Fatalf("entry %q, want key %s expired now", out, k.KeyID)
	}
	if code, _, _ := runCmd(t, "", "old-key-entry", "-key", filepath.Join(dir, "missing.key")); code != 1 {
		t.Fatalf("missing key file: exit %d, want 1", code)
	}
}
